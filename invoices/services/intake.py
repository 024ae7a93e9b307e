"""New invoices from uploaded PDFs: kept as a local draft, then created at the provider.

Routes (see ``sending``):
- ``invoice_create_draft``: local only, nothing reaches the provider.
- ``invoice_request_create``, ``invoice_create_from_pdf``, ``invoices_bulk_request_create``: queue.
- ``invoice_create_and_send``, ``invoices_create_and_send``: send now, staff read the answer.
- ``invoices_import_qonto``: drafts only, or (``send``) sent now through ``invoices_create_and_send``;
  reported file by file with what Qonto read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import SuspiciousFileOperation, ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils.text import get_valid_filename

from invoices import formatting
from invoices.models import (
    ActionBatch,
    Customer,
    Invoice,
    InvoiceEvent,
    InvoiceStatus,
    PendingAction,
    Provider,
    SyncState,
)
from invoices.services import sending
from invoices.services.batches import BatchReport, actionbatch_run
from invoices.validation import (
    AlreadyUploaded,
    check_pdf,
    validate_file_new,
    validate_invoice_fields,
    validate_number_free,
    validate_requested_paid_at,
)


# A local draft -----------------------------------------------------------------------------------
def invoice_create_draft(
    *,
    provider: str,
    pdf_name: str,
    pdf_content: bytes,
    actor,
    customer: Customer | None = None,
    number: str = "",
    issue_date: date | None = None,
    due_date: date | None = None,
    amount: Decimal | None = None,
    paid_at: datetime | None = None,
    send_notification: bool = False,
    zero_amount_confirmed: bool = False,
) -> Invoice:
    """Keep an uploaded PDF as a local invoice that is not at the provider yet. An amount of 0.00
    needs ``zero_amount_confirmed``; Qonto takes a file once (``AlreadyUploaded`` says where)."""
    sha256 = check_pdf(name=pdf_name, content=pdf_content)
    validate_file_new(provider=provider, name=pdf_name, sha256=sha256)
    validate_invoice_fields(
        provider=provider,
        customer=customer,
        number=number,
        issue_date=issue_date,
        due_date=due_date,
        amount=amount,
        zero_amount_confirmed=zero_amount_confirmed,
    )
    validate_requested_paid_at(provider=provider, paid_at=paid_at)
    with transaction.atomic():
        invoice = Invoice(
            provider=provider,
            customer=customer,
            customer_remote_id=customer.remote_id if customer else "",
            customer_name=customer.name if customer else "",
            number=number,
            issue_date=issue_date,
            due_date=due_date,
            amount=amount,
            status=InvoiceStatus.OPEN,
            requested_paid_at=paid_at,
            send_notification=send_notification,
            sync_state=SyncState.LOCAL_DRAFT,
            pdf_sha256=sha256,
            pdf_name=display_name(pdf_name),
            created_by=actor,
        )
        invoice.pdf.save(pdf_name, ContentFile(pdf_content), save=False)
        invoice.save()
        InvoiceEvent.objects.create(invoice=invoice, kind=InvoiceEvent.Kind.CREATED_LOCALLY, actor=actor)
    return invoice


def display_name(name: str) -> str:
    """The uploaded file's name as staff gave it, for display only (it is never a path)."""
    try:
        return get_valid_filename(name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1])[-200:]
    except SuspiciousFileOperation:
        return ""


# Creating at the provider ------------------------------------------------------------------------
def request_create(invoice: Invoice, actor) -> None:
    """Record the create on the row (the outbox), for the caller to queue or send now."""
    if invoice.remote_id:
        raise ValidationError(f"{invoice} is already at {invoice.get_provider_display()}.")
    if invoice.sync_state == SyncState.DISCARDED:
        raise ValidationError(
            f"{invoice} was discarded: it is kept for the record and cannot be sent. Upload the file again."
        )
    if invoice.sync_state not in (SyncState.LOCAL_DRAFT, SyncState.FAILED):
        raise ValidationError(f"{invoice} is already being sent.")
    if invoice.provider == Provider.MKP:
        validate_number_free(provider=invoice.provider, number=invoice.number, exclude_pk=invoice.pk)
    with transaction.atomic():
        updated = Invoice.objects.filter(
            pk=invoice.pk, remote_id__isnull=True, sync_state__in=[SyncState.LOCAL_DRAFT, SyncState.FAILED]
        ).update(
            sync_state=SyncState.PENDING,
            pending_action=PendingAction.CREATE,
            attempts=0,
            next_attempt_at=None,
            last_error="",
        )
        if not updated:
            raise ValidationError(f"{invoice} changed meanwhile; reload the page.")
        InvoiceEvent.objects.create(invoice=invoice, kind=InvoiceEvent.Kind.CREATE_REQUESTED, actor=actor)


def invoice_request_create(*, invoice: Invoice, actor) -> None:
    """Queue the create at the provider (a draft, or a create that failed earlier)."""
    with transaction.atomic():
        request_create(invoice, actor)
        sending.enqueue_push([invoice.pk])
    invoice.refresh_from_db()


def invoice_create_from_pdf(
    *, provider: str, pdf_name: str, pdf_content: bytes, actor, **fields: Any
) -> Invoice:
    """Keep the upload and queue its create."""
    with transaction.atomic():
        invoice = invoice_create_draft(
            provider=provider, pdf_name=pdf_name, pdf_content=pdf_content, actor=actor, **fields
        )
        invoice_request_create(invoice=invoice, actor=actor)
    return invoice


def invoice_create_and_send(
    *, provider: str, pdf_name: str, pdf_content: bytes, actor, **fields: Any
) -> sending.Sent:
    """Keep the upload and send it at once: staff see the provider's answer."""
    with transaction.atomic():
        invoice = invoice_create_draft(
            provider=provider, pdf_name=pdf_name, pdf_content=pdf_content, actor=actor, **fields
        )
        request_create(invoice, actor)
    (sent,) = sending.send_now([invoice])
    return sent


def invoices_bulk_request_create(*, invoices: Iterable[Invoice], actor) -> BatchReport:
    """Queue the create of each draft or failed upload; the others are skipped, saying why."""
    return actionbatch_run(
        invoices=invoices,
        actor=actor,
        kind=ActionBatch.Kind.CREATE,
        request=lambda invoice: invoice_request_create(invoice=invoice, actor=actor),
    )


def invoices_create_and_send(*, invoices: list[Invoice], actor) -> list[sending.Sent]:
    """Send drafts at once (Qonto: five files a request); one plain sentence per invoice."""
    report = actionbatch_run(
        invoices=invoices,
        actor=actor,
        kind=ActionBatch.Kind.CREATE,
        request=lambda invoice: request_create(invoice, actor),
    )
    skipped = dict(report.skipped)
    # By the row sent: a row absorbed by another upload of its file answers with that one.
    sent = (
        dict(zip([i.pk for i in report.queued], sending.send_now(report.queued), strict=True))
        if report.queued
        else {}
    )
    return [
        sent.get(i.pk) or sending.Sent(i, sending.Sent.FAILED, f"not sent: {skipped.get(i, '')}")
        for i in invoices
    ]


# A Qonto import, file by file --------------------------------------------------------------------
@dataclass
class FileResult:
    """One file of an upload: what became of it, and what the provider read from it."""

    REFUSED, SAME_FILE, KNOWN, DRAFT = "refused", "same_file", "known", "draft"

    name: str
    outcome: str  # one of the above or a ``sending.Sent`` outcome
    text: str
    invoice: Invoice | None = None

    @property
    def read(self) -> bool:
        """Whether the provider answered with the invoice it made (number, amount, dates)."""
        return self.outcome == sending.Sent.DONE and bool(self.invoice and self.invoice.remote_id)

    @property
    def amount_text(self) -> str:
        if not self.read or self.invoice.amount is None:
            return ""
        return formatting.money(self.invoice.amount, self.invoice.currency)

    @property
    def warning(self) -> str:
        if self.read and self.invoice.amount == Decimal(0):
            return (
                f"Qonto read {self.invoice.currency} 0.00 from this file: check the invoice at Qonto"
                " (its amount may not be readable in the PDF)."
            )
        return ""

    @property
    def correctable(self) -> bool:
        return self.invoice is not None and self.outcome == sending.Sent.FAILED


def invoices_import_qonto(*, files: list[tuple[str, bytes]], actor, send: bool) -> list[FileResult]:
    """Keep each PDF as a Qonto upload and, with ``send``, import them now. The same file twice in
    the upload, or a file uploaded before, makes no new row and no new file: its result says
    where the invoice is."""
    results: list[FileResult] = []
    first_of: dict[str, int] = {}  # a file's checksum -> the index of its first result
    repeats: list[tuple[int, int]] = []  # (a repeated file's result, its first file's result)
    created: list[tuple[int, Invoice]] = []
    for name, content in files:
        try:
            sha256 = check_pdf(name=name, content=content)
            if sha256 in first_of:
                done = "imported once" if send else "kept once"
                first = first_of[sha256]
                repeats.append((len(results), first))
                results.append(
                    FileResult(
                        name,
                        FileResult.SAME_FILE,
                        f"{name} is the same file as {results[first].name} in this upload: it was {done}.",
                    )
                )
                continue
            first_of[sha256] = len(results)
            invoice = invoice_create_draft(
                provider=Provider.QONTO, pdf_name=name, pdf_content=content, actor=actor
            )
        except AlreadyUploaded as exc:
            results.append(FileResult(name, FileResult.KNOWN, " ".join(exc.messages), exc.invoice))
            continue
        except ValidationError as exc:
            results.append(FileResult(name, FileResult.REFUSED, " ".join(exc.messages)))
            continue
        created.append((len(results), invoice))
        results.append(FileResult(name, FileResult.DRAFT, "saved as a local draft.", invoice))
    if send and created:
        sent = invoices_create_and_send(invoices=[i for _, i in created], actor=actor)
        for (index, _), outcome in zip(created, sent, strict=True):
            results[index] = FileResult(results[index].name, outcome.outcome, outcome.text, outcome.invoice)
    for repeat, first in repeats:  # a repeated file links to the invoice its first copy became
        results[repeat].invoice = results[first].invoice
    return results

"""What staff can ask for. Each service checks the input, records the intent on the invoice row
(the outbox) with its history, then either queues the push after commit or, for a single action
staff wait on (``..._and_send``, ``invoice_send``), sends it now through the outbox and queues only
the retry, with its countdown. One route per action: never both."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.core.exceptions import SuspiciousFileOperation, ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone
from django.utils.text import get_valid_filename
from kombu.exceptions import OperationalError as BrokerUnavailable

from integrations import errors
from integrations.qonto.mappers import latest_allowed_paid_on, paid_on
from invoices import push
from invoices.messages import invoice_name, provider_error_message
from invoices.models import (
    ActionBatch,
    ActionBatchItem,
    Customer,
    Invoice,
    InvoiceEvent,
    InvoiceStatus,
    PendingAction,
    Provider,
    SyncState,
)
from invoices.providers import is_configured
from invoices.sync import MODES, refresh
from invoices.validation import check_pdf, validate_file_new, validate_invoice_fields, validate_number_free

logger = logging.getLogger(__name__)

BROKER_DOWN = (
    "The task queue (CELERY_BROKER_URL) cannot be reached: the outbox sweep sends it once it is back."
)


def _enqueue(invoice_ids: list[int], *, countdown: float | None = None) -> None:
    """Queue the push after commit (in ``countdown`` seconds, for a retry)."""
    transaction.on_commit(lambda: _queue(invoice_ids, countdown))


def _queue(invoice_ids: list[int], countdown: float | None) -> None:
    from invoices.tasks import push_invoices

    try:
        if countdown is None:
            push_invoices.delay(invoice_ids)
        else:
            push_invoices.apply_async((invoice_ids,), countdown=countdown)
    except (BrokerUnavailable, OSError) as exc:
        # The rows stay pending, saying why; the sweep finds them (next_attempt_at) and sends them.
        logger.warning("could not queue the push of %s: %s", invoice_ids, exc)
        rows = Invoice.objects.filter(pk__in=invoice_ids, sync_state=SyncState.PENDING)
        rows.filter(last_error="").update(last_error=BROKER_DOWN)
        rows.exclude(last_error="").exclude(last_error__endswith=BROKER_DOWN).update(
            last_error=Concat(F("last_error"), Value(f" {BROKER_DOWN}"))
        )


# Input checks ------------------------------------------------------------------------------------
def validate_qonto_paid_on(paid_on: date, *, now: datetime | None = None) -> None:
    latest = latest_allowed_paid_on(now or timezone.now())
    if paid_on > latest:
        raise ValidationError(
            f"Qonto does not accept a payment date in the future: choose {latest:%d %B %Y} or earlier."
        )


# Creating invoices ------------------------------------------------------------------------------
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


def validate_requested_paid_at(*, provider: str, paid_at: datetime | None) -> None:
    """A payment moment given with an upload, checked as the form's field."""
    if paid_at is None:
        return
    try:
        validate_paid_at(paid_at, providers=[provider])
    except ValidationError as exc:
        raise ValidationError({"paid_at": exc.messages}) from exc


def display_name(name: str) -> str:
    """The uploaded file's name as staff gave it, for display only (it is never a path)."""
    try:
        return get_valid_filename(name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1])[-200:]
    except SuspiciousFileOperation:
        return ""


def invoice_request_create(*, invoice: Invoice, actor) -> None:
    """Queue the create at the provider (a draft, or a create that failed earlier)."""
    with transaction.atomic():
        _request_create(invoice, actor)
        _enqueue([invoice.pk])
    invoice.refresh_from_db()


def _request_create(invoice: Invoice, actor) -> None:
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


def invoice_create_from_pdf(*, provider: str, pdf_name: str, pdf_content: bytes, actor, **fields) -> Invoice:
    with transaction.atomic():
        invoice = invoice_create_draft(
            provider=provider, pdf_name=pdf_name, pdf_content=pdf_content, actor=actor, **fields
        )
        invoice_request_create(invoice=invoice, actor=actor)
    return invoice


def invoice_create_and_send(*, provider: str, pdf_name: str, pdf_content: bytes, actor, **fields) -> Sent:
    """Keep the upload and send it at once: staff see the provider's answer."""
    with transaction.atomic():
        invoice = invoice_create_draft(
            provider=provider, pdf_name=pdf_name, pdf_content=pdf_content, actor=actor, **fields
        )
        _request_create(invoice, actor)
    (sent,) = _send_now([invoice])
    return sent


# Marking paid ------------------------------------------------------------------------------------
class Skip(Exception):
    """An invoice the action does not apply to, with the reason staff will read."""


def _check_can_mark_paid(invoice: Invoice) -> None:
    if not invoice.remote_id:
        raise Skip("not at the provider yet")
    if invoice.removed_at:
        raise Skip("removed at the provider")
    if invoice.pending_action:
        raise Skip(f"already waiting: {invoice.get_pending_action_display().lower()}")
    if invoice.status == InvoiceStatus.PAID:
        raise Skip("already paid")
    if invoice.status != InvoiceStatus.OPEN:
        raise Skip(f"status is {invoice.get_status_display().lower()}")


def _record_mark_paid(invoice: Invoice, *, paid_at: datetime, actor) -> bool:
    updated = (
        Invoice.objects.filter(pk=invoice.pk, pending_action="", status=InvoiceStatus.OPEN)
        .exclude(remote_id=None)
        .update(
            sync_state=SyncState.PENDING,
            pending_action=PendingAction.MARK_PAID,
            requested_paid_at=paid_at,
            requested_paid_on=paid_on(paid_at),
            attempts=0,
            next_attempt_at=None,
            last_error="",
        )
    )
    if updated:
        InvoiceEvent.objects.create(
            invoice=invoice,
            kind=InvoiceEvent.Kind.PAYMENT_REQUESTED,
            actor=actor,
            message=f"Paid on {timezone.localtime(paid_at):%Y-%m-%d %H:%M}.",
        )
    return bool(updated)


def validate_paid_at(paid_at: datetime, *, providers: Iterable[str]) -> None:
    """A payment moment staff give. MijnKlantportaal keeps the moment: not in the future. Qonto
    keeps the date in Paris: not after today there, whatever the hour."""
    providers = set(providers)
    if providers - {Provider.QONTO} and paid_at > timezone.now():
        raise ValidationError("The payment moment cannot be in the future.")
    if Provider.QONTO in providers:
        validate_qonto_paid_on(paid_on(paid_at))


def _check_paid_at(invoices: Iterable[Invoice], paid_at: datetime) -> None:
    validate_paid_at(paid_at, providers={i.provider for i in invoices})


def invoice_mark_paid(*, invoice: Invoice, paid_at: datetime, actor) -> None:
    """Queue marking one invoice paid; raises ValidationError with the reason when it cannot be."""
    with transaction.atomic():
        _request_mark_paid(invoice, paid_at, actor)
        _enqueue([invoice.pk])
    invoice.refresh_from_db()


def invoice_mark_paid_and_send(*, invoice: Invoice, paid_at: datetime, actor) -> Sent:
    """Mark one invoice paid at the provider now: staff see the provider's answer."""
    with transaction.atomic():
        _request_mark_paid(invoice, paid_at, actor)
    (sent,) = _send_now([invoice])
    return sent


def _request_mark_paid(invoice: Invoice, paid_at: datetime, actor) -> None:
    _check_paid_at([invoice], paid_at)
    try:
        _check_can_mark_paid(invoice)
    except Skip as exc:
        raise ValidationError(f"{invoice} cannot be marked paid: {exc}.") from exc
    if not _record_mark_paid(invoice, paid_at=paid_at, actor=actor):
        raise ValidationError(f"{invoice} changed meanwhile; reload the page.")


@dataclass
class BatchReport:
    batch: ActionBatch
    queued: list[Invoice] = field(default_factory=list)
    skipped: list[tuple[Invoice, str]] = field(default_factory=list)


def invoices_bulk_mark_paid(*, invoices: Iterable[Invoice], paid_at: datetime, actor) -> BatchReport:
    invoices = list(invoices)
    _check_paid_at(invoices, paid_at)
    with transaction.atomic():
        # Locked up front in id order, the order a sync locks them in: locking them one by one in
        # the order given could deadlock with a sync of the same page.
        present = set(
            Invoice.objects.select_for_update()
            .filter(pk__in=[i.pk for i in invoices])
            .exclude(remote_id=None)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        report = BatchReport(ActionBatch.objects.create(kind=ActionBatch.Kind.MARK_PAID, actor=actor))
        items = []
        for invoice in invoices:
            if invoice.remote_id and invoice.pk not in present:
                # A second copy a sync made of an invoice we were creating, merged into it since.
                report.skipped.append((invoice, "no longer listed; reload the page"))
                continue
            try:
                _check_can_mark_paid(invoice)
                if not _record_mark_paid(invoice, paid_at=paid_at, actor=actor):
                    raise Skip("changed meanwhile")
            except Skip as exc:
                report.skipped.append((invoice, str(exc)))
                items.append(ActionBatchItem(batch=report.batch, invoice=invoice, note=str(exc)))
                continue
            report.queued.append(invoice)
            items.append(ActionBatchItem(batch=report.batch, invoice=invoice, queued=True))
        ActionBatchItem.objects.bulk_create(items)
        for invoice in report.queued:
            _enqueue([invoice.pk])
    return report


def invoices_bulk_request_create(*, invoices: Iterable[Invoice], actor) -> BatchReport:
    return _bulk_request(
        invoices,
        actor,
        ActionBatch.Kind.CREATE,
        lambda invoice: invoice_request_create(invoice=invoice, actor=actor),
    )


def invoices_bulk_retry(*, invoices: Iterable[Invoice], actor) -> BatchReport:
    """Queue the failed changes of these invoices again; the others are skipped, saying why."""
    return _bulk_request(
        invoices, actor, ActionBatch.Kind.RETRY, lambda invoice: invoice_retry(invoice=invoice, actor=actor)
    )


def invoices_create_and_send(*, invoices: list[Invoice], actor) -> list[Sent]:
    """Send drafts at once (Qonto: five files a request); one plain sentence per invoice."""
    report = _bulk_request(
        invoices, actor, ActionBatch.Kind.CREATE, lambda invoice: _request_create(invoice, actor)
    )
    skipped = dict(report.skipped)
    # By the row sent: a row absorbed by another upload of its file answers with that one.
    sent = (
        dict(zip([i.pk for i in report.queued], _send_now(report.queued), strict=True))
        if report.queued
        else {}
    )
    return [sent.get(i.pk) or Sent(i, Sent.FAILED, f"not sent: {skipped.get(i, '')}") for i in invoices]


def _bulk_request(invoices: Iterable[Invoice], actor, kind: str, request) -> BatchReport:
    with transaction.atomic():
        report = BatchReport(ActionBatch.objects.create(kind=kind, actor=actor))
        items = []
        for invoice in invoices:
            try:
                request(invoice)
            except ValidationError as exc:
                reason = " ".join(exc.messages)
                report.skipped.append((invoice, reason))
                items.append(ActionBatchItem(batch=report.batch, invoice=invoice, note=reason[:255]))
                continue
            report.queued.append(invoice)
            items.append(ActionBatchItem(batch=report.batch, invoice=invoice, queued=True))
        ActionBatchItem.objects.bulk_create(items)
    return report


def invoice_retry(*, invoice: Invoice, actor) -> None:
    """Queue a failed change again, as staff asked (a create goes on with its look-up, if any)."""
    with transaction.atomic():
        _request_again(invoice, actor)
        _enqueue([invoice.pk])
    invoice.refresh_from_db()


def invoice_send(*, invoice: Invoice, actor) -> Sent:
    """The invoice page's "Send": a draft's create, or a failed change again, sent now."""
    with transaction.atomic():
        if invoice.sync_state == SyncState.FAILED:
            _request_again(invoice, actor)
        else:
            _request_create(invoice, actor)
    (sent,) = _send_now([invoice])
    return sent


def _request_again(invoice: Invoice, actor) -> None:
    if invoice.sync_state != SyncState.FAILED:
        raise ValidationError(f"{invoice} has nothing to retry.")
    if not invoice.remote_id:
        _request_create(invoice, actor)
        return
    if invoice.pending_action != PendingAction.MARK_PAID:
        raise ValidationError(f"{invoice} has nothing to retry.")
    Invoice.objects.filter(pk=invoice.pk, sync_state=SyncState.FAILED).update(
        sync_state=SyncState.PENDING, attempts=0, next_attempt_at=None
    )
    InvoiceEvent.objects.create(
        invoice=invoice, kind=InvoiceEvent.Kind.PAYMENT_REQUESTED, actor=actor, message="Retry."
    )


# Sending now -------------------------------------------------------------------------------------
@dataclass
class Sent:
    """Where one invoice stands after it was sent in the request, in one plain sentence."""

    DONE, FAILED, WAITING = "done", "failed", "waiting"

    invoice: Invoice
    outcome: str
    text: str


def _send_now(invoices: list[Invoice]) -> list[Sent]:
    """Push now; what will be retried is queued with its countdown (the sweep is the safety net)."""
    result = push.push_invoices([i.pk for i in invoices])
    if result.retrying:
        _enqueue(result.retrying, countdown=result.retry_in)
    sent = []
    for invoice in invoices:
        try:
            invoice.refresh_from_db()
        except Invoice.DoesNotExist:
            sent.append(_absorbed(invoice))
            continue
        if invoice.pk in result.failed:
            outcome = Sent.FAILED
        else:
            outcome = Sent.DONE if invoice.pk in result.done else Sent.WAITING
        sent.append(Sent(invoice, outcome, _describe(invoice, result)))
    return sent


def _absorbed(invoice: Invoice) -> Sent:
    """Another upload of the same file reached the provider first; that row holds the invoice
    (with this row's history) now."""
    kept = (
        Invoice.objects.filter(provider=invoice.provider, pdf_sha256=invoice.pdf_sha256)
        .exclude(remote_id=None)
        .order_by("pk")
        .first()
    )
    if kept is None:
        return Sent(invoice, Sent.WAITING, "sent together with another upload of the same file; reload.")
    return Sent(kept, Sent.DONE, f"the same file as another upload: imported once, as invoice {kept}.")


def _describe(invoice: Invoice, result: push.PushResult) -> str:
    provider = invoice.get_provider_display()
    if invoice.pk in result.failed:
        return (
            f"not done. {result.failed[invoice.pk]} Your upload is kept: open it and use"
            " “Correct and send again”, or “Send again” once the cause is fixed."
        )
    if invoice.sync_state == SyncState.SYNCED:
        if invoice.status == InvoiceStatus.PAID and invoice.paid_at:
            return f"confirmed by {provider} (paid {timezone.localtime(invoice.paid_at):%Y-%m-%d %H:%M})."
        return f"confirmed by {provider}."
    if invoice.sync_state == SyncState.LOCAL_DRAFT:
        return "saved as a local draft."
    if invoice.last_error:
        return f"not confirmed yet ({invoice.last_error}); it will be sent again automatically."
    return f"queued for {provider}."


# Reading from the provider -----------------------------------------------------------------------
def invoice_fetch_pdf(*, invoice: Invoice) -> bool:
    """A fresh copy of the provider's PDF, kept; False when it has none. A provider error is
    raised as a ValidationError in plain words."""
    try:
        return refresh.invoice_fetch_pdf(invoice=invoice)
    except errors.ProviderError as exc:
        raise ValidationError(
            f"{invoice_name(invoice)}: its PDF could not be fetched. {provider_error_message(exc)}"
        ) from exc


def invoice_refresh(*, invoice: Invoice) -> Sent:
    """The invoice page's "Refresh from provider": read it from its provider now, in one sentence
    (DONE refreshed, WAITING removed at the provider, FAILED with what to do next)."""
    name, provider = invoice_name(invoice), invoice.get_provider_display()
    if not invoice.remote_id:
        return Sent(invoice, Sent.FAILED, f"{name} is not at {provider} yet: there is nothing to refresh.")
    try:
        outcome = refresh.refresh_invoices(invoice_ids=[invoice.pk])
    except errors.ProviderRateLimited as exc:
        outcome = {"failed": {invoice.pk: exc}}
    invoice.refresh_from_db()
    if invoice.pk in outcome["failed"]:
        reason = provider_error_message(outcome["failed"][invoice.pk])
        return Sent(invoice, Sent.FAILED, f"{name} could not be refreshed: {reason}")
    if outcome["removed"]:
        return Sent(
            invoice, Sent.WAITING, f"{name} no longer exists at {provider}: it is marked removed here."
        )
    return Sent(invoice, Sent.DONE, f"{name} refreshed from {provider}.")


def invoices_bulk_refresh(*, invoices: Iterable[Invoice], actor) -> BatchReport:
    """Queue the refresh of many invoices as one batch; its page shows the progress."""
    from invoices.tasks import refresh_batch

    with transaction.atomic():
        report = BatchReport(ActionBatch.objects.create(kind=ActionBatch.Kind.REFRESH, actor=actor))
        items = []
        for invoice in invoices:
            if invoice.remote_id:
                report.queued.append(invoice)
                items.append(ActionBatchItem(batch=report.batch, invoice=invoice, queued=True))
            else:
                report.skipped.append((invoice, "not at the provider yet"))
                items.append(
                    ActionBatchItem(batch=report.batch, invoice=invoice, note="not at the provider yet")
                )
        ActionBatchItem.objects.bulk_create(items)
        if report.queued:
            batch_id = report.batch.pk
            transaction.on_commit(lambda: refresh_batch.delay(batch_id))
    return report


def actionbatch_refresh(*, batch: ActionBatch) -> float | None:
    """Refresh the invoices of a batch that are not done yet, recording each outcome on its item.
    Returns the seconds to wait when a provider (or our budget for it) says slow down, else None."""
    pending = batch.items.filter(queued=True, finished_at=None).select_related("invoice").order_by("pk")
    for item in pending.iterator(chunk_size=100):
        try:
            outcome = refresh.refresh_invoices(invoice_ids=[item.invoice_id])
        except errors.ProviderRateLimited as exc:
            return max(exc.retry_after, 1.0)
        failure = outcome["failed"].get(item.invoice_id)
        if failure is not None:
            note, failed = provider_error_message(failure), True
        elif outcome["removed"]:
            note, failed = "no longer exists at the provider: marked removed here", False
        elif not outcome["refreshed"]:
            note, failed = "not at the provider (any more)", True
        else:
            note, failed = "", False
        ActionBatchItem.objects.filter(pk=item.pk).update(
            finished_at=timezone.now(), failed=failed, note=note[:255]
        )
    return None


# Syncing by hand ---------------------------------------------------------------------------------
def sync_request(*, provider: str, mode: str) -> None:
    """Queue a sync run of one provider now, as the schedule would."""
    from invoices.tasks import sync_provider

    if provider not in Provider.values or mode not in MODES:
        raise ValidationError("Choose a provider and a kind of sync.")
    if not is_configured(provider):
        raise ValidationError(f"{Provider(provider).label} has no credentials configured: nothing to sync.")
    transaction.on_commit(lambda: sync_provider.delay(provider, mode))

"""Correcting and discarding an upload that never reached its provider: a local draft or a
failed upload is corrected (fields and PDF) and sent again, or discarded with its history kept.

Routes (see ``sending``):
- ``invoice_correct``, ``invoice_discard``: local only, nothing reaches the provider.
- ``invoice_correct_and_send``: corrected, then sent now (``retry.invoice_send``); staff read the
  answer. The correction is kept whatever the answer.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction

from invoices.models import Customer, Invoice, InvoiceEvent, PendingAction, Provider, SyncState
from invoices.services.intake import display_name
from invoices.services.retry import invoice_send
from invoices.services.sending import Sent
from invoices.validation import (
    check_pdf,
    validate_file_new,
    validate_invoice_fields,
    validate_requested_paid_at,
)

#: What a row must be for staff to correct or discard it: ours alone, never seen by a provider.
LOCAL_STATES = (SyncState.LOCAL_DRAFT, SyncState.FAILED)


def local_refusal(invoice: Invoice) -> str:
    """Why the invoice can no longer be corrected or discarded here; empty when it can."""
    provider = invoice.get_provider_display()
    if invoice.sync_state == SyncState.DISCARDED:
        return f"{invoice} was discarded: upload the file again to start over."
    if invoice.remote_id:
        return f"{invoice} is at {provider}: change it there."
    if invoice.outcome_unknown:
        return (
            f"{invoice} may already be at {provider}: an earlier sending got no answer."
            " Use “Send again”, which looks for it there first."
        )
    if invoice.sync_state not in LOCAL_STATES:
        return f"{invoice} is being sent to {provider}: wait for the outcome, then reload the page."
    return ""


def _lock_local(invoice: Invoice) -> Invoice:
    """The row, locked, still ours alone; a ValidationError saying why not otherwise."""
    row = Invoice.objects.select_for_update().get(pk=invoice.pk)
    refusal = local_refusal(row)
    if refusal:
        raise ValidationError(refusal)
    return row


def invoice_correct(
    *,
    invoice: Invoice,
    actor,
    pdf_name: str = "",
    pdf_content: bytes = b"",
    customer: Customer | None = None,
    number: str = "",
    issue_date: date | None = None,
    due_date: date | None = None,
    amount: Decimal | None = None,
    paid_at: datetime | None = None,
    send_notification: bool = False,
    zero_amount_confirmed: bool = False,
) -> Invoice:
    """Correct a draft or a failed upload: its fields (MijnKlantportaal) and its PDF. It becomes a
    local draft again, ready to be sent; the history records what changed and the replaced file."""
    refusal = local_refusal(invoice)
    if refusal:
        raise ValidationError(refusal)
    sha256 = check_pdf(name=pdf_name, content=pdf_content) if pdf_content else ""
    if sha256:
        validate_file_new(provider=invoice.provider, name=pdf_name, sha256=sha256, exclude_pk=invoice.pk)
    elif invoice.provider == Provider.QONTO:
        raise ValidationError({"pdf": ["Choose the corrected PDF: Qonto reads the invoice from the file."]})
    fields: dict = {}
    if invoice.provider == Provider.MKP:
        validate_invoice_fields(
            provider=invoice.provider,
            customer=customer,
            number=number,
            issue_date=issue_date,
            due_date=due_date,
            amount=amount,
            zero_amount_confirmed=zero_amount_confirmed,
            exclude_pk=invoice.pk,
        )
        validate_requested_paid_at(provider=invoice.provider, paid_at=paid_at)
        fields = {
            "customer": customer,
            "customer_remote_id": customer.remote_id,
            "customer_name": customer.name,
            "number": number,
            "issue_date": issue_date,
            "due_date": due_date,
            "amount": amount,
            "requested_paid_at": paid_at,
            "send_notification": send_notification,
        }
    with transaction.atomic():
        row = _lock_local(invoice)
        changes = {
            name: [_shown(getattr(row, name)), _shown(value)]
            for name, value in fields.items()
            if getattr(row, name) != value and name not in ("customer_remote_id", "customer_name")
        }
        for name, value in fields.items():
            setattr(row, name, value)
        old_file = row.pdf.name if sha256 and row.pdf else ""
        if sha256:
            changes["pdf"] = [f"{row.pdf_name} ({row.pdf_sha256[:12]})", f"{pdf_name} ({sha256[:12]})"]
            row.pdf.save(pdf_name, ContentFile(pdf_content), save=False)
            row.pdf_name = display_name(pdf_name)
            row.pdf_sha256 = sha256
        if not changes:
            raise ValidationError("Nothing was changed. Correct a field or choose another PDF.")
        was = row.get_sync_state_display().lower()
        row.sync_state = SyncState.LOCAL_DRAFT
        row.pending_action = PendingAction.NONE
        row.attempts = 0
        row.next_attempt_at = None
        row.last_error = ""
        row.save()
        InvoiceEvent.objects.create(
            invoice=row,
            kind=InvoiceEvent.Kind.CORRECTED,
            actor=actor,
            message=f"Corrected (was {was}); not sent yet.",
            changes=changes,
        )
        if old_file:
            storage = row.pdf.storage
            transaction.on_commit(lambda: storage.delete(old_file))
    invoice.refresh_from_db()
    return invoice


def _shown(value) -> str | None:
    """A value as the history keeps it (JSON)."""
    if value is None:
        return None
    if isinstance(value, Customer):
        return value.name or value.remote_id
    return str(value)


def invoice_correct_and_send(*, invoice: Invoice, actor, **correction) -> Sent:
    """Correct, then send at once: staff see the provider's answer. The correction is kept
    whatever the answer."""
    invoice_correct(invoice=invoice, actor=actor, **correction)
    return invoice_send(invoice=invoice, actor=actor)


def invoice_discard(*, invoice: Invoice, actor) -> Invoice:
    """Set aside an upload that never reached its provider. The row, its PDF and its history stay
    for the record; its number and file are free to be uploaded again."""
    with transaction.atomic():
        row = _lock_local(invoice)
        was = row.get_sync_state_display().lower()
        Invoice.objects.filter(pk=row.pk).update(
            sync_state=SyncState.DISCARDED,
            pending_action=PendingAction.NONE,
            next_attempt_at=None,
            last_error="",
        )
        InvoiceEvent.objects.create(
            invoice=row,
            kind=InvoiceEvent.Kind.DISCARDED,
            actor=actor,
            message=f"Discarded (was {was}); it never reached {row.get_provider_display()}.",
        )
    invoice.refresh_from_db()
    return invoice

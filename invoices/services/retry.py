"""Sending again what failed, and the invoice page's "Send".

Routes (see ``sending``):
- ``invoice_retry``, ``invoices_bulk_retry``: the failed change queued again (a create goes on with
  its look-up, if any); in bulk as one batch, the others skipped, saying why.
- ``invoice_send``: a draft's create, or a failed change again, sent now; staff read the answer.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction

from invoices.models import ActionBatch, Invoice, InvoiceEvent, PendingAction, SyncState
from invoices.services import sending
from invoices.services.batches import BatchReport, actionbatch_run
from invoices.services.intake import request_create


def invoice_retry(*, invoice: Invoice, actor) -> None:
    """Queue a failed change again, as staff asked (a create goes on with its look-up, if any)."""
    with transaction.atomic():
        _request_again(invoice, actor)
        sending.enqueue_push([invoice.pk])
    invoice.refresh_from_db()


def invoices_bulk_retry(*, invoices: Iterable[Invoice], actor) -> BatchReport:
    """Queue the failed changes of these invoices again; the others are skipped, saying why."""
    return actionbatch_run(
        invoices=invoices,
        actor=actor,
        kind=ActionBatch.Kind.RETRY,
        request=lambda invoice: invoice_retry(invoice=invoice, actor=actor),
    )


def invoice_send(*, invoice: Invoice, actor) -> sending.Sent:
    """The invoice page's "Send": a draft's create, or a failed change again, sent now."""
    with transaction.atomic():
        if invoice.sync_state == SyncState.FAILED:
            _request_again(invoice, actor)
        else:
            request_create(invoice, actor)
    (sent,) = sending.send_now([invoice])
    return sent


def _request_again(invoice: Invoice, actor) -> None:
    if invoice.sync_state != SyncState.FAILED:
        raise ValidationError(f"{invoice} has nothing to retry.")
    if not invoice.remote_id:
        request_create(invoice, actor)
        return
    if invoice.pending_action != PendingAction.MARK_PAID:
        raise ValidationError(f"{invoice} has nothing to retry.")
    Invoice.objects.filter(pk=invoice.pk, sync_state=SyncState.FAILED).update(
        sync_state=SyncState.PENDING, attempts=0, next_attempt_at=None
    )
    InvoiceEvent.objects.create(
        invoice=invoice, kind=InvoiceEvent.Kind.PAYMENT_REQUESTED, actor=actor, message="Retry."
    )

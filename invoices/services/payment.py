"""Marking invoices paid at their provider. Never set "paid" here: the row records the request (the
outbox), and the invoice is paid once the provider's answer is read back.

Routes (see ``sending``):
- ``invoice_mark_paid``: one invoice, queued.
- ``invoice_mark_paid_and_send``: one invoice, sent now; staff read the provider's answer.
- ``invoices_bulk_mark_paid``: many, as one batch, each queued; the others skipped, saying why.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction

from integrations.qonto.mappers import paid_on
from invoices import formatting
from invoices.models import (
    ActionBatch,
    ActionBatchItem,
    Invoice,
    InvoiceEvent,
    InvoiceStatus,
    PendingAction,
    SyncState,
)
from invoices.services import sending
from invoices.services.batches import BatchReport
from invoices.validation import validate_paid_at


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
            message=f"Paid on {formatting.payment(provider=invoice.provider, paid_at=paid_at)}.",
        )
    return bool(updated)


def _check_paid_at(invoices: Iterable[Invoice], paid_at: datetime) -> None:
    validate_paid_at(paid_at, providers={i.provider for i in invoices})


def invoice_mark_paid(*, invoice: Invoice, paid_at: datetime, actor) -> None:
    """Queue marking one invoice paid; raises ValidationError with the reason when it cannot be."""
    with transaction.atomic():
        _request_mark_paid(invoice, paid_at, actor)
        sending.enqueue_push([invoice.pk])
    invoice.refresh_from_db()


def invoice_mark_paid_and_send(*, invoice: Invoice, paid_at: datetime, actor) -> sending.Sent:
    """Mark one invoice paid at the provider now: staff see the provider's answer."""
    with transaction.atomic():
        _request_mark_paid(invoice, paid_at, actor)
    (sent,) = sending.send_now([invoice])
    return sent


def _request_mark_paid(invoice: Invoice, paid_at: datetime, actor) -> None:
    _check_paid_at([invoice], paid_at)
    try:
        _check_can_mark_paid(invoice)
    except Skip as exc:
        raise ValidationError(f"{invoice} cannot be marked paid: {exc}.") from exc
    if not _record_mark_paid(invoice, paid_at=paid_at, actor=actor):
        raise ValidationError(f"{invoice} changed meanwhile; reload the page.")


def invoices_bulk_mark_paid(*, invoices: Iterable[Invoice], paid_at: datetime, actor) -> BatchReport:
    """Queue marking each invoice paid, as one batch; the others are skipped, saying why."""
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
            sending.enqueue_push([invoice.pk])
    return report

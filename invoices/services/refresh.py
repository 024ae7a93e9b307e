"""Reading invoices back from their provider, as staff ask.

Routes:
- ``invoice_refresh``, ``invoice_fetch_pdf``: one invoice, read now; staff read the outcome.
- ``invoices_bulk_refresh``: many, as one batch, queued (``tasks.refresh_batch``); its page shows
  the progress. The task runs ``actionbatch_refresh``, which reads them one by one and says when
  the provider asks it to slow down.

A provider error becomes a ``ValidationError`` or a ``Sent`` in plain words.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from integrations import errors
from invoices.messages import invoice_name, provider_error_message
from invoices.models import ActionBatch, ActionBatchItem, Invoice
from invoices.services.batches import BatchReport
from invoices.services.sending import Sent
from invoices.sync import refresh as pull


def invoice_fetch_pdf(*, invoice: Invoice) -> bool:
    """A fresh copy of the provider's PDF, kept; False when it has none. A provider error is
    raised as a ValidationError in plain words."""
    try:
        return pull.invoice_fetch_pdf(invoice=invoice)
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
        outcome = pull.refresh_invoices(invoice_ids=[invoice.pk])
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
            outcome = pull.refresh_invoices(invoice_ids=[item.invoice_id])
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

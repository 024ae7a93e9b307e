"""Celery tasks: thin wrappers that take ids, call a service, and reschedule when told to."""

from __future__ import annotations

from celery import shared_task

from invoices import push, sync
from invoices.models import Invoice, Provider
from invoices.providers import is_configured


@shared_task(bind=True, max_retries=None, acks_late=True)
def push_invoices(self, invoice_ids: list[int]) -> dict:
    """Send the pending changes of these invoices. Retries reschedule the task (never sleep)."""
    result = push.push_invoices(invoice_ids)
    if result.retry_in is not None:
        raise self.retry(countdown=result.retry_in)
    return {"done": result.done, "failed": list(result.failed)}


@shared_task
def sweep_outbox() -> int:
    """Re-enqueue what is due: retries whose task got lost, claims whose worker died."""
    due = push.due_for_sweep()
    qonto = list(Invoice.objects.filter(pk__in=due, provider=Provider.QONTO).values_list("pk", flat=True))
    for start in range(0, len(qonto), push.QONTO_BATCH):
        push_invoices.delay(qonto[start : start + push.QONTO_BATCH])
    for pk in sorted(set(due) - set(qonto)):
        push_invoices.delay([pk])
    return len(due)


@shared_task(acks_late=True)
def sync_provider(provider: str, mode: str = sync.MODE_QUICK) -> dict:
    if not is_configured(provider):
        return {"run": None, "status": "not configured"}
    run = sync.sync_provider(provider=provider, mode=mode)
    return {"run": run.pk, "status": run.status}


@shared_task
def refresh_invoices(invoice_ids: list[int]) -> dict:
    from invoices.sync.refresh import refresh_invoices as refresh

    return refresh(invoice_ids=invoice_ids)

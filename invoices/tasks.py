"""Celery tasks: thin wrappers that take ids, call a service, and reschedule when told to."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from invoices import push, sync
from invoices.models import ActionBatch, SyncRun, WebhookDelivery
from invoices.providers import is_configured
from invoices.retries import backoff_seconds
from invoices.services.dashboard_snapshot import dashboard_snapshot_refresh, dashboard_snapshot_started
from invoices.services.refresh import actionbatch_refresh
from invoices.sync.runs import abandon_stopped_runs
from invoices.webhooks.processing import webhook_delivery_process


@shared_task(bind=True, max_retries=None, acks_late=True)
def push_invoices(self, invoice_ids: list[int]) -> dict:
    """Send the pending changes of these invoices. Retries reschedule the task (never sleep), after
    the provider's Retry-After or the backoff; a database that cannot be reached is waited out too."""
    try:
        result = push.push_invoices(invoice_ids)
    except (OperationalError, InterfaceError) as exc:
        cap = settings.PUSH_BACKOFF_CAP_SECONDS
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries + 1, cap=cap)) from exc
    if result.retry_in is not None:
        raise self.retry(countdown=result.retry_in)
    return {"done": result.done, "failed": list(result.failed)}


@shared_task
def sweep_outbox() -> int:
    """Re-enqueue what is due: retries whose task got lost, claims whose worker died."""
    batches = push.due_batches()
    for invoice_ids in batches:
        push_invoices.delay(invoice_ids)
    return sum(len(invoice_ids) for invoice_ids in batches)


@shared_task(bind=True, acks_late=True, max_retries=5)
def sync_provider(self, provider: str, mode: str = sync.MODE_QUICK) -> dict:
    if not is_configured(provider):
        return {"run": None, "status": "not configured"}
    run = sync.sync_provider(provider=provider, mode=mode)
    # A quick run comes again within the minute; a failed customer or full run is tried again soon
    # and resumes where it stopped.
    if (
        run.status == SyncRun.Status.FAILED
        and mode != sync.MODE_QUICK
        and self.request.retries < self.max_retries
    ):
        raise self.retry(countdown=settings.SYNC_RETRY_FAILED_SECONDS)
    return {"run": run.pk, "status": run.status}


@shared_task
def sweep_sync_runs() -> int:
    """Mark the runs whose worker stopped (no heartbeat on their lease) as abandoned."""
    return abandon_stopped_runs()


@shared_task(bind=True, max_retries=None, acks_late=True)
def refresh_batch(self, batch_id: int) -> None:
    """Refresh the invoices of a bulk "Refresh" batch; told to slow down, go on later where it stopped."""
    batch = ActionBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        return
    retry_in = actionbatch_refresh(batch=batch)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)


@shared_task(bind=True, max_retries=None, acks_late=True)
def process_webhook_delivery(self, delivery_id: int, again: bool = False) -> None:
    """Process a stored webhook delivery; told to wait (the request budget, the provider down), go
    on later. The number of attempts is kept on the delivery, which bounds the retries."""
    try:
        delivery = WebhookDelivery.objects.filter(pk=delivery_id).first()
        if delivery is None:
            return
        retry_in = webhook_delivery_process(delivery=delivery, again=again)
    except (OperationalError, InterfaceError) as exc:  # the database is waited out, as for a push
        cap = settings.PUSH_BACKOFF_CAP_SECONDS
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries + 1, cap=cap)) from exc
    if retry_in is not None:
        raise self.retry(countdown=retry_in)


@shared_task
def refresh_dashboard_snapshot(queued_by: str = "") -> bool:
    """Recompute the dashboard's figures (every minute, and after a change that moves them:
    ``queued_by`` is then the holder of the "queued" mark, let go on start). Returns whether the
    snapshot was stored."""
    dashboard_snapshot_started(queued_by=queued_by)
    return dashboard_snapshot_refresh() is not None

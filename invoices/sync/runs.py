"""One sync run of a provider: its lease, its SyncRun row, and what it ends in; and the sweep that
marks the runs whose worker stopped as abandoned."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from integrations import errors
from integrations.ratelimit import SCAN
from invoices.models import Lease, Provider, SyncRun
from invoices.providers import client_for
from invoices.services import dashboard_snapshot  # a module: it imports invoices.sync in turn
from invoices.sync import leases
from invoices.sync.collector import bulk_allocations
from invoices.sync.customers import customers
from invoices.sync.mirror import link_orphan_invoices
from invoices.sync.mkp import mkp_full, mkp_quick
from invoices.sync.pages import RunRecorder
from invoices.sync.qonto import qonto_full, qonto_quick

logger = logging.getLogger(__name__)

MODE_QUICK = "quick"
MODE_FULL = "full"
MODE_CUSTOMERS = "customers"
MODES = (MODE_QUICK, MODE_FULL, MODE_CUSTOMERS)


def sync_provider(*, provider: str, mode: str = MODE_QUICK) -> SyncRun:
    if mode not in MODES:
        raise ValueError(f"Unknown sync mode {mode!r}; choose one of {', '.join(MODES)}.")
    with leases.lease(lease_name(provider, mode), ttl=lease_ttl()) as heartbeat:
        if heartbeat is None:
            return SyncRun.objects.create(
                provider=provider, kind=mode, status=SyncRun.Status.SKIPPED, finished_at=timezone.now()
            )
        run = SyncRun.objects.create(provider=provider, kind=mode, holder=heartbeat.holder)
        client = client_for(provider, max_wait=settings.SYNC_MAX_WAIT_SECONDS, priority=SCAN)
        recorder = RunRecorder(run, client)
        status, error = SyncRun.Status.SUCCEEDED, ""
        try:
            with bulk_allocations():
                removed = RUNNERS[(provider, mode)](client, recorder, heartbeat.check)
            # After the pages are committed, so rows written by a concurrent customer or invoice
            # run are visible.
            link_orphan_invoices(provider)
        except (errors.ProviderError, leases.LeaseLost) as exc:
            # What was written stays; the next run resumes where this one stopped.
            status, error, removed = SyncRun.Status.FAILED, str(exc), 0
            logger.warning("%s %s sync failed: %s", provider, mode, exc)
        except Exception as exc:
            # Not the provider (a database error, a bug): the run must not stay "running" forever.
            SyncRun.objects.filter(pk=run.pk).update(
                status=SyncRun.Status.FAILED,
                error=f"Stopped by an internal error ({type(exc).__name__}); see the worker log.",
                requests=client.request_count,
                finished_at=timezone.now(),
            )
            raise
        SyncRun.objects.filter(pk=run.pk).update(
            status=status,
            error=error,
            removed=removed,
            requests=client.request_count,
            finished_at=timezone.now(),
        )
        run.refresh_from_db()
        if mode != MODE_CUSTOMERS and (run.created or run.updated or run.removed):
            dashboard_snapshot.dashboard_snapshot_queue()  # the dashboard's figures, recomputed off this path
        return run


RUNNERS = {
    (Provider.MKP, MODE_QUICK): mkp_quick,
    (Provider.MKP, MODE_FULL): mkp_full,
    (Provider.MKP, MODE_CUSTOMERS): customers(Provider.MKP),
    (Provider.QONTO, MODE_QUICK): qonto_quick,
    (Provider.QONTO, MODE_FULL): qonto_full,
    (Provider.QONTO, MODE_CUSTOMERS): customers(Provider.QONTO),
}


def lease_name(provider: str, mode: str) -> str:
    # Customers and invoices are separate lists at the providers: one run of each at a time.
    return f"sync:{provider}:{'customers' if mode == MODE_CUSTOMERS else 'invoices'}"


def lease_ttl() -> timedelta:
    return timedelta(seconds=settings.SYNC_LEASE_TTL_SECONDS)


def abandon_stopped_runs() -> int:
    """Mark as abandoned the running runs whose holder no longer holds their lease (it expired:
    the worker stopped heartbeating; or another run has it now). Returns how many."""
    now, abandoned = timezone.now(), 0
    for run in SyncRun.objects.filter(status=SyncRun.Status.RUNNING):
        held = Lease.objects.filter(
            name=lease_name(run.provider, run.kind), holder=run.holder or None
        ).first()
        if held is not None and held.expires_at > now:
            continue
        if held is not None:
            last_beat = timezone.localtime(held.expires_at - lease_ttl())
            why = f"no heartbeat since {last_beat:%H:%M:%S}"
        else:
            why = "it no longer holds its lease"
        abandoned += SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.RUNNING).update(
            status=SyncRun.Status.ABANDONED,
            error=f"Its worker stopped ({why}); the next run resumes where it stopped.",
            finished_at=now,
        )
    return abandoned

"""Pulls the providers into the local mirror. One run per provider at a time (a database lease),
each run recorded as a SyncRun with its counts.

MijnKlantportaal has no change filter and 15 invoices a page, so each run spends a fixed page
budget: the first page and the newest pages every run, then the next slice of a rolling full pass
that resumes where the previous run stopped. A completed pass marks what it did not see as removed.

Qonto is incremental: updated_at from the last successful cursor (minus an overlap) to now; a full
reconciliation now and then catches what the window missed and what was deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from integrations import errors
from integrations.types import Page
from invoices import locks
from invoices.collector import bulk_allocations
from invoices.mirror import Counts, Scan, link_orphan_invoices, upsert_customers, upsert_invoices
from invoices.models import Invoice, Provider, SyncCursor, SyncRun, SyncState
from invoices.prefetch import prefetched
from invoices.providers import client_for
from invoices.refresh import refresh_invoices
from invoices.writers import Writers

logger = logging.getLogger(__name__)

LEASE_TTL = timedelta(minutes=15)
QONTO_OVERLAP = timedelta(minutes=5)

MODE_QUICK = "quick"
MODE_FULL = "full"
MODE_CUSTOMERS = "customers"
MODES = (MODE_QUICK, MODE_FULL, MODE_CUSTOMERS)


def _cursor(provider: str, name: str) -> SyncCursor:
    return SyncCursor.objects.get_or_create(provider=provider, name=name)[0]


def _save_cursor(cursor: SyncCursor, value: str, *, started_at: datetime | None = None) -> None:
    cursor.value = value
    fields = ["value", "updated_at"]
    if started_at is not None:
        cursor.started_at = started_at
        fields.append("started_at")
    cursor.save(update_fields=fields)


class RunRecorder:
    """Adds each page's counts to the SyncRun row as the run goes, so progress is visible."""

    def __init__(self, run: SyncRun, client) -> None:
        self.run = run
        self.client = client

    def add(self, counts: Counts) -> None:
        SyncRun.objects.filter(pk=self.run.pk).update(
            created=F("created") + counts.created,
            updated=F("updated") + counts.updated,
            unchanged=F("unchanged") + counts.unchanged + counts.skipped,
            pages=F("pages") + 1,
            requests=self.client.request_count,
        )


def sync_provider(*, provider: str, mode: str = MODE_QUICK) -> SyncRun:
    if mode not in MODES:
        raise ValueError(f"Unknown sync mode {mode!r}; choose one of {', '.join(MODES)}.")
    # Customers and invoices are separate lists at the providers: one run of each at a time.
    lease_name = f"sync:{provider}:{'customers' if mode == MODE_CUSTOMERS else 'invoices'}"
    with locks.lease(lease_name, ttl=LEASE_TTL) as holder:
        if holder is None:
            return SyncRun.objects.create(
                provider=provider, kind=mode, status=SyncRun.Status.SKIPPED, finished_at=timezone.now()
            )
        run = SyncRun.objects.create(provider=provider, kind=mode)
        client = client_for(provider, max_wait=settings.SYNC_MAX_WAIT_SECONDS)
        recorder = RunRecorder(run, client)
        renew = lambda: locks.acquire(lease_name, holder=holder, ttl=LEASE_TTL)  # noqa: E731
        status, error = SyncRun.Status.SUCCEEDED, ""
        try:
            with bulk_allocations():
                removed = RUNNERS[(provider, mode)](client, recorder, renew)
        except errors.ProviderError as exc:
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
        # After commit, so rows written by a concurrent customer or invoice run are visible.
        link_orphan_invoices(provider)
        SyncRun.objects.filter(pk=run.pk).update(
            status=status,
            error=error,
            removed=removed,
            requests=client.request_count,
            finished_at=timezone.now(),
        )
        run.refresh_from_db()
        return run


def _pull_pages(
    pages, provider: str, recorder: RunRecorder, renew: Callable[[], bool], scan=None, writers: int = 1
) -> Page | None:
    """Upsert every page of an iterator; returns the last page stored.

    Pages are written in groups of about a thousand invoices (one statement a group on PostgreSQL),
    and the next group is fetched in the background while this one is written; with ``writers``
    above 1, that many groups are written at once, each by a thread on its own connection (for the
    long lists of full runs: a quick run's few pages need no extra connections). A group counts as
    fetched when the request for its first page started; it commits together with its counts on
    the run. Pages fetched before a failed request are still stored. With a ``mirror.Scan``,
    unchanged invoices are remembered in it instead of stamped one by one."""

    def groups(pages, rows: int = 1000):
        pages, group, size, fetched_at = iter(pages), [], 0, None
        while True:
            started = timezone.now()
            try:
                page = next(pages)
            except StopIteration:
                break
            except Exception:
                if group:
                    yield fetched_at, group
                raise
            group.append(page)
            size += len(page.items)
            fetched_at = fetched_at or started
            if size >= rows:
                yield fetched_at, group
                group, size, fetched_at = [], 0, None
        if group:
            yield fetched_at, group

    def store(fetched_at: datetime, remotes: list, pages: int) -> None:
        with transaction.atomic():
            recorder.add(
                upsert_invoices(provider=provider, remotes=remotes, fetched_at=fetched_at, scan=scan)
            )
            if pages > 1:  # the recorder counts one page a call
                SyncRun.objects.filter(pk=recorder.run.pk).update(pages=F("pages") + pages - 1)

    last, renewed = None, time.monotonic()
    with Writers(writers) as writing:
        for fetched_at, group in prefetched(groups(pages)):
            remotes = [invoice for page in group for invoice in page.items]
            writing.submit(
                partial(store, fetched_at, remotes, len(group)), keys=[r.remote_id for r in remotes]
            )
            if time.monotonic() - renewed > 30:  # the lease lasts LEASE_TTL: no need to renew per page
                renew()
                renewed = time.monotonic()
            last = group[-1]
    return last


def full_run_writers() -> int:
    """How many groups a full run writes at once: ``SYNC_WRITERS`` on PostgreSQL; one, in the
    caller's thread, inside a transaction of the caller's (its rows are not visible elsewhere) or
    on SQLite (one writer at a time)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return 1
    return settings.SYNC_WRITERS


# MijnKlantportaal --------------------------------------------------------------------------------
class PageBudget:
    def __init__(self, pages: int) -> None:
        self.left = pages

    def spend_all(self, reason: errors.ProviderRateLimited) -> None:
        """The shared request budget ran out: stop here, keep what was done, go on next run."""
        logger.info("MijnKlantportaal sync stops early: %s", reason)
        self.left = 0


def _mkp_pages(client, start: int, budget: PageBudget, limit: int | None = None):
    """Pages from ``start`` while the budget lasts; each page is fetched after the previous is stored."""
    number, taken = start, 0
    while number is not None and budget.left > 0 and (limit is None or taken < limit):
        try:
            page = client.list_invoices(page=number)
        except errors.ProviderRateLimited as exc:
            budget.spend_all(exc)
            return
        budget.left -= 1
        taken += 1
        yield page
        number = page.next_page


def mkp_quick(client, recorder: RunRecorder, renew) -> int:
    budget = PageBudget(settings.MKP_SYNC_PAGE_BUDGET)
    removed = verify_unseen(client, Provider.MKP, budget)
    last_page = _cursor(Provider.MKP, "last_page")
    full_pass = _cursor(Provider.MKP, "full_pass_page")
    if full_pass.started_at is None or not full_pass.value:
        _save_cursor(full_pass, "1", started_at=timezone.now())
    # 1. The first page and the newest pages, whichever end the provider lists the newest at.
    head = _pull_pages(_mkp_pages(client, 1, budget, limit=1), Provider.MKP, recorder, renew)
    if head is None:
        return removed
    if head.next_page is None:
        return removed + _complete_pass(full_pass, last_page, head.number)
    known_last = int(last_page.value or 1)
    start = max(int(full_pass.value), 2)
    # When this run's slice of the pass reaches the last pages anyway, they are read once, by it.
    slice_reaches_tail = known_last - start + 1 <= budget.left
    if known_last > 2 and not slice_reaches_tail:
        # New invoices come first: the tail may take the whole budget when many pages appeared.
        tail = _pull_pages(_mkp_pages(client, known_last - 1, budget), Provider.MKP, recorder, renew)
        if tail and tail.next_page is None:
            _save_cursor(last_page, str(tail.number))
    # 2. The next slice of the rolling full pass.
    last = _pull_pages(_mkp_pages(client, start, budget), Provider.MKP, recorder, renew)
    if last is None:
        return removed
    if last.next_page is None:
        return removed + _complete_pass(full_pass, last_page, last.number)
    _save_cursor(full_pass, str(last.next_page))
    return removed


def _complete_pass(full_pass: SyncCursor, last_page: SyncCursor, last_number: int) -> int:
    """Every page was read since the pass started. What was not seen is only a suspect: a
    deletion shifts later invoices to earlier pages, which the pass may have read already. The
    next runs ask for each suspect by id (a 404 is proof) within their budget."""
    _save_cursor(_cursor(Provider.MKP, "unseen_before"), full_pass.started_at.isoformat())
    _save_cursor(last_page, str(last_number))
    _save_cursor(full_pass, "1", started_at=timezone.now())
    return 0


def verify_unseen(client, provider: str, budget: PageBudget | None = None, scan: Scan | None = None) -> int:
    """Ask the provider for each invoice the last complete scan did not see: a 404 marks it
    removed, an answer stores it. Returns the number removed.

    A full run passes its ``scan``: the unchanged invoices it saw are in it rather than stamped."""
    cursor = _cursor(provider, "unseen_before")
    if not cursor.value:
        return 0
    limit = budget.left if budget is not None else 10_000
    candidates = Invoice.objects.filter(
        provider=provider,
        remote_id__isnull=False,
        removed_at__isnull=True,
        last_seen_at__lt=datetime.fromisoformat(cursor.value),
    ).exclude(sync_state__in=[SyncState.PENDING, SyncState.SENDING])
    if scan is not None:
        candidates = scan.unseen(candidates)
    suspects = list(candidates.values_list("pk", flat=True)[: max(limit, 0)])
    if budget is not None:
        budget.left -= len(suspects)
    try:
        outcome = refresh_invoices(invoice_ids=suspects, client=client)
    except errors.ProviderRateLimited as exc:
        if budget is None:
            raise
        budget.spend_all(exc)
        return 0
    if len(suspects) < limit and not outcome["failed"]:
        _save_cursor(cursor, "")
    elif scan is not None:
        # Later runs go on with the check without this scan: they need the sightings written.
        scan.stamp(now=timezone.now())
    return outcome["removed"]


def mkp_full(client, recorder: RunRecorder, renew) -> int:
    scan = Scan()
    last = _pull_pages(
        client.iter_invoices(), Provider.MKP, recorder, renew, scan=scan, writers=full_run_writers()
    )
    if last is None:
        return 0
    _save_cursor(_cursor(Provider.MKP, "last_page"), str(last.number))
    _save_cursor(_cursor(Provider.MKP, "unseen_before"), scan.started_at.isoformat())
    return verify_unseen(client, Provider.MKP, scan=scan)


# Qonto -------------------------------------------------------------------------------------------
def qonto_quick(client, recorder: RunRecorder, renew) -> int:
    cursor = _cursor(Provider.QONTO, "updated_at")
    # The filter has whole seconds: round up so nothing changed in this second falls outside.
    until = timezone.now().replace(microsecond=0) + timedelta(seconds=1)
    since = datetime.fromisoformat(cursor.value) - QONTO_OVERLAP if cursor.value else None
    pages = client.iter_invoices(updated_at_from=since, updated_at_to=until, per_page=100)
    _pull_pages(pages, Provider.QONTO, recorder, renew)
    _save_cursor(cursor, until.isoformat())
    return 0


def qonto_full(client, recorder: RunRecorder, renew) -> int:
    scan = Scan()
    pages = client.iter_invoices(per_page=100)
    _pull_pages(pages, Provider.QONTO, recorder, renew, scan=scan, writers=full_run_writers())
    cursor = _cursor(Provider.QONTO, "updated_at")
    if not cursor.value:
        _save_cursor(cursor, scan.started_at.isoformat())
    _save_cursor(_cursor(Provider.QONTO, "unseen_before"), scan.started_at.isoformat())
    return verify_unseen(client, Provider.QONTO, scan=scan)


# Customers ---------------------------------------------------------------------------------------
def customers(provider: str):
    def run(client, recorder: RunRecorder, renew) -> int:
        pages = client.iter_customers() if provider == Provider.MKP else client.iter_clients()
        for page in pages:
            recorder.add(upsert_customers(provider=provider, remotes=page.items))
            renew()
        return 0

    return run


RUNNERS = {
    (Provider.MKP, MODE_QUICK): mkp_quick,
    (Provider.MKP, MODE_FULL): mkp_full,
    (Provider.MKP, MODE_CUSTOMERS): customers(Provider.MKP),
    (Provider.QONTO, MODE_QUICK): qonto_quick,
    (Provider.QONTO, MODE_FULL): qonto_full,
    (Provider.QONTO, MODE_CUSTOMERS): customers(Provider.QONTO),
}

"""Pages to the mirror: in groups of about a thousand invoices, fetched ahead while written."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from integrations.types import Page
from invoices.models import SyncProblem, SyncRun
from invoices.sync.mirror import Counts, upsert_invoices
from invoices.sync.prefetch import prefetched
from invoices.sync.quarantine import record_problems
from invoices.sync.writers import Writers


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
            quarantined=F("quarantined") + counts.quarantined,
            pages=F("pages") + 1,
            requests=self.client.request_count,
        )


def pull_pages(
    pages, provider: str, recorder: RunRecorder, renew: Callable[[], bool], scan=None, writers: int = 1
) -> Page | None:
    """Upsert every page of an iterator; returns the last page stored.

    Pages are written in groups of about a thousand invoices (one statement a group on PostgreSQL),
    and the next group is fetched in the background while this one is written; with ``writers``
    above 1, that many groups are written at once, each by a thread on its own connection (for the
    long lists of full runs: a quick run's few pages need no extra connections). A group counts as
    fetched when the request for its first page started; it commits together with its counts on
    the run. Pages fetched before a failed request are still stored. With a ``mirror.Scan``,
    unchanged invoices are remembered in it instead of stamped one by one. The records of a page
    that the mirror cannot hold (``Page.problems``) are quarantined with their group
    (:mod:`invoices.sync.quarantine`)."""

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
            size += len(page.items) + len(page.problems)
            fetched_at = fetched_at or started
            if size >= rows:
                yield fetched_at, group
                group, size, fetched_at = [], 0, None
        if group:
            yield fetched_at, group

    def store(fetched_at: datetime, remotes: list, problems: list, pages: int) -> None:
        with transaction.atomic():
            counts = upsert_invoices(provider=provider, remotes=remotes, fetched_at=fetched_at, scan=scan)
            counts.quarantined = record_problems(
                provider=provider,
                kind=SyncProblem.Kind.INVOICE,
                problems=problems,
                written=[remote.remote_id for remote in remotes],
                now=timezone.now(),
            )
            recorder.add(counts)
            if pages > 1:  # the recorder counts one page a call
                SyncRun.objects.filter(pk=recorder.run.pk).update(pages=F("pages") + pages - 1)

    last, renewed = None, time.monotonic()
    with Writers(writers) as writing:
        for fetched_at, group in prefetched(groups(pages)):
            remotes = [invoice for page in group for invoice in page.items]
            problems = [problem for page in group for problem in page.problems]
            writing.submit(
                partial(store, fetched_at, remotes, problems, len(group)),
                keys=[*(r.remote_id for r in remotes), *(p.remote_id for p in problems)],
            )
            if (
                time.monotonic() - renewed > 30
            ):  # its heartbeat renews the lease; this checks it is still ours
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

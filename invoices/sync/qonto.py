"""Qonto: incremental by updated_at, with an overlap; a full reconciliation now and then."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from django.utils import timezone

from integrations import errors
from integrations.types import Page
from invoices.models import Provider, SyncCursor, SyncProblem
from invoices.sync.cursors import cursor as _cursor
from invoices.sync.cursors import save_cursor as _save_cursor
from invoices.sync.mirror import Scan
from invoices.sync.pages import RunRecorder, full_run_writers, pull_pages
from invoices.sync.quarantine import resolve_unseen
from invoices.sync.removals import verify_unseen
from invoices.sync.walk import PageWalk

QONTO_OVERLAP = timedelta(minutes=5)


def qonto_quick(client, recorder: RunRecorder, renew) -> int:
    """The invoices changed since the cursor, oldest change first: when a page still fails after
    its retries, every invoice changed before the last one written is in, so the cursor moves
    there and the next run goes on from it."""
    cursor = _cursor(Provider.QONTO, "updated_at")
    # The filter has whole seconds: round up so nothing changed in this second falls outside.
    until = timezone.now().replace(microsecond=0) + timedelta(seconds=1)
    since = datetime.fromisoformat(cursor.value) - QONTO_OVERLAP if cursor.value else None
    fetch = partial(
        client.list_invoices,
        per_page=100,
        updated_at_from=since,
        updated_at_to=until,
        sort_by="updated_at:asc",
    )
    walk = PageWalk(fetch)
    try:
        pull_pages(walk.pages(), Provider.QONTO, recorder, renew)
    except errors.ProviderError:
        _advance_to_written(cursor, walk.last)
        raise
    _save_cursor(cursor, until.isoformat())
    return 0


def _advance_to_written(cursor: SyncCursor, last: Page | None) -> None:
    changed = (
        [invoice.remote_updated_at for invoice in last.items if invoice.remote_updated_at] if last else []
    )
    if changed and (not cursor.value or max(changed) > datetime.fromisoformat(cursor.value)):
        _save_cursor(cursor, max(changed).isoformat())


def qonto_full(client, recorder: RunRecorder, renew) -> int:
    scan = Scan()
    pages = PageWalk(partial(client.list_invoices, per_page=100)).pages()
    pull_pages(pages, Provider.QONTO, recorder, renew, scan=scan, writers=full_run_writers())
    cursor = _cursor(Provider.QONTO, "updated_at")
    if not cursor.value:
        _save_cursor(cursor, scan.started_at.isoformat())
    _save_cursor(_cursor(Provider.QONTO, "unseen_before"), scan.started_at.isoformat())
    resolve_unseen(provider=Provider.QONTO, kind=SyncProblem.Kind.INVOICE, since=scan.started_at)
    return verify_unseen(client, Provider.QONTO, scan=scan)

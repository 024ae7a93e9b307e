"""Qonto: incremental by updated_at, with an overlap; a full reconciliation now and then."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from invoices.models import Provider
from invoices.sync.cursors import cursor as _cursor
from invoices.sync.cursors import save_cursor as _save_cursor
from invoices.sync.mirror import Scan
from invoices.sync.pages import RunRecorder, full_run_writers, pull_pages
from invoices.sync.removals import verify_unseen

QONTO_OVERLAP = timedelta(minutes=5)


def qonto_quick(client, recorder: RunRecorder, renew) -> int:
    cursor = _cursor(Provider.QONTO, "updated_at")
    # The filter has whole seconds: round up so nothing changed in this second falls outside.
    until = timezone.now().replace(microsecond=0) + timedelta(seconds=1)
    since = datetime.fromisoformat(cursor.value) - QONTO_OVERLAP if cursor.value else None
    pages = client.iter_invoices(updated_at_from=since, updated_at_to=until, per_page=100)
    pull_pages(pages, Provider.QONTO, recorder, renew)
    _save_cursor(cursor, until.isoformat())
    return 0


def qonto_full(client, recorder: RunRecorder, renew) -> int:
    scan = Scan()
    pages = client.iter_invoices(per_page=100)
    pull_pages(pages, Provider.QONTO, recorder, renew, scan=scan, writers=full_run_writers())
    cursor = _cursor(Provider.QONTO, "updated_at")
    if not cursor.value:
        _save_cursor(cursor, scan.started_at.isoformat())
    _save_cursor(_cursor(Provider.QONTO, "unseen_before"), scan.started_at.isoformat())
    return verify_unseen(client, Provider.QONTO, scan=scan)

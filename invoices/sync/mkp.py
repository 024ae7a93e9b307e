"""MijnKlantportaal: no change filter, 15 invoices a page, 60 requests a minute per key.

Each quick run spends a fixed page budget: the first page and the newest pages every run, then the
next slice of a rolling full pass that resumes where the previous run stopped.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from integrations import errors
from invoices.models import Provider, SyncCursor
from invoices.sync.budget import PageBudget
from invoices.sync.cursors import cursor as _cursor
from invoices.sync.cursors import save_cursor as _save_cursor
from invoices.sync.mirror import Scan
from invoices.sync.pages import RunRecorder, full_run_writers, pull_pages
from invoices.sync.removals import verify_unseen


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
    head = pull_pages(_mkp_pages(client, 1, budget, limit=1), Provider.MKP, recorder, renew)
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
        tail = pull_pages(_mkp_pages(client, known_last - 1, budget), Provider.MKP, recorder, renew)
        if tail and tail.next_page is None:
            _save_cursor(last_page, str(tail.number))
    # 2. The next slice of the rolling full pass.
    last = pull_pages(_mkp_pages(client, start, budget), Provider.MKP, recorder, renew)
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


def mkp_full(client, recorder: RunRecorder, renew) -> int:
    scan = Scan()
    last = pull_pages(
        client.iter_invoices(), Provider.MKP, recorder, renew, scan=scan, writers=full_run_writers()
    )
    if last is None:
        return 0
    _save_cursor(_cursor(Provider.MKP, "last_page"), str(last.number))
    _save_cursor(_cursor(Provider.MKP, "unseen_before"), scan.started_at.isoformat())
    return verify_unseen(client, Provider.MKP, scan=scan)

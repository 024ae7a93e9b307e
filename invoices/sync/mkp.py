"""MijnKlantportaal: no change filter, 15 invoices a page, 60 requests a minute per key.

Each quick run spends a fixed page budget: the first page and the newest pages every run, then the
next slice of a rolling full pass that resumes where the previous run stopped. A full run reads
every page, waiting for the shared request budget, and is resumed by the next full run at the page
it reached when it fails or is killed.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from integrations import errors
from invoices.models import Provider, SyncCursor, SyncProblem, SyncRun
from invoices.sync.budget import PageBudget
from invoices.sync.cursors import cursor as _cursor
from invoices.sync.cursors import save_cursor as _save_cursor
from invoices.sync.mirror import Scan
from invoices.sync.pages import RunRecorder, full_run_writers, pull_pages
from invoices.sync.quarantine import resolve_unseen
from invoices.sync.removals import verify_unseen
from invoices.sync.walk import PageWalk


def _mkp_pages(walk: PageWalk, budget: PageBudget, limit: int | None = None):
    """Pages of the walk while the budget lasts; a spent request budget ends them early."""
    try:
        for page in walk.pages(limit=budget.left if limit is None else min(limit, budget.left)):
            budget.left -= 1
            yield page
    except errors.ProviderRateLimited as exc:
        budget.spend_all(exc)


def mkp_quick(client, recorder: RunRecorder, renew) -> int:
    budget = PageBudget(settings.MKP_SYNC_PAGE_BUDGET)
    removed = verify_unseen(client, Provider.MKP, budget)
    last_page = _cursor(Provider.MKP, "last_page")
    full_pass = _cursor(Provider.MKP, "full_pass_page")
    if full_pass.started_at is None or not full_pass.value:
        _save_cursor(full_pass, "1", started_at=timezone.now())
    # 1. The first page and the newest pages, whichever end the provider lists the newest at.
    head_walk = PageWalk(client.list_invoices)
    head = pull_pages(_mkp_pages(head_walk, budget, limit=1), Provider.MKP, recorder, renew)
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
        tail_walk = PageWalk(client.list_invoices, known_last - 1)
        tail = pull_pages(_mkp_pages(tail_walk, budget), Provider.MKP, recorder, renew)
        if tail and tail.next_page is None:
            _save_cursor(last_page, str(tail.number))
    # 2. The next slice of the rolling full pass. A page that still fails after its retries ends
    # the run; the pages before it are stored and the next run goes on from the failed one.
    walk = PageWalk(client.list_invoices, start)
    try:
        pull_pages(_mkp_pages(walk, budget), Provider.MKP, recorder, renew)
    except errors.ProviderError:
        _keep_position(recorder.run, full_pass, walk, known_last)
        raise
    if walk.next is None:
        return removed + _complete_pass(full_pass, last_page, walk.last.number)
    _keep_position(recorder.run, full_pass, walk, known_last)
    return removed


def _complete_pass(full_pass: SyncCursor, last_page: SyncCursor, last_number: int) -> int:
    """Every page was read since the pass started. What was not seen is only a suspect: a
    deletion shifts later invoices to earlier pages, which the pass may have read already. The
    next runs ask for each suspect by id (a 404 is proof) within their budget."""
    _save_cursor(_cursor(Provider.MKP, "unseen_before"), full_pass.started_at.isoformat())
    resolve_unseen(provider=Provider.MKP, kind=SyncProblem.Kind.INVOICE, since=full_pass.started_at)
    _save_cursor(last_page, str(last_number))
    _save_cursor(full_pass, "1", started_at=timezone.now())
    return 0


def mkp_full(client, recorder: RunRecorder, renew) -> int:
    """Every page, paced to the shared request budget: a spent budget is waited for, not a reason
    to stop. The page reached is kept every ``SYNC_CHECKPOINT_SECONDS``, with the sightings of the
    unchanged invoices; a run that fails or is killed is resumed there by the next full run. What
    the pass did not see is judged once the pass completed, against the time it started."""
    position = _cursor(Provider.MKP, "full_run_page")
    if not position.value:
        _save_cursor(position, "1", started_at=timezone.now())
    known_last = int(_cursor(Provider.MKP, "last_page").value or 0)
    walk = PageWalk(client.list_invoices, int(position.value), patient=True)
    while True:
        scan = Scan()
        try:
            pull_pages(
                walk.pages(seconds=settings.SYNC_CHECKPOINT_SECONDS),
                Provider.MKP,
                recorder,
                renew,
                scan=scan,
                writers=full_run_writers(),
            )
        except errors.ProviderError:
            scan.stamp(now=timezone.now())
            _keep_position(recorder.run, position, walk, known_last)
            raise
        if walk.next is None:
            break
        # The next run may go on without this one: it needs the sightings written.
        scan.stamp(now=timezone.now())
        _keep_position(recorder.run, position, walk, known_last)
    _save_cursor(position, "")
    _progress(recorder.run, f"complete: {walk.last.number:,} pages")
    _save_cursor(_cursor(Provider.MKP, "last_page"), str(walk.last.number))
    _save_cursor(_cursor(Provider.MKP, "unseen_before"), position.started_at.isoformat())
    resolve_unseen(provider=Provider.MKP, kind=SyncProblem.Kind.INVOICE, since=position.started_at)
    return verify_unseen(client, Provider.MKP, PageBudget(settings.MKP_SYNC_PAGE_BUDGET), scan=scan)


def _keep_position(run: SyncRun, position: SyncCursor, walk: PageWalk, known_last: int) -> None:
    """The next page to read, for the next run; and on the run, how far it got."""
    _save_cursor(position, str(walk.next))
    of = f" of about {known_last:,}" if known_last >= walk.next else ""
    _progress(run, f"page {walk.next:,}{of}")


def _progress(run: SyncRun, text: str) -> None:
    SyncRun.objects.filter(pk=run.pk).update(progress=text)

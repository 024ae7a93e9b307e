"""Sync runs against the sandbox over HTTP: counts, budgets, cursors, removals, the command."""

import io

import pytest
import requests
from django.core.management import CommandError, call_command

from invoices.models import Invoice, InvoiceStatus, Provider, SyncCursor, SyncRun
from invoices.selectors import admin_warnings
from invoices.sync import MODE_CUSTOMERS, MODE_FULL, MODE_QUICK, sync_provider
from tests.invoices.helpers import invoice_writes, remote_state, seed

pytestmark = pytest.mark.django_db


def stats(sandbox) -> dict:
    return requests.get(f"{sandbox.admin_url}/stats", timeout=10).json()


def test_a_full_mkp_sync_mirrors_every_invoice_and_a_resync_changes_nothing(sandbox):
    seed(sandbox, invoices=40, customers=3)
    sync_provider(provider=Provider.MKP, mode=MODE_CUSTOMERS)
    with invoice_writes() as first_writes:
        first = sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    assert (first.status, first.created, first.pages) == (SyncRun.Status.SUCCEEDED, 40, 3)
    assert sum(first_writes) >= 40, "the write counter sees the inserts"
    remote = {r["id"]: r for r in remote_state(sandbox, "mkp")}
    for invoice in Invoice.objects.filter(provider=Provider.MKP):
        assert str(invoice.amount) == remote[invoice.remote_id]["amount"]
        assert (invoice.status == InvoiceStatus.PAID) == remote[invoice.remote_id]["paid"]
        assert invoice.customer is not None
    with invoice_writes() as written:
        again = sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 40)
    assert sum(written) == 0, "an unchanged full resync writes no invoice row"


def test_the_quick_mkp_scan_keeps_to_its_page_budget_and_resumes(sandbox, settings):
    seed(sandbox, invoices=15 * 10, customers=3)  # 10 pages
    settings.MKP_SYNC_PAGE_BUDGET = 4
    runs = [sync_provider(provider=Provider.MKP, mode=MODE_QUICK) for _ in range(4)]
    assert all(run.requests <= 4 for run in runs)
    assert Invoice.objects.filter(provider=Provider.MKP).count() == 150, "the rolling pass covered every page"
    # A complete pass marks what the provider no longer lists, with the date; nothing is deleted.
    gone = Invoice.objects.filter(provider=Provider.MKP).order_by("pk")[5]
    requests.delete(f"{sandbox.admin_url}/state/mkp/{gone.remote_id}", timeout=10).raise_for_status()
    # It was seen earlier in the pass under way, so the next complete pass is the one that tells; the
    # invoices that moved up a page meanwhile are asked for by id, not wrongly marked removed.
    settings.MKP_SYNC_PAGE_BUDGET = 6
    for _ in range(10):
        sync_provider(provider=Provider.MKP, mode=MODE_QUICK)
    gone.refresh_from_db()
    assert gone.removed_at is not None
    assert Invoice.objects.filter(provider=Provider.MKP, removed_at__isnull=True).count() == 149
    assert int(SyncCursor.objects.get(provider=Provider.MKP, name="last_page").value) == 10


def test_a_quick_run_that_covers_the_whole_list_reads_each_page_once(sandbox, settings):
    seed(sandbox, invoices=15 * 20, customers=3)  # 20 pages, within the budget of one run
    settings.MKP_SYNC_PAGE_BUDGET = 40
    first = sync_provider(provider=Provider.MKP, mode=MODE_QUICK)
    again = sync_provider(provider=Provider.MKP, mode=MODE_QUICK)
    assert (first.created, first.requests) == (300, 20)
    assert (again.unchanged, again.requests) == (300, 20), "the last pages are not read a second time"


def test_a_new_invoice_shows_up_in_the_next_quick_run(sandbox, settings):
    seed(sandbox, invoices=15 * 10, customers=3)
    settings.MKP_SYNC_PAGE_BUDGET = 4
    for _ in range(4):
        sync_provider(provider=Provider.MKP, mode=MODE_QUICK)
    seed(sandbox, invoices=1, customers=1)  # lands on the last page (oldest first)
    sync_provider(provider=Provider.MKP, mode=MODE_QUICK)
    assert Invoice.objects.filter(provider=Provider.MKP).count() == 151


def test_qonto_incremental_sync_uses_the_cursor_and_costs_one_request_when_nothing_changed(sandbox):
    seed(sandbox, invoices=120, customers=3)
    first = sync_provider(provider=Provider.QONTO, mode=MODE_QUICK)
    assert (first.created, first.pages) == (120, 2)
    cursor = SyncCursor.objects.get(provider=Provider.QONTO, name="updated_at").value
    before = stats(sandbox)["requests"]["qonto"]
    with invoice_writes() as written:
        quiet = sync_provider(provider=Provider.QONTO, mode=MODE_QUICK)
    assert stats(sandbox)["requests"]["qonto"] - before == 1
    assert (quiet.created, quiet.updated) == (0, 0)
    assert sum(written) == 0, "a run with no remote change writes no invoice row"
    assert SyncCursor.objects.get(provider=Provider.QONTO, name="updated_at").value >= cursor

    # A payment made at Qonto by someone else arrives with the next run.
    target = Invoice.objects.filter(provider=Provider.QONTO, status=InvoiceStatus.OPEN).first()
    requests.post(
        f"{sandbox.admin_url}/state/qonto/{target.remote_id}",
        json={"status": "paid", "paid_at": "2026-11-20T10:00:00+01:00"},
        timeout=10,
    ).raise_for_status()
    changed = sync_provider(provider=Provider.QONTO, mode=MODE_QUICK)
    assert changed.updated == 1
    target.refresh_from_db()
    assert target.status == InvoiceStatus.PAID


def test_a_failed_run_keeps_the_cursor_and_says_why(sandbox, settings):
    seed(sandbox, invoices=10, customers=2)
    settings.QONTO_SECRET_KEY = "not-the-secret"
    run = sync_provider(provider=Provider.QONTO, mode=MODE_QUICK)
    assert run.status == SyncRun.Status.FAILED
    assert "credentials" in run.error or "refused" in run.error
    assert (
        not SyncCursor.objects.filter(provider=Provider.QONTO, name="updated_at").exclude(value="").exists()
    )
    warnings = " ".join(admin_warnings())
    assert "Qonto has not synced successfully yet." in warnings


def test_the_command_prints_counts_and_fails_loudly(sandbox, settings):
    seed(sandbox, invoices=20, customers=2)
    out = io.StringIO()
    call_command("sync_invoices", "--provider", "mkp", "--mode", "full", stdout=out)
    assert "MijnKlantportaal full: succeeded — 20 created, 0 updated, 0 unchanged, 0 removed, 2 pages" in (
        out.getvalue()
    )
    settings.MKP_API_KEY = ""
    with pytest.raises(CommandError, match="no credentials configured"):
        call_command("sync_invoices", "--provider", "mkp", stdout=io.StringIO())


def test_overlapping_runs_are_skipped_not_doubled(sandbox):
    from datetime import timedelta

    from invoices.sync import leases as locks

    assert locks.acquire("sync:mkp:invoices", holder="another-machine", ttl=timedelta(minutes=5))
    run = sync_provider(provider=Provider.MKP, mode=MODE_QUICK)
    assert run.status == SyncRun.Status.SKIPPED
    assert stats(sandbox)["requests"]["mkp"] == 0


def test_a_spent_request_budget_ends_the_run_early_and_the_next_run_goes_on(
    sandbox, settings, monkeypatch, tmp_path
):
    from integrations.mkp.client import MijnKlantportaalClient
    from integrations.ratelimit import SqliteRateLimiter, Window

    seed(sandbox, invoices=15 * 8, customers=2)
    settings.RATE_LIMIT_URL = f"sqlite:///{tmp_path / 'budget.sqlite3'}"
    # 5 for the scan: the sixth is the reserve it leaves for staff work.
    settings.RATE_LIMIT_MARGIN = 0
    monkeypatch.setattr(MijnKlantportaalClient, "windows", (Window(6, 3600.0),))
    settings.SYNC_MAX_WAIT_SECONDS = 0
    first = sync_provider(provider=Provider.MKP, mode=MODE_QUICK)
    assert first.status == SyncRun.Status.SUCCEEDED
    assert first.requests == 5
    assert Invoice.objects.count() == 75
    assert SyncCursor.objects.get(provider=Provider.MKP, name="full_pass_page").value == "6"
    SqliteRateLimiter(settings.RATE_LIMIT_URL.removeprefix("sqlite:///"))._connect().execute(
        "DELETE FROM grants"
    )
    sync_provider(provider=Provider.MKP, mode=MODE_QUICK)
    assert Invoice.objects.count() == 120

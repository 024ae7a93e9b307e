"""Recovery from the faults of our own side, through real Celery workers on PostgreSQL and Redis:
a worker killed with -9 while it holds a sync's lease, its database connections cut, the shared
rate-limit store unreachable, a lost create at MijnKlantportaal with more than 1,000 invoices under
the real rate limit, and a bulk mark-paid of hundreds while syncs run, with poison records at both
providers and the sandbox failing on purpose.

Each test prints what was done, the faults, the duplicates at the provider, the mismatches, the
quarantined records, the rows left stuck (outbox rows pending or sending, runs still running) and
the time to converge after the faults stopped; duplicates, mismatches and stuck rows must be 0.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
import requests
from django.db import connection
from django.utils import timezone

from invoices import sync
from invoices.models import Customer, Invoice, InvoiceStatus, Provider, SyncProblem, SyncRun, SyncState
from invoices.services import payment
from invoices.tasks import sweep_sync_runs, sync_provider
from tests.integration.conftest import wait_for
from tests.integration.test_fault_injection import (
    READ_TIMEOUT,
    Operations,
    _compare,
    _every_few_seconds,
    _outbox_busy,
    _sync_until_done,
    faults_on,
)
from tests.invoices.helpers import remote_state, seed, set_config, set_faults

pytestmark = pytest.mark.services

#: A full MijnKlantportaal run of 30 pages (15 invoices a page) that lasts many seconds.
PAGED_INVOICES = 450
PAGES = PAGED_INVOICES // 15
LATENCY_MS = 250
LEASE_TTL = 6
SYNC_ENV = {"SYNC_LEASE_TTL_SECONDS": str(LEASE_TTL), "SYNC_CHECKPOINT_SECONDS": "1"}

#: What a record the mirror cannot hold looks like, one of each kind, per provider.
POISONS = {
    Provider.MKP: [
        {"invoiceNumber": "N" * 300},
        {"amount": "1E+20"},
        {"issuedAt": "2024-04-31"},
        {"id": {"id": "not a string"}},
    ],
    Provider.QONTO: [
        {"number": "N" * 300},
        {"total_amount": {"value": "NaN", "currency": "EUR"}},
        {"issue_date": "2024-04-31"},
        {"id": {"id": "not a string"}},
    ],
}


def _admin(sandbox, method: str, path: str, **kwargs) -> dict:
    response = requests.request(method, f"{sandbox.admin_url}{path}", timeout=30, **kwargs)
    response.raise_for_status()
    return response.json()


@pytest.fixture
def sandbox_left_as_found(sandbox):
    """No faults, no latency and no rate limit at the sandbox after the test, whatever it set."""
    yield sandbox
    set_faults(sandbox, {}, after_share=0.5, seed=None, slow_seconds=2.0, timeout_seconds=3.0, methods=None)
    set_config(sandbox, latency_ms=0, rate_limit=False)


def _stuck() -> dict[str, int]:
    return {
        "outbox pending": Invoice.objects.filter(sync_state=SyncState.PENDING).count(),
        "outbox sending": Invoice.objects.filter(sync_state=SyncState.SENDING).count(),
        "runs running": SyncRun.objects.filter(status=SyncRun.Status.RUNNING).count(),
    }


def _duplicates(sandbox) -> dict[str, int]:
    found = _admin(sandbox, "GET", "/stats")["duplicates"]
    return {provider: sum(count - 1 for count in numbers.values()) for provider, numbers in found.items()}


def _mirror_mismatches(provider: str, remote: list[dict]) -> list[str]:
    """Every remote invoice once in the mirror, nothing more."""
    local = Counter(Invoice.objects.filter(provider=provider).values_list("remote_id", flat=True))
    wrong = [
        f"{provider} {row['id']} is {local[row['id']]}x locally" for row in remote if local[row["id"]] != 1
    ]
    extra = set(local) - {row["id"] for row in remote}
    return wrong + [f"{provider} {remote_id} is not at the provider" for remote_id in sorted(extra, key=str)]


def _report(
    capsys, title: str, done: list[str], faults: str, sandbox, mismatches: list[str], converge: float
):
    stuck = _stuck()
    quarantined = SyncProblem.objects.filter(resolved_at=None).count()
    lines = [
        "",
        f"=== Fault recovery: {title} ===",
        "done:",
        *(f"  {line}" for line in done),
        f"faults: {faults}",
        f"duplicates at the provider: {_duplicates(sandbox)}",
        f"mismatches: {len(mismatches)}",
        *(f"  {m}" for m in mismatches[:30]),
        f"quarantined (open sync problems): {quarantined}",
        f"rows left stuck: {sum(stuck.values())} {stuck}",
        f"time to converge after the faults stopped: {converge:.1f} s",
    ]
    with capsys.disabled():
        print("\n".join(lines))
    return stuck


def _running_full_run(min_pages: int) -> SyncRun | None:
    run = SyncRun.objects.filter(
        provider=Provider.MKP, kind=sync.MODE_FULL, status=SyncRun.Status.RUNNING
    ).first()
    return run if run is not None and run.pages >= min_pages else None


def _next_full_run(after_pk: int) -> SyncRun:
    """The first full MijnKlantportaal run after ``after_pk`` that succeeded (one may be skipped
    while a run retried by the task itself holds the lease)."""

    def succeeded():
        return (
            SyncRun.objects.filter(
                pk__gt=after_pk, provider=Provider.MKP, kind=sync.MODE_FULL, status=SyncRun.Status.SUCCEEDED
            )
            .order_by("pk")
            .first()
        )

    return wait_for(succeeded, timeout=90, interval=0.5, what="a full run that succeeds")


def _paged_mirror_to_sync(sandbox, workers) -> None:
    seed(sandbox, invoices=PAGED_INVOICES, customers=3)
    set_config(sandbox, latency_ms=LATENCY_MS)
    workers.env.update(SYNC_ENV)
    workers.start(1, concurrency=1)
    sync_provider.delay(Provider.MKP, sync.MODE_FULL)


def test_a_worker_killed_mid_sync_lets_go_and_the_next_full_run_resumes(
    workers, sandbox_left_as_found, capsys
):
    sandbox = sandbox_left_as_found
    _paged_mirror_to_sync(sandbox, workers)
    killed_run = wait_for(lambda: _running_full_run(4), timeout=60, interval=0.1, what="a full run under way")
    killed_pids = workers.pids()
    workers.kill()
    killed_at = time.monotonic()
    killed_run.refresh_from_db()
    pages_before = killed_run.pages

    # Its heartbeat stopped with it: the lease frees within the TTL and the sweep says so.
    wait_for(sweep_sync_runs, timeout=LEASE_TTL + 5, interval=0.5, what="the sweep to abandon the run")
    freed_after = time.monotonic() - killed_at
    killed_run.refresh_from_db()
    assert killed_run.status == SyncRun.Status.ABANDONED
    assert killed_run.error.startswith("Its worker stopped (no heartbeat since ")
    assert killed_run.error.endswith("the next run resumes where it stopped.")

    workers.start(1, concurrency=1)
    sync_provider.delay(Provider.MKP, sync.MODE_FULL)
    resumed = _next_full_run(killed_run.pk)
    converged = time.monotonic() - killed_at

    mismatches = _mirror_mismatches(Provider.MKP, remote_state(sandbox, Provider.MKP))
    stuck = _report(
        capsys,
        "kill -9 of the worker holding the lease mid-sync",
        [
            f"{PAGED_INVOICES} MijnKlantportaal invoices ({PAGES} pages), sandbox latency {LATENCY_MS} ms, "
            f"lease TTL {LEASE_TTL} s, checkpoint every 1 s",
            f"killed run {killed_run.pk} after {pages_before} pages ({killed_run.progress or 'no checkpoint'})",
            f"lease free and run abandoned {freed_after:.1f} s after the kill: {killed_run.error}",
            f"next full run {resumed.pk}: {resumed.status}, {resumed.pages} pages of {PAGES} "
            f"({resumed.created} created, {resumed.unchanged} unchanged)",
        ],
        f"SIGKILL of the process groups {killed_pids}",
        sandbox,
        mismatches,
        converged,
    )
    assert freed_after <= LEASE_TTL + 3
    assert resumed.pages < PAGES, "the next full run resumes where the killed one stopped"
    assert mismatches == []
    assert sum(_duplicates(sandbox).values()) == 0
    assert sum(stuck.values()) == 0


def test_database_connections_cut_mid_sync_leave_no_run_running(workers, sandbox_left_as_found, capsys):
    sandbox = sandbox_left_as_found
    _paged_mirror_to_sync(sandbox, workers)
    cut_run = wait_for(lambda: _running_full_run(4), timeout=60, interval=0.1, what="a full run under way")
    terminated = 0
    cut_at = time.monotonic()
    for _ in range(3):  # the run, its heartbeat, and what they open again
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            terminated += cursor.fetchone()[0]
        time.sleep(0.5)
    faults_off = time.monotonic()

    def none_running():
        sweep_sync_runs()
        return not SyncRun.objects.filter(status=SyncRun.Status.RUNNING).exists()

    wait_for(none_running, timeout=LEASE_TTL + 10, interval=0.5, what="no run left running")
    cut_run.refresh_from_db()
    settled_after = time.monotonic() - faults_off

    sync_provider.delay(Provider.MKP, sync.MODE_FULL)
    resumed = _next_full_run(cut_run.pk)
    converged = time.monotonic() - faults_off

    mismatches = _mirror_mismatches(Provider.MKP, remote_state(sandbox, Provider.MKP))
    statuses = Counter(SyncRun.objects.values_list("status", flat=True))
    stuck = _report(
        capsys,
        "PostgreSQL connections terminated mid-sync",
        [
            f"{PAGED_INVOICES} MijnKlantportaal invoices ({PAGES} pages), sandbox latency {LATENCY_MS} ms, "
            f"lease TTL {LEASE_TTL} s",
            f"run {cut_run.pk} cut after {cut_run.pages} pages: {cut_run.status} ({cut_run.error})",
            f"no run running {settled_after:.1f} s after the last cut; runs {dict(sorted(statuses.items()))}",
            f"next full run {resumed.pk}: {resumed.status}, {resumed.pages} pages of {PAGES}",
        ],
        f"pg_terminate_backend of {terminated} backends, 3 rounds in {faults_off - cut_at:.1f} s",
        sandbox,
        mismatches,
        converged,
    )
    assert terminated >= 2
    assert cut_run.status in (SyncRun.Status.FAILED, SyncRun.Status.ABANDONED)
    assert resumed.pages < PAGES, "the next full run resumes where the cut one stopped"
    assert mismatches == []
    assert sum(stuck.values()) == 0


def _mirror_both(sandbox, invoices: int) -> None:
    seed(sandbox, invoices=invoices, customers=4)
    for provider in Provider.values:
        for mode in (sync.MODE_CUSTOMERS, sync.MODE_FULL):
            _sync_until_done(provider, mode)


def _open(provider: str, k: int, exclude: set[str] = frozenset()) -> list[Invoice]:
    rows = Invoice.objects.filter(provider=provider, status=InvoiceStatus.OPEN, removed_at=None).order_by(
        "pk"
    )
    return [row for row in rows if row.remote_id not in exclude][:k]


def _paid_at_provider(sandbox, invoices: list[Invoice]) -> list[str]:
    """The invoices not paid at the provider or here, one line each."""
    remote = {p: {row["id"]: row for row in remote_state(sandbox, p)} for p in Provider.values}
    wrong = []
    for invoice in invoices:
        invoice.refresh_from_db()
        row = remote[invoice.provider][invoice.remote_id]
        paid_there = row["paid"] if invoice.provider == Provider.MKP else row["status"] == "paid"
        if not paid_there or invoice.status != InvoiceStatus.PAID or invoice.sync_state != SyncState.SYNCED:
            wrong.append(
                f"{invoice.provider} {invoice.number}: {invoice.status}/{invoice.sync_state} here, paid={paid_there}"
            )
    return wrong


def test_the_rate_limit_store_unreachable_holds_pushes_until_it_is_back(
    workers, sandbox_left_as_found, admin_user, settings, capsys
):
    sandbox = sandbox_left_as_found
    _mirror_both(sandbox, invoices=30)
    requests_before = _admin(sandbox, "GET", "/stats")["requests"]["total"]
    workers.env.update(RATE_LIMIT_URL="redis://127.0.0.1:1/0", PUSH_BACKOFF_CAP_SECONDS="8")
    workers.start(1)
    chosen = _open(Provider.MKP, 3) + _open(Provider.QONTO, 3)
    paid_at = timezone.now() - timedelta(hours=1)
    for invoice in chosen:
        payment.invoice_mark_paid(invoice=invoice, paid_at=paid_at, actor=admin_user)
    rows = Invoice.objects.filter(pk__in=[i.pk for i in chosen])

    def all_held():
        return rows.filter(sync_state=SyncState.PENDING, attempts__gte=2).exclude(last_error="").count() == 6

    wait_for(all_held, timeout=60, interval=0.5, what="every push tried twice and held back")
    held = list(rows.order_by("pk"))
    sent_while_down = _admin(sandbox, "GET", "/stats")["requests"]["total"] - requests_before
    back_at = time.monotonic()
    workers.restart(1, RATE_LIMIT_URL=settings.RATE_LIMIT_URL)

    wait_for(
        lambda: rows.filter(sync_state=SyncState.SYNCED).count() == 6,
        timeout=60,
        interval=0.5,
        what="the task's own retries to pay them",
    )
    converged = time.monotonic() - back_at
    mismatches = _paid_at_provider(sandbox, chosen)
    stuck = _report(
        capsys,
        "the limiter's store unreachable",
        [
            "staff mark paid 3 MijnKlantportaal and 3 Qonto invoices (queued after commit)",
            f"while down: {len(held)} rows pending, attempts {sorted(r.attempts for r in held)}, "
            f"API requests sent meanwhile: {sent_while_down}",
            f"  last_error: {held[0].last_error}",
            "workers restarted with the real RATE_LIMIT_URL; the pushes' own countdown retries paid them",
        ],
        "RATE_LIMIT_URL=redis://127.0.0.1:1/0 (nothing listens)",
        sandbox,
        mismatches,
        converged,
    )
    assert sent_while_down == 0
    for row in held:
        assert row.sync_state == SyncState.PENDING and row.next_attempt_at is not None
        assert "rate-limit store (RATE_LIMIT_URL) cannot be reached" in row.last_error
        assert "nothing was sent to the provider" in row.last_error
    assert mismatches == []
    assert sum(stuck.values()) == 0


LOOKUP_INVOICES = 1005  # 67 full pages at MijnKlantportaal


def test_a_lost_create_that_never_reached_mkp_is_looked_for_among_1000_invoices_and_sent_once(
    workers, sandbox_left_as_found, admin_user, settings, capsys
):
    sandbox = sandbox_left_as_found
    seed(sandbox, invoices=LOOKUP_INVOICES, customers=3)
    limiter_url = settings.RATE_LIMIT_URL
    settings.RATE_LIMIT_URL = "off"  # the mirror is made in a hurry, not what is measured
    for mode in (sync.MODE_CUSTOMERS, sync.MODE_FULL):
        _sync_until_done(Provider.MKP, mode)
    settings.RATE_LIMIT_URL = limiter_url
    assert Invoice.objects.filter(provider=Provider.MKP).count() == LOOKUP_INVOICES
    set_config(sandbox, rate_limit=True)  # 60 a minute per key, as MijnKlantportaal
    workers.env.update(PROVIDER_READ_TIMEOUT="1.5", PUSH_BACKOFF_CAP_SECONDS="10")
    workers.start(1)
    before = _admin(sandbox, "GET", "/stats")["requests"]["by_route"]
    # Every POST is held past the client's read timeout and answered 504: nothing is written.
    set_faults(
        sandbox, {"timeout": 1.0}, after_share=0.0, timeout_seconds=3.0, providers=["mkp"], methods=["POST"]
    )

    started = time.monotonic()
    ops = Operations(sandbox, admin_user, list(Customer.objects.filter(provider=Provider.MKP).order_by("pk")))
    ops.create(Provider.MKP)
    (pk,) = ops.created
    row = Invoice.objects.filter(pk=pk)
    wait_for(
        lambda: row.filter(outcome_unknown=True, sync_state=SyncState.PENDING, attempts__gte=1).exists(),
        timeout=30,
        interval=0.2,
        what="the first attempt to lose its answer",
    )
    set_faults(sandbox, {})
    faults_off = time.monotonic()
    first_error = row.get().last_error

    wait_for(
        lambda: row.filter(sync_state__in=[SyncState.SYNCED, SyncState.FAILED]).exists(),
        timeout=170,
        interval=1,
        what="the look-up and the create",
    )
    converged = time.monotonic() - faults_off
    invoice = row.get()
    after = _admin(sandbox, "GET", "/stats")
    by_route = Counter(after["requests"]["by_route"])
    by_route.subtract(before)
    _, number, _ = ops.created[pk]
    at_provider = _admin(sandbox, "GET", "/state", params={"provider": "mkp", "number": number})["count"]
    mismatches = _compare(Provider.MKP, remote_state(sandbox, Provider.MKP), ops)
    stuck = _report(
        capsys,
        f"a lost create that never reached MijnKlantportaal, {LOOKUP_INVOICES:,} invoices there",
        [
            f"{LOOKUP_INVOICES:,} invoices mirrored ({LOOKUP_INVOICES // 15 + 1} pages), then the sandbox's "
            f"rate limit on (60 a minute) with our shared Redis limiter (54)",
            f"created {number} through the service; first attempt: {first_error}",
            f"attempts {invoice.attempts}; list pages read {by_route['mkp.list_invoices']}, "
            f"creates sent {by_route['mkp.create_invoice']}, 429s {after['requests']['by_status'].get('429', 0)}",
            f"row {invoice.sync_state} as {invoice.remote_id}; {at_provider} invoice numbered {number} there; "
            f"{time.monotonic() - started:.0f} s from the create",
        ],
        f"every MijnKlantportaal POST timed out before the write until the first attempt ended "
        f"({faults_off - started:.1f} s)",
        sandbox,
        mismatches,
        converged,
    )
    assert invoice.sync_state == SyncState.SYNCED, invoice.last_error
    assert at_provider == 1
    # The lost create, then 20 pages an attempt; waits for the request budget are no attempts.
    assert invoice.attempts <= 1 + -(-(LOOKUP_INVOICES // 15 + 1) // 20)
    assert by_route["mkp.list_invoices"] >= LOOKUP_INVOICES // 15, "the look-up read every page"
    assert mismatches == []
    assert sum(_duplicates(sandbox).values()) == 0
    assert sum(stuck.values()) == 0


BULK_INVOICES = 650  # a provider: enough open ones for the bulk action
BULK_QONTO = 250
BULK_MKP = 30
FAULT_SECONDS = 20


def test_a_bulk_mark_paid_of_hundreds_while_syncs_run_with_poison_at_both_providers(
    workers, sandbox_left_as_found, admin_user, capsys
):
    sandbox = sandbox_left_as_found
    started = time.monotonic()
    _mirror_both(sandbox, invoices=BULK_INVOICES)
    hostile: dict[str, set[str]] = {}
    for provider, poisons in POISONS.items():
        ids = [r["id"] for r in remote_state(sandbox, provider)]
        hostile[provider] = set(ids[5::40][: len(poisons)])
        for remote_id, fields in zip(sorted(hostile[provider], key=ids.index), poisons, strict=True):
            _admin(sandbox, "POST", f"/raw/{provider}/{remote_id}", json={"fields": fields})
    chosen = _open(Provider.QONTO, BULK_QONTO, hostile[Provider.QONTO]) + _open(
        Provider.MKP, BULK_MKP, hostile[Provider.MKP]
    )
    assert len(chosen) == BULK_QONTO + BULK_MKP

    _every_few_seconds()
    workers.env.update(PROVIDER_READ_TIMEOUT=str(READ_TIMEOUT), PUSH_BACKOFF_CAP_SECONDS="15")
    workers.start(2, beat=True)
    faults_on(sandbox)
    faulty_since = time.monotonic()
    ops = Operations(sandbox, admin_user, [])
    report = payment.invoices_bulk_mark_paid(
        invoices=chosen, paid_at=timezone.now() - timedelta(hours=1), actor=admin_user
    )
    ops.paid_requested.update((i.provider, i.remote_id) for i in report.queued)
    time.sleep(max(0.0, FAULT_SECONDS - (time.monotonic() - faulty_since)))  # pushes and syncs meanwhile
    set_faults(sandbox, {})
    faults_off = time.monotonic()
    stats = _admin(sandbox, "GET", "/stats")

    def converged():
        quarantined = SyncProblem.objects.filter(resolved_at=None).count()
        return _outbox_busy() == 0 and quarantined >= sum(len(h) for h in hostile.values())

    wait_for(converged, timeout=240, interval=1, what="the outbox to drain and the poison quarantined")
    converge = time.monotonic() - faults_off
    workers.stop()
    runs = {provider: _sync_until_done(provider, sync.MODE_FULL) for provider in Provider.values}

    mismatches = [m for p in Provider.values for m in _compare(p, remote_state(sandbox, p), ops)]
    mismatches += _paid_at_provider(sandbox, chosen)
    failed = list(Invoice.objects.filter(sync_state=SyncState.FAILED).values_list("number", "last_error"))
    mismatches += [f"{number} failed: {error}" for number, error in failed]
    problems = Counter(SyncProblem.objects.filter(resolved_at=None).values_list("provider", "field"))
    run_statuses = Counter(SyncRun.objects.values_list("kind", "status"))
    stuck = _report(
        capsys,
        "a bulk mark-paid of hundreds while syncs run, poison at both providers",
        [
            f"{BULK_INVOICES} invoices a provider mirrored in {faulty_since - started:.0f} s; hostile records "
            f"{ {str(p): len(h) for p, h in hostile.items()} }",
            f"bulk mark paid: {len(report.queued)} queued ({BULK_QONTO} Qonto, {BULK_MKP} MijnKlantportaal), "
            f"{len(report.skipped)} skipped",
            "2 workers and beat: outbox sweep every 5 s, Qonto quick sync every 10 s, MijnKlantportaal every 30 s",
            f"sync runs: {dict(sorted((f'{k} {s}', n) for (k, s), n in run_statuses.items()))}",
            f"final full runs: {', '.join(f'{p} {r.status} ({r.pages} pages)' for p, r in runs.items())}",
            f"open problems: {dict(sorted((f'{p} {f}', n) for (p, f), n in problems.items()))}",
        ],
        f"{stats['faults']['total']} in {faults_off - faulty_since:.0f} s of {stats['requests']['total']} "
        f"requests {dict(sorted(stats['faults']['by_kind'].items()))}",
        sandbox,
        mismatches,
        converge,
    )
    assert stats["faults"]["total"] > 0
    assert mismatches == []
    assert sum(_duplicates(sandbox).values()) == 0
    assert SyncProblem.objects.filter(resolved_at=None).count() == sum(len(h) for h in hostile.values())
    assert sum(stuck.values()) == 0

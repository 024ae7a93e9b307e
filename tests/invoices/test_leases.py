"""Crash-safe leases: a heartbeat keeps a running sync's lease, a stopped one frees it within the
TTL, the sweep marks the run abandoned, and a taken lease is refused without a database error."""

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from invoices.models import Lease, Provider, SyncRun
from invoices.sync import MODE_QUICK, leases, sync_provider
from invoices.sync.runs import abandon_stopped_runs

TTL = timedelta(seconds=1)


@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_keeps_the_lease_and_a_stopped_one_lets_go_within_the_ttl():
    assert leases.acquire("sync:mkp:invoices", holder="worker", ttl=TTL)
    with leases.Heartbeat("sync:mkp:invoices", holder="worker", ttl=TTL) as heartbeat:
        time.sleep(1.6)
        assert not leases.acquire("sync:mkp:invoices", holder="other", ttl=TTL), "renewed past its TTL"
        heartbeat.check()
    # The worker is gone: nothing renews the lease and nothing releases it.
    time.sleep(1.1)
    assert leases.acquire("sync:mkp:invoices", holder="other", ttl=TTL)


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_lease_went_to_another_stops_at_its_next_check():
    assert leases.acquire("sync:qonto:invoices", holder="worker", ttl=TTL)
    with leases.Heartbeat("sync:qonto:invoices", holder="worker", ttl=TTL) as heartbeat:
        Lease.objects.filter(name="sync:qonto:invoices").update(holder="successor")
        time.sleep(0.5)
        with pytest.raises(leases.LeaseLost, match="Another run took over"):
            heartbeat.check()


@pytest.mark.django_db
def test_the_sweep_marks_runs_whose_worker_stopped_as_abandoned_and_leaves_live_ones(sandbox, settings):
    now = timezone.now()
    settings.SYNC_LEASE_TTL_SECONDS = 60
    Lease.objects.create(name="sync:mkp:invoices", holder="dead", expires_at=now - timedelta(seconds=5))
    Lease.objects.create(name="sync:qonto:invoices", holder="alive", expires_at=now + timedelta(seconds=50))
    dead = SyncRun.objects.create(provider=Provider.MKP, kind="quick", holder="dead")
    alive = SyncRun.objects.create(provider=Provider.QONTO, kind="quick", holder="alive")
    taken_over = SyncRun.objects.create(provider=Provider.QONTO, kind="full", holder="before-alive")
    assert abandon_stopped_runs() == 2
    for run in (dead, alive, taken_over):
        run.refresh_from_db()
    last_beat = timezone.localtime(now - timedelta(seconds=65))
    assert dead.status == SyncRun.Status.ABANDONED
    assert dead.error == (
        f"Its worker stopped (no heartbeat since {last_beat:%H:%M:%S}); the next run resumes where it stopped."
    )
    assert taken_over.status == SyncRun.Status.ABANDONED
    assert "(it no longer holds its lease)" in taken_over.error
    assert alive.status == SyncRun.Status.RUNNING
    # The dead worker's lease is free for the next run, which records its holder.
    run = sync_provider(provider=Provider.MKP, mode=MODE_QUICK)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.holder and run.holder != "dead"


@pytest.mark.django_db
def test_a_taken_lease_is_refused_without_a_failing_insert():
    assert leases.acquire("sync:mkp:customers", holder="a", ttl=TTL)
    with CaptureQueriesContext(connection) as queries:
        assert not leases.acquire("sync:mkp:customers", holder="b", ttl=TTL)
    inserts = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("INSERT")]
    assert inserts, "the row is made sure of first"
    assert all("ON CONFLICT" in sql.upper() or "OR IGNORE" in sql.upper() for sql in inserts)
    # Nothing failed in this transaction: PostgreSQL would refuse any further statement otherwise.
    assert Lease.objects.get(name="sync:mkp:customers").holder == "a"


@pytest.mark.django_db(transaction=True)
def test_a_sync_that_outlasts_its_ttl_keeps_its_lease(sandbox, settings, monkeypatch):
    from integrations.mkp.client import MijnKlantportaalClient
    from tests.invoices.helpers import seed

    seed(sandbox, invoices=15 * 3, customers=2)
    settings.SYNC_LEASE_TTL_SECONDS = 1.0
    original, intruder_took_it = MijnKlantportaalClient.list_invoices, []

    def slow_page(self, page=1):
        if page == 3:  # a wait of the run longer than its TTL
            time.sleep(1.6)
            intruder_took_it.append(leases.acquire("sync:mkp:invoices", holder="intruder", ttl=TTL))
        return original(self, page)

    monkeypatch.setattr(MijnKlantportaalClient, "list_invoices", slow_page)
    run = sync_provider(provider=Provider.MKP, mode=MODE_QUICK)
    assert (run.status, run.created) == (SyncRun.Status.SUCCEEDED, 45)
    assert intruder_took_it == [False]
    assert not Lease.objects.filter(name="sync:mkp:invoices", expires_at__gt=timezone.now()).exists()

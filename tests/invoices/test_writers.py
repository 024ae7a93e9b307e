"""Parallel writers: bounded, ordered per key, failures raised in the caller; and the sync using them."""

import threading
import time

import pytest
from django.db import connection, transaction

from invoices.models import Invoice, Provider
from invoices.sync import MODE_CUSTOMERS, MODE_FULL, MODE_QUICK, pages, sync_provider
from invoices.sync.writers import Writers
from tests.invoices.helpers import remote_state, seed


def test_jobs_run_on_their_own_threads_at_most_as_many_at_once_as_asked():
    running, most, lock = [0], [0], threading.Lock()
    names = set()
    pair = threading.Barrier(2, timeout=10)  # each job goes on only once another runs beside it

    def job():
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            names.add(threading.current_thread().name)
        pair.wait()
        with lock:
            running[0] -= 1

    with Writers(threads=2) as writers:
        for _ in range(8):
            writers.submit(job)
    assert most[0] == 2
    assert running[0] == 0, "the block ends when every job has finished"
    assert threading.current_thread().name not in names


def test_one_thread_means_the_callers_thread():
    seen = []
    with Writers(threads=1) as writers:
        writers.submit(lambda: seen.append(threading.current_thread()))
    assert seen == [threading.current_thread()]


def test_a_job_waits_for_the_job_in_flight_that_shares_a_key():
    order = []
    first_started = threading.Event()

    def slow():
        first_started.set()
        time.sleep(0.1)
        order.append("older copy")

    with Writers(threads=2) as writers:
        writers.submit(slow, keys=["inv-1", "inv-2"])
        first_started.wait(5)
        writers.submit(lambda: order.append("newer copy"), keys=["inv-2", "inv-3"])
    assert order == ["older copy", "newer copy"]


def test_a_failed_job_is_raised_in_the_caller_and_no_new_job_starts():
    done = []

    def fails():
        raise ValueError("the database said no")

    with pytest.raises(ValueError, match="the database said no"), Writers(threads=2) as writers:
        writers.submit(fails, keys=["inv-1"])
        for n in range(5):
            # Shares a key with the failed job, so it waits for it and learns of the failure.
            writers.submit(lambda n=n: done.append(n), keys=["inv-1"])
    assert done == [], "after a failure, nothing more is written"


def test_a_failure_while_the_caller_fails_does_not_hide_the_callers_error():
    with pytest.raises(KeyError), Writers(threads=2) as writers:
        writers.submit(lambda: 1 / 0)
        raise KeyError("the fetch failed")


def test_each_writer_thread_closes_its_database_connections(monkeypatch):
    from invoices.sync import writers as module

    closed_by = []

    class Connections:
        def close_all(self):
            closed_by.append(threading.current_thread().name)

    monkeypatch.setattr(module, "connections", Connections())
    with Writers(threads=2) as writers:
        writers.submit(lambda: None)
    assert sorted(closed_by) == ["sync-writer-0", "sync-writer-1"]


@pytest.mark.django_db
def test_inside_a_callers_transaction_the_sync_writes_in_the_callers_thread():
    with transaction.atomic():
        assert pages.full_run_writers() == 1


@pytest.mark.django_db(transaction=True)
def test_a_full_sync_writes_its_groups_in_parallel_on_postgresql(sandbox, monkeypatch, settings):
    settings.RATE_LIMIT_URL = "off"  # 160 pages: more than the key's 60 requests a minute
    seed(sandbox, invoices=15 * 160, customers=3)  # 2,400 invoices: three groups
    sync_provider(provider=Provider.MKP, mode=MODE_CUSTOMERS)
    threads, overlapped = [], []
    second_started = threading.Event()
    upsert = pages.upsert_invoices

    def recording(**kwargs):
        threads.append(threading.current_thread().name)
        if len(threads) == 1 and connection.vendor == "postgresql":
            # The first group is held until the second one is being written beside it.
            overlapped.append(second_started.wait(10))
        elif len(threads) == 2:
            second_started.set()
        return upsert(**kwargs)

    monkeypatch.setattr(pages, "upsert_invoices", recording)
    run = sync_provider(provider=Provider.MKP, mode=MODE_FULL)

    assert (run.created, run.pages) == (2400, 160)
    remote = {r["id"]: r["amount"] for r in remote_state(sandbox, "mkp")}
    local = dict(Invoice.objects.filter(provider=Provider.MKP).values_list("remote_id", "amount"))
    assert {k: str(v) for k, v in local.items()} == remote
    if connection.vendor == "postgresql":
        assert len(threads) == 3
        assert all(name.startswith("sync-writer-") for name in threads)
        assert overlapped == [True], "two groups were written at once"
    else:
        assert threads == [threading.current_thread().name] * 3, "SQLite takes one writer at a time"


@pytest.mark.django_db(transaction=True)
def test_a_quick_run_writes_in_its_own_thread_with_no_extra_connection(sandbox, monkeypatch):
    seed(sandbox, invoices=30, customers=3)
    threads = []
    upsert = pages.upsert_invoices

    def recording(**kwargs):
        threads.append(threading.current_thread().name)
        return upsert(**kwargs)

    monkeypatch.setattr(pages, "upsert_invoices", recording)
    run = sync_provider(provider=Provider.QONTO, mode=MODE_QUICK)
    assert run.created == 30
    assert threads == [threading.current_thread().name]

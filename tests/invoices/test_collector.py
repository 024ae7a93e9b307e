"""The collector is paced for bulk work during a sync, and the process's own setting comes back."""

import gc

import pytest

from invoices.models import Provider
from invoices.sync import MODE_FULL, pages, sync_provider
from invoices.sync.collector import BULK_THRESHOLD, bulk_allocations
from tests.invoices.helpers import seed


@pytest.fixture
def default_threshold():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_bulk_work_collects_the_youngest_generation_less_often_and_restores_the_setting(default_threshold):
    with bulk_allocations():
        assert gc.get_threshold() == (BULK_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_the_setting_comes_back_when_the_last_of_overlapping_jobs_ends(default_threshold):
    first, second = bulk_allocations(), bulk_allocations()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == BULK_THRESHOLD, "the other job is still running"
    second.__exit__(None, None, None)
    assert gc.get_threshold() == (700, 10, 10)


def test_a_process_that_already_collects_less_often_keeps_its_setting():
    saved = gc.get_threshold()
    gc.set_threshold(BULK_THRESHOLD * 2, 5, 5)
    try:
        with bulk_allocations():
            assert gc.get_threshold() == (BULK_THRESHOLD * 2, 5, 5)
        assert gc.get_threshold() == (BULK_THRESHOLD * 2, 5, 5)
    finally:
        gc.set_threshold(*saved)


@pytest.mark.django_db
def test_a_sync_runs_paced_for_bulk_work_even_when_it_fails(sandbox, monkeypatch, default_threshold):
    seed(sandbox, invoices=20, customers=3)
    during = []
    upsert = pages.upsert_invoices

    def recording(**kwargs):
        during.append(gc.get_threshold()[0])
        return upsert(**kwargs)

    monkeypatch.setattr(pages, "upsert_invoices", recording)
    sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    assert during == [BULK_THRESHOLD]
    assert gc.get_threshold() == (700, 10, 10)

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(pages, "upsert_invoices", broken)
    with pytest.raises(RuntimeError):
        sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    assert gc.get_threshold() == (700, 10, 10)

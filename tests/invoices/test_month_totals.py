"""The dashboard's monthly totals are recomputed off the sync's path: a sync run that changed
invoices queues one recomputation after commit, a burst of runs queues one, and nothing is queued
when nothing changed."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from invoices.models import MonthTotal, Provider
from invoices.services.month_totals import month_totals_refresh
from invoices.sync import MODE_CUSTOMERS, MODE_FULL, MODE_QUICK, sync_provider
from invoices.tasks import refresh_month_totals
from tests.factories import InvoiceFactory
from tests.invoices.helpers import seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def recomputations(monkeypatch):
    """The recomputations queued (their "queued" mark), instead of a broker."""
    from invoices import tasks

    calls: list[str] = []
    monkeypatch.setattr(tasks.refresh_month_totals, "delay", calls.append)
    return calls


def test_a_sync_that_changed_invoices_queues_one_recomputation(
    sandbox, recomputations, django_capture_on_commit_callbacks
):
    seed(sandbox, invoices=30, customers=3)
    with django_capture_on_commit_callbacks(execute=True):
        customers = sync_provider(provider=Provider.MKP, mode=MODE_CUSTOMERS)
    assert customers.created == 3 and recomputations == [], "customers are no invoices"
    with django_capture_on_commit_callbacks(execute=True):
        first = sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    assert first.created == 30
    assert len(recomputations) == 1
    with django_capture_on_commit_callbacks(execute=True):
        sync_provider(provider=Provider.QONTO, mode=MODE_QUICK)  # a burst: one is queued already
    assert len(recomputations) == 1

    refresh_month_totals(recomputations[0])  # the queued task starts: later changes queue again
    assert MonthTotal.objects.filter(invoiced_count__gt=0).exists()
    with django_capture_on_commit_callbacks(execute=True):
        unchanged = sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    assert (unchanged.created, unchanged.updated, unchanged.removed) == (0, 0, 0)
    assert len(recomputations) == 1, "nothing changed, nothing queued"
    seed(sandbox, invoices=1, customers=1)
    with django_capture_on_commit_callbacks(execute=True):
        sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    assert len(recomputations) == 2


def test_the_scheduled_recomputation_leaves_a_queued_one_queued(
    sandbox, recomputations, django_capture_on_commit_callbacks
):
    seed(sandbox, invoices=5, customers=1)
    sync_provider(provider=Provider.MKP, mode=MODE_CUSTOMERS)
    with django_capture_on_commit_callbacks(execute=True):
        sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    refresh_month_totals()  # the schedule's run: the queued one will still run and see later changes
    seed(sandbox, invoices=1, customers=1)
    with django_capture_on_commit_callbacks(execute=True):
        changed = sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    assert changed.created == 1
    assert len(recomputations) == 1


def test_a_recomputation_never_replaces_a_later_one(monkeypatch):
    from invoices.services import month_totals

    noon = datetime(2026, 11, 18, 12, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
    InvoiceFactory()
    with time_machine.travel(noon, tick=False):
        stale = month_totals.month_totals_compute()  # started first, slow to finish
    with time_machine.travel(noon + timedelta(seconds=5), tick=False):
        InvoiceFactory()
        assert month_totals_refresh()  # started later, stored first
    monkeypatch.setattr(month_totals, "month_totals_compute", lambda today=None: stale)
    assert month_totals_refresh() == []
    assert {t.computed_at for t in MonthTotal.objects.all()} == {noon + timedelta(seconds=5)}
    assert sum(t.invoiced_count for t in MonthTotal.objects.all()) == 2

"""The dashboard's figures are recomputed off the sync's path: a sync run that changed invoices
queues one recomputation after commit, a burst of runs queues one, and nothing is queued when
nothing changed; a recomputation never replaces a later one."""

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from invoices.models import DashboardSnapshot, Invoice, InvoiceStatus, Provider
from invoices.push import push_invoices
from invoices.services.dashboard_snapshot import dashboard_snapshot_refresh
from invoices.services.payment import invoice_mark_paid
from invoices.sync import MODE_CUSTOMERS, MODE_FULL, MODE_QUICK, sync_provider
from invoices.tasks import refresh_dashboard_snapshot
from tests.factories import InvoiceFactory
from tests.invoices.helpers import seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def recomputations(monkeypatch):
    """The recomputations queued (their "queued" mark), instead of a broker."""
    from invoices import tasks

    calls: list[str] = []
    monkeypatch.setattr(tasks.refresh_dashboard_snapshot, "delay", calls.append)
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

    refresh_dashboard_snapshot(recomputations[0])  # the queued task starts: later changes queue again
    assert sum(row["count"] for row in DashboardSnapshot.objects.get().figures["outstanding"]) > 0
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
    refresh_dashboard_snapshot()  # the schedule's run: the queued one will still run and see later changes
    seed(sandbox, invoices=1, customers=1)
    with django_capture_on_commit_callbacks(execute=True):
        changed = sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    assert changed.created == 1
    assert len(recomputations) == 1


def test_a_recomputation_never_replaces_a_later_one(monkeypatch):
    from invoices.services import dashboard_snapshot

    noon = datetime(2026, 11, 18, 12, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
    InvoiceFactory(due_date=noon.date())
    with time_machine.travel(noon, tick=False):
        stale = dashboard_snapshot.dashboard_snapshot_compute()  # started first, slow to finish
    with time_machine.travel(noon + timedelta(seconds=5), tick=False):
        InvoiceFactory(due_date=noon.date())
        assert dashboard_snapshot_refresh()  # started later, stored first
    monkeypatch.setattr(dashboard_snapshot, "dashboard_snapshot_compute", lambda now=None: stale)
    with time_machine.travel(noon + timedelta(seconds=1), tick=False):  # the slow one ends
        assert dashboard_snapshot_refresh() is None
    stored = DashboardSnapshot.objects.get()
    assert stored.computed_at == noon + timedelta(seconds=5)
    assert sum(row["count"] for row in stored.figures["outstanding"]) == 2


def test_a_payment_confirmed_by_the_push_queues_a_recomputation_the_page_then_shows(
    sandbox, recomputations, queued, admin_client, admin_user, django_capture_on_commit_callbacks
):
    seed(sandbox, invoices=20, customers=2)
    sync_provider(provider=Provider.MKP, mode=MODE_CUSTOMERS)
    with django_capture_on_commit_callbacks(execute=True):
        sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    refresh_dashboard_snapshot(recomputations.pop())  # the worker runs what the sync queued

    def total(label: str) -> tuple[int, Decimal]:
        (row,) = [row for row in admin_client.get("/admin/").context["dashboard"].rows if row.label == label]
        return row.cells[-1].count, row.cells[-1].amount

    invoice = Invoice.objects.filter(provider=Provider.MKP, status=InvoiceStatus.OPEN, currency="EUR").first()
    outstanding, paid = total("Outstanding"), total("Paid this month")
    invoice_mark_paid(invoice=invoice, paid_at=timezone.now(), actor=admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        push_invoices([invoice.pk])
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert len(recomputations) == 1, "the confirmed payment queued one recomputation on commit"
    assert total("Outstanding") == outstanding, "the page shows the snapshot until it is recomputed"
    refresh_dashboard_snapshot(recomputations[0])
    assert total("Outstanding") == (outstanding[0] - 1, outstanding[1] - invoice.amount)
    assert total("Paid this month") == (paid[0] + 1, paid[1] + invoice.amount)


def test_a_broker_that_cannot_be_reached_leaves_the_change_committed_and_the_mark_free(
    monkeypatch, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError as BrokerUnavailable

    from invoices import tasks
    from invoices.models import Lease
    from invoices.services.dashboard_snapshot import QUEUED, dashboard_snapshot_queue

    def down(*args):
        raise BrokerUnavailable("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.refresh_dashboard_snapshot, "delay", down)
    invoice = InvoiceFactory()
    with django_capture_on_commit_callbacks(execute=True):
        Invoice.objects.filter(pk=invoice.pk).update(status=InvoiceStatus.PAID)
        dashboard_snapshot_queue()  # no exception reaches the caller
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PAID
    mark = Lease.objects.filter(name=QUEUED).first()
    assert mark is None or mark.expires_at <= timezone.now(), "the next change may queue again"


def test_the_dashboard_shows_the_older_figures_when_the_recomputation_fails(admin_client, monkeypatch):
    from django.db import OperationalError

    from invoices.services import dashboard_snapshot

    InvoiceFactory()
    stored = dashboard_snapshot_refresh()
    DashboardSnapshot.objects.update(computed_at=stored.computed_at - timedelta(hours=1))  # stale

    def fails(**kwargs):
        raise OperationalError("canceling statement due to statement timeout")

    monkeypatch.setattr(dashboard_snapshot, "dashboard_snapshot_compute", fails)
    page = admin_client.get("/admin/")
    assert page.status_code == 200
    assert "Figures as of" in page.content.decode()

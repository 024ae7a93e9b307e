"""A Qonto payment date of today is accepted at any hour of the day in Europe/Paris: Qonto keeps the
date only, and its "not in the future" is the Paris date. MijnKlantportaal keeps the moment."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from invoices.forms import MarkPaidForm
from invoices.models import Invoice, InvoiceStatus, PendingAction, Provider, SyncState

PARIS = ZoneInfo("Europe/Paris")
UTC = ZoneInfo("UTC")
CHANGELIST = reverse("admin:invoices_invoice_changelist")


def form(day: str, time: str, providers: set[str]) -> MarkPaidForm:
    return MarkPaidForm({"post": "yes", "paid_at_0": day, "paid_at_1": time}, providers=providers)


@pytest.mark.parametrize(
    ("now", "day", "time"),
    [
        # Early in the Paris day: still yesterday in UTC, today in Paris.
        (datetime(2026, 11, 23, 0, 5, tzinfo=PARIS), "2026-11-23", "23:59:00"),
        (datetime(2026, 7, 15, 1, 59, tzinfo=PARIS), "2026-07-15", "23:59:59"),
        # Late in the Paris day: any time of today, even hours ahead of now.
        (datetime(2026, 11, 22, 9, 0, tzinfo=PARIS), "2026-11-22", "23:59:00"),
        (datetime(2026, 11, 22, 23, 59, 59, tzinfo=PARIS), "2026-11-22", "23:59:59"),
        # Past midnight in Paris, not yet in UTC: 23:30 UTC is already the next day in Paris.
        (datetime(2026, 11, 22, 23, 30, tzinfo=UTC), "2026-11-23", "12:00:00"),
        (datetime(2026, 7, 14, 22, 30, tzinfo=UTC), "2026-07-15", "00:10:00"),
    ],
)
def test_today_in_paris_is_accepted_at_any_hour(now, day, time):
    with time_machine.travel(now, tick=False):
        checked = form(day, time, {Provider.QONTO})
        assert checked.is_valid(), checked.errors


@pytest.mark.parametrize(
    ("now", "day", "latest"),
    [
        (datetime(2026, 11, 22, 23, 59, 59, tzinfo=PARIS), "2026-11-23", "22 November 2026"),
        # 22:59 UTC in winter is 23:59 in Paris: still the 22nd there.
        (datetime(2026, 11, 22, 22, 59, tzinfo=UTC), "2026-11-23", "22 November 2026"),
        (datetime(2026, 7, 14, 21, 59, tzinfo=UTC), "2026-07-15", "14 July 2026"),
    ],
)
def test_tomorrow_in_paris_is_refused_with_the_latest_day(now, day, latest):
    with time_machine.travel(now, tick=False):
        checked = form(day, "00:00:00", {Provider.QONTO})
        assert not checked.is_valid()
    assert checked.errors["paid_at"] == [
        f"Qonto does not accept a payment date in the future: choose {latest} or earlier."
    ]


def test_mijnklantportaal_keeps_the_moment_so_later_today_is_refused():
    with time_machine.travel(datetime(2026, 11, 22, 9, 0, tzinfo=PARIS), tick=False):
        for providers in ({Provider.MKP}, {Provider.MKP, Provider.QONTO}):
            checked = form("2026-11-22", "23:59:00", providers)
            assert not checked.is_valid()
            assert checked.errors["paid_at"] == ["The payment moment cannot be in the future."]


@pytest.mark.django_db
def test_bulk_mark_paid_asks_qonto_for_today_at_23_59(admin_client, queued):
    invoice = Invoice.objects.create(
        provider=Provider.QONTO, remote_id="qi-today", number="Q-TODAY", status=InvoiceStatus.OPEN
    )
    with time_machine.travel(datetime(2026, 11, 23, 0, 20, tzinfo=PARIS), tick=False):
        response = admin_client.post(
            CHANGELIST,
            {
                "action": "mark_paid_action",
                "_selected_action": [invoice.pk],
                "post": "yes",
                "paid_at_0": "2026-11-23",
                "paid_at_1": "23:59:00",
            },
        )
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.pending_action == PendingAction.MARK_PAID
    assert invoice.sync_state == SyncState.PENDING
    assert invoice.requested_paid_on == date(2026, 11, 23)

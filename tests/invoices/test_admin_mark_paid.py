"""Marking invoices paid from the admin: the button, the bulk action and its confirmation page."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from invoices.models import (
    ActionBatch,
    Invoice,
    InvoiceEvent,
    InvoiceStatus,
    PendingAction,
    Provider,
    SyncState,
)
from invoices.push import push_invoices
from invoices.sync import MODE_FULL, sync_provider
from tests.invoices.helpers import remote_state, seed

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:invoices_invoice_changelist")


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def mirrored(sandbox):
    seed(sandbox, invoices=40, customers=4)
    assert sync_provider(provider=Provider.MKP, mode=MODE_FULL).status == "succeeded"
    assert sync_provider(provider=Provider.QONTO, mode=MODE_FULL).status == "succeeded"
    return sandbox


def open_invoices(provider):
    return Invoice.objects.filter(provider=provider, status=InvoiceStatus.OPEN).order_by("pk")


def test_the_button_marks_one_invoice_paid_at_mijnklantportaal(admin_client, mirrored, admin_user):
    invoice = open_invoices(Provider.MKP).first()
    url = reverse("admin:invoices_invoice_mark_paid", args=[invoice.pk])
    change_page = admin_client.get(
        reverse("admin:invoices_invoice_change", args=[invoice.pk])
    ).content.decode()
    assert url in change_page
    form_page = admin_client.get(url)
    assert form_page.status_code == 200
    response = admin_client.post(
        url, {"post": "yes", "paid_at_0": "2026-11-20", "paid_at_1": "14:30:00"}, follow=True
    )
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.sync_state == SyncState.SYNCED
    # Sent as Amsterdam local time and echoed back by the provider in ATOM.
    assert invoice.paid_at == datetime(2026, 11, 20, 14, 30, tzinfo=ZoneInfo("Europe/Amsterdam"))
    remote = next(r for r in remote_state(mirrored, "mkp") if r["id"] == invoice.remote_id)
    assert remote["paid"] is True
    assert any("confirmed by MijnKlantportaal (paid 20 Nov 2026 14:30)" in m for m in texts(response))
    assert invoice.events.get(kind=InvoiceEvent.Kind.PAYMENT_REQUESTED).actor == admin_user
    assert invoice.events.get(kind=InvoiceEvent.Kind.MARKED_PAID).actor == admin_user


def test_bulk_mark_paid_asks_for_the_date_then_queues_after_commit(
    admin_client, mirrored, queued, django_capture_on_commit_callbacks
):
    unpaid = list(open_invoices(Provider.MKP)[:3]) + list(open_invoices(Provider.QONTO)[:2])
    paid = Invoice.objects.filter(status=InvoiceStatus.PAID).first()
    selected = [i.pk for i in unpaid] + [paid.pk]
    confirm = admin_client.post(CHANGELIST, {"action": "mark_paid_action", "_selected_action": selected})
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "Mark these 6 invoices as paid." in page
    assert "Qonto keeps only the date" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            CHANGELIST,
            {
                "action": "mark_paid_action",
                "_selected_action": selected,
                "post": "yes",
                "paid_at_0": (timezone.localdate() - timedelta(days=1)).isoformat(),
                "paid_at_1": "09:00:00",
            },
            follow=True,
        )
    joined = " ".join(texts(response))
    assert "5 invoices will be marked paid at the provider in the background." in joined
    assert f"1 invoice skipped ({paid}: already paid)" in joined
    assert sorted(pk for call in queued for pk in call) == sorted(i.pk for i in unpaid)
    assert Invoice.objects.filter(pending_action=PendingAction.MARK_PAID).count() == 5
    batch = ActionBatch.objects.get()
    assert response.request["PATH_INFO"] == reverse("admin:invoices_actionbatch_change", args=[batch.pk])
    assert response.content.decode().count("in progress") == 5

    # The worker's part, then the result page says what happened per invoice.
    push_invoices([i.pk for i in unpaid])
    page = admin_client.get(reverse("admin:invoices_actionbatch_change", args=[batch.pk])).content.decode()
    assert page.count(">paid<") == 5
    assert "skipped: already paid" in page
    qonto = Invoice.objects.get(pk=unpaid[-1].pk)
    assert qonto.status == InvoiceStatus.PAID
    assert timezone.localtime(qonto.paid_at).date() == timezone.localdate() - timedelta(days=1)


def test_a_future_date_is_refused_for_qonto_with_the_latest_allowed_day(admin_client, mirrored):
    invoice = open_invoices(Provider.QONTO).first()
    # 23:59 in Paris on the 22nd (already the 23rd in UTC+3 and beyond): the 23rd is tomorrow.
    with time_machine.travel(datetime(2026, 11, 22, 23, 59, tzinfo=ZoneInfo("Europe/Paris")), tick=False):
        response = admin_client.post(
            reverse("admin:invoices_invoice_mark_paid", args=[invoice.pk]),
            {"post": "yes", "paid_at_0": "2026-11-23", "paid_at_1": "00:10:00"},
        )
    assert "Qonto does not accept a payment date in the future: choose 22 November 2026 or earlier." in (
        response.content.decode()
    )
    invoice.refresh_from_db()
    assert invoice.pending_action == ""


def test_a_provider_refusal_is_shown_and_kept_for_retry(admin_client, mirrored):
    invoice = open_invoices(Provider.MKP).first()
    import requests

    requests.delete(f"{mirrored.admin_url}/state/mkp/{invoice.remote_id}", timeout=10).raise_for_status()
    response = admin_client.post(
        reverse("admin:invoices_invoice_mark_paid", args=[invoice.pk]),
        {"post": "yes", "paid_at_0": date.today().isoformat(), "paid_at_1": "00:00:00"},
        follow=True,
    )
    invoice.refresh_from_db()
    assert invoice.sync_state == SyncState.FAILED
    assert any("does not know this invoice" in m for m in texts(response))
    listing = admin_client.get(CHANGELIST + "?sync_state__exact=failed").content.decode()
    assert invoice.number in listing


def test_changelist_filters_search_and_export(admin_client, mirrored):
    page = admin_client.get(CHANGELIST + "?paid=no&provider__exact=qonto").content.decode()
    some_open = open_invoices(Provider.QONTO).first()
    assert some_open.number in page
    overdue = admin_client.get(CHANGELIST + "?overdue=yes")
    assert overdue.status_code == 200
    search = admin_client.get(CHANGELIST, {"q": some_open.number}).content.decode()
    assert some_open.number in search
    response = admin_client.post(
        CHANGELIST, {"action": "export_csv_action", "_selected_action": [some_open.pk]}
    )
    body = b"".join(response.streaming_content).decode()
    header, row = body.strip().splitlines()
    assert header.startswith("provider,number,customer,currency,amount")
    assert row.startswith(f"qonto,{some_open.number},")
    assert f"{some_open.amount:.2f}" in row


def test_the_paid_column_shows_the_local_moment_like_the_dates_beside_it(admin_client):
    Invoice.objects.create(
        provider=Provider.MKP,
        remote_id="inv_paidcolumn0001",
        number="2026-PAID-1",
        status=InvoiceStatus.PAID,
        paid_at=datetime(2026, 11, 18, 5, 12, tzinfo=ZoneInfo("UTC")),
        sync_state=SyncState.SYNCED,
    )
    page = admin_client.get(CHANGELIST, {"q": "2026-PAID-1"}).content.decode()
    assert "18 Nov 2026 06:12" in page  # Europe/Amsterdam


def test_refresh_from_provider_reflects_a_remote_payment(admin_client, mirrored):
    import requests

    invoice = open_invoices(Provider.MKP).first()
    requests.post(
        f"{mirrored.admin_url}/state/mkp/{invoice.remote_id}",
        json={"paidAt": "2026-11-21T10:00:00+01:00"},
        timeout=10,
    ).raise_for_status()
    response = admin_client.post(reverse("admin:invoices_invoice_refresh", args=[invoice.pk]), follow=True)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert texts(response) == [f"Invoice {invoice.number} refreshed from MijnKlantportaal."]

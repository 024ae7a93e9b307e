"""One way to write money, moments and dates on every admin page and in every message staff read:
"EUR 3,802.08", "7 Dec 2026 16:22", "7 Dec 2026", and "—" for nothing."""

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from invoices import selectors
from invoices.models import InvoiceEvent, Provider, SyncRun
from invoices.services import payment
from tests.factories import InvoiceFactory

pytestmark = pytest.mark.django_db

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
AT = datetime(2026, 12, 7, 16, 22, tzinfo=AMSTERDAM)


def page(client, invoice) -> str:
    return client.get(reverse("admin:invoices_invoice_change", args=[invoice.pk])).content.decode()


def test_the_invoice_page_writes_money_and_moments_one_way(admin_client):
    invoice = InvoiceFactory(
        amount=Decimal("3802.08"),
        vat_amount=None,
        remote_created_at=AT,
        last_synced_at=AT + timedelta(minutes=1),
        next_attempt_at=None,
    )
    InvoiceEvent.objects.create(invoice=invoice, kind=InvoiceEvent.Kind.PAYMENT_REQUESTED, message="x")
    InvoiceEvent.objects.filter(invoice=invoice).update(at=AT + timedelta(minutes=2))
    html = page(admin_client, invoice)
    assert "EUR 3,802.08" in html and "3802.08" not in html
    for moment in ("7 Dec 2026 16:22", "7 Dec 2026 16:23", "7 Dec 2026 16:24"):
        assert moment in html
    assert "p.m." not in html and "a.m." not in html
    assert '<div class="readonly">—</div>' in html  # VAT, the next attempt: the one empty mark
    assert '<div class="readonly">-</div>' not in html


def test_the_list_writes_dates_and_empty_cells_one_way(admin_client):
    InvoiceFactory(number="2026-00001", due_date=None, issue_date=AT.date())
    html = admin_client.get(reverse("admin:invoices_invoice_changelist")).content.decode()
    assert 'title="issued 7 Dec 2026">—</span>' in html


@pytest.mark.parametrize(
    ("provider", "written"),
    [(Provider.MKP, "Paid on 7 Dec 2026 16:22."), (Provider.QONTO, "Paid on 7 Dec 2026.")],
)
def test_a_payment_request_is_recorded_in_the_admin_format(admin_user, queued, provider, written):
    invoice = InvoiceFactory(provider=provider)
    with time_machine.travel(AT + timedelta(hours=1), tick=False):
        payment.invoice_mark_paid(invoice=invoice, paid_at=AT, actor=admin_user)
    assert invoice.events.get(kind=InvoiceEvent.Kind.PAYMENT_REQUESTED).message == written


def test_the_stale_sync_warning_writes_the_moment_in_the_admin_format(settings):
    settings.MKP_API_KEY = "mkp-key"
    SyncRun.objects.create(
        provider=Provider.MKP, kind="quick", status=SyncRun.Status.SUCCEEDED, started_at=AT, finished_at=AT
    )
    with time_machine.travel(AT + timedelta(days=2), tick=False):
        warnings = selectors.admin_warnings()
    assert "MijnKlantportaal has not synced successfully since 7 Dec 2026 16:22." in warnings


def test_a_mijnklantportaal_page_shows_no_qonto_field_and_no_empty_bookkeeping(admin_client):
    invoice = InvoiceFactory(provider=Provider.MKP, requested_paid_at=AT, requested_paid_on=AT.date())
    html = page(admin_client, invoice)
    assert "field-requested_paid_at" in html and "field-sync_state" in html and "field-attempts" in html
    for hidden in (
        "field-requested_paid_on",
        "field-last_error",
        "field-next_attempt_at",
        "field-created_by",
    ):
        assert hidden not in html
    assert "Payment date asked for at Qonto" not in html


def test_a_qonto_page_shows_its_payment_date_and_what_went_wrong(admin_client):
    invoice = InvoiceFactory(
        provider=Provider.QONTO,
        requested_paid_at=AT,
        requested_paid_on=AT.date(),
        last_error="Qonto said no.",
    )
    html = page(admin_client, invoice)
    assert "field-requested_paid_on" in html and "Qonto said no." in html
    assert "field-requested_paid_at" not in html and "field-send_notification" not in html


def test_records_are_named_with_the_admin_moment():
    invoice = InvoiceFactory()
    event = InvoiceEvent.objects.create(invoice=invoice, kind=InvoiceEvent.Kind.PAYMENT_REQUESTED)
    InvoiceEvent.objects.filter(pk=event.pk).update(at=AT)
    event.refresh_from_db()
    run = SyncRun.objects.create(provider=Provider.MKP, kind="quick", started_at=AT)
    assert str(event).endswith(" at 7 Dec 2026 16:22")
    assert str(run) == "MijnKlantportaal quick 7 Dec 2026 16:22"

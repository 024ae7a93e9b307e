"""What the invoice page says: the invoice named by its number, what went wrong in plain words and
what to do next, and a history whose rows do not repeat their caption."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from invoices.models import Invoice, InvoiceEvent, InvoiceStatus, Provider
from invoices.sync import MODE_FULL, sync_provider
from tests.invoices.helpers import seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice(sandbox):
    seed(sandbox, invoices=6, customers=2)
    assert sync_provider(provider=Provider.MKP, mode=MODE_FULL).status == "succeeded"
    return Invoice.objects.filter(provider=Provider.MKP, status=InvoiceStatus.OPEN).order_by("pk").first()


def test_a_refused_refresh_names_the_invoice_and_the_setting_to_check(admin_client, invoice, settings):
    settings.MKP_API_KEY = "not-the-key"
    response = admin_client.post(reverse("admin:invoices_invoice_refresh", args=[invoice.pk]), follow=True)
    assert [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)] == [
        (
            "error",
            f"Invoice {invoice.number} could not be refreshed: MijnKlantportaal refused our API key. "
            "Ask an administrator to check MKP_API_KEY.",
        )
    ]


def test_a_refresh_of_an_invoice_gone_at_the_provider_says_so(admin_client, invoice, sandbox):
    import requests

    requests.delete(f"{sandbox.admin_url}/state/mkp/{invoice.remote_id}", timeout=10).raise_for_status()
    response = admin_client.post(reverse("admin:invoices_invoice_refresh", args=[invoice.pk]), follow=True)
    assert [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)] == [
        (
            "warning",
            f"Invoice {invoice.number} no longer exists at MijnKlantportaal: it is marked removed here.",
        )
    ]


def test_the_history_shows_each_event_once_without_its_caption(admin_client, invoice):
    event = InvoiceEvent.objects.create(
        invoice=invoice, kind=InvoiceEvent.Kind.REFRESHED, message="Read again."
    )
    page = admin_client.get(reverse("admin:invoices_invoice_change", args=[invoice.pk])).content.decode()
    history = page[page.index('id="invoice-history"') :]
    history = history[: history.index("</table>")]
    assert str(event) not in history  # "Refreshed at 2026-…": the caption Django repeats
    assert history.count("Read again.") == 1
    assert history.count("<tr>") == 1 + invoice.events.count()

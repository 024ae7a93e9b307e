"""The invoice PDF behind the admin, and the CSV export that a spreadsheet opens safely."""

import csv
import io
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from invoices.models import Invoice, InvoiceStatus, Provider
from invoices.roles import CLERK, VIEWER
from invoices.services import intake
from invoices.sync import MODE_CUSTOMERS, MODE_FULL, sync_provider
from tests.factories import InvoiceFactory
from tests.invoices.helpers import pdf_bytes, seed

pytestmark = pytest.mark.django_db
STORED_NAME = re.compile(r"^invoices/(mkp|qonto)/\d{4}/\d{2}/[0-9a-f]{32}\.pdf$")


def login(django_user_model, username: str, group: str | None) -> Client:
    user = django_user_model.objects.create_user(username=username, password="x", is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer(django_user_model):
    return login(django_user_model, "victor", VIEWER)


@pytest.fixture
def clerk(django_user_model):
    return login(django_user_model, "clara", CLERK)


@pytest.fixture
def mirrored(sandbox):
    seed(sandbox, invoices=4, customers=2)
    for provider in Provider:
        assert sync_provider(provider=provider, mode=MODE_CUSTOMERS).status == "succeeded"
        assert sync_provider(provider=provider, mode=MODE_FULL).status == "succeeded"
    return sandbox


def pdf_url(invoice: Invoice) -> str:
    return reverse("admin:invoices_invoice_pdf", args=[invoice.pk])


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def draft(number: str = "2026-100", pdf_name: str = "../../etc/passwd.pdf") -> Invoice:
    return intake.invoice_create_draft(
        provider=Provider.QONTO, pdf_name=pdf_name, pdf_content=pdf_bytes(number), actor=None
    )


def test_a_viewer_gets_the_stored_pdf_with_safe_headers(viewer):
    invoice = draft()
    Invoice.objects.filter(pk=invoice.pk).update(number="INV/2026/../0001")
    response = viewer.get(pdf_url(invoice))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"] == 'inline; filename="INV-2026-..-0001.pdf"'
    assert body(response) == pdf_bytes("2026-100")


def test_stored_names_never_come_from_the_upload_or_the_provider():
    invoice = draft(pdf_name="../../etc/passwd.pdf")
    assert STORED_NAME.match(invoice.pdf.name), invoice.pdf.name
    assert invoice.pdf_name == "passwd.pdf"  # for display only


def test_the_pdf_is_for_staff_who_may_see_invoices(django_user_model, viewer):
    invoice = draft()
    anonymous = Client().get(pdf_url(invoice))
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith(reverse("admin:login"))
    nobody = login(django_user_model, "nora", None)
    assert nobody.get(pdf_url(invoice)).status_code == 403
    assert viewer.get(pdf_url(invoice)).status_code == 200


@pytest.mark.parametrize("provider", [Provider.MKP, Provider.QONTO])
def test_without_a_local_copy_the_pdf_is_fetched_from_the_provider_first(viewer, mirrored, provider):
    invoice = Invoice.objects.filter(provider=provider).exclude(remote_id=None).first()
    assert not invoice.pdf
    change_page = viewer.get(reverse("admin:invoices_invoice_change", args=[invoice.pk])).content.decode()
    assert pdf_url(invoice) in change_page
    assert "/media/" not in change_page
    response = viewer.get(pdf_url(invoice))
    assert response.status_code == 200, texts(response)
    assert body(response).startswith(b"%PDF-")
    invoice.refresh_from_db()
    assert STORED_NAME.match(invoice.pdf.name), invoice.pdf.name
    assert invoice.number not in invoice.pdf.name


def test_a_pdf_the_provider_cannot_give_is_said_plainly(viewer, mirrored):
    invoice = Invoice.objects.filter(provider=Provider.MKP).exclude(remote_id=None).first()
    Invoice.objects.filter(pk=invoice.pk).update(remote_id="inv_gone000000000")
    response = viewer.get(pdf_url(invoice), follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == reverse("admin:invoices_invoice_change", args=[invoice.pk])
    (message,) = texts(response)
    assert message.startswith(
        f"Invoice {invoice.number}: its PDF could not be fetched. MijnKlantportaal does not know this invoice"
    )


def test_a_stored_pdf_that_went_missing_is_said_plainly(viewer):
    invoice = draft()
    invoice.pdf.storage.delete(invoice.pdf.name)
    response = viewer.get(pdf_url(invoice), follow=True)
    assert response.status_code == 200
    assert "the stored PDF cannot be read" in texts(response)[0]


def test_download_from_the_provider_replaces_the_copy_and_saves_it(clerk, mirrored):
    invoice = Invoice.objects.filter(provider=Provider.MKP).exclude(remote_id=None).first()
    assert clerk.get(pdf_url(invoice)).status_code == 200
    invoice.refresh_from_db()
    first = invoice.pdf.name
    response = clerk.post(reverse("admin:invoices_invoice_fetch_pdf", args=[invoice.pk]))
    assert response.status_code == 302
    assert response["Location"] == pdf_url(invoice) + "?download=1"
    invoice.refresh_from_db()
    assert invoice.pdf.name != first
    assert not invoice.pdf.storage.exists(first)
    assert invoice.pdf.storage.exists(invoice.pdf.name)
    saved = clerk.get(response["Location"])
    assert saved["Content-Disposition"].startswith("attachment;")
    assert b"".join(saved.streaming_content) == invoice.pdf.open("rb").read()


def test_the_csv_makes_formulas_inert_and_keeps_amounts_and_dates_plain(viewer):
    hostile = ['=HYPERLINK("http://x","y")', "+31 20 123", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    for i, text in enumerate(hostile):
        InvoiceFactory(
            number=f"N{i}",
            customer=None,
            customer_name=text,
            amount=Decimal("-12.50"),
            status=InvoiceStatus.OPEN,
        )
    InvoiceFactory(number="=1+1", customer=None, customer_name="Plain BV", amount=Decimal("1397.19"))
    response = viewer.post(
        reverse("admin:invoices_invoice_changelist"),
        {
            "action": "export_csv_action",
            "_selected_action": list(Invoice.objects.values_list("pk", flat=True)),
        },
    )
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(body(response).decode())))
    by_name = {row["customer"]: row for row in rows}
    for text in hostile:
        row = by_name[f"'{text}"]
        assert row["amount"] == "-12.50"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["issue_date"])
    plain = by_name["Plain BV"]
    assert plain["number"] == "'=1+1"
    assert plain["amount"] == "1397.19"
    formula_cells = [
        cell
        for row in rows
        for key, cell in row.items()
        if key not in ("amount", "vat") and cell and cell[0] in "=+-@\t\r"
    ]
    assert formula_cells == []

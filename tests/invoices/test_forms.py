from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django.utils.datastructures import MultiValueDict

from integrations.sandbox.pdf import make_invoice_pdf
from invoices.forms import MarkPaidForm, MkpInvoiceForm, QontoUploadForm
from invoices.models import Provider
from tests.factories import CustomerFactory, InvoiceFactory

pytestmark = pytest.mark.django_db


def pdf_upload(name="invoice.pdf", content=None):
    content = (
        content
        if content is not None
        else make_invoice_pdf(number="X-1", amount=Decimal("1.00"), issue_date=date(2026, 1, 2))
    )
    return SimpleUploadedFile(name, content, content_type="application/pdf")


def mkp_form(**overrides):
    customer = CustomerFactory()
    data = {
        "customer": customer.pk,
        "number": "2026-100",
        "issue_date": "2026-11-01",
        "due_date": "2026-12-01",
        "amount": "12.95",
    }
    files = {"pdf": overrides.pop("pdf", pdf_upload())}
    data.update(overrides)
    return MkpInvoiceForm(data, files)


def test_valid_form_gives_decimal_and_dates():
    form = mkp_form()
    assert form.is_valid(), form.errors
    assert form.cleaned_data["amount"] == Decimal("12.95")
    assert form.cleaned_data["issue_date"] == date(2026, 11, 1)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("issue_date", "2024-04-31", "2024-04-31 is not a real date."),
        ("issue_date", "31-04-2024", "Enter the date as YYYY-MM-DD"),
        ("amount", "12,95", "Use a dot for decimals: 12.95 instead of 12,95."),
        ("amount", "-5.00", "The amount cannot be negative."),
        ("amount", "12.955", "at most two decimals"),
        ("due_date", "2026-10-01", "The due date cannot be before the issue date."),
    ],
)
def test_bad_input_is_named(field, value, message):
    form = mkp_form(**{field: value})
    assert not form.is_valid()
    assert message in " ".join(form.errors[field])


def test_a_file_named_pdf_that_is_not_a_pdf_is_refused():
    form = mkp_form(pdf=pdf_upload("invoice.pdf", b"GIF89a not a pdf at all"))
    assert not form.is_valid()
    assert form.errors["pdf"] == ["invoice.pdf is not a PDF file."]


def test_a_damaged_pdf_is_refused():
    form = mkp_form(pdf=pdf_upload("broken.pdf", b"%PDF-1.4\nthis is not really a pdf"))
    assert not form.is_valid()
    assert "damaged" in form.errors["pdf"][0]


def test_an_empty_file_is_refused():
    form = mkp_form(pdf=pdf_upload("empty.pdf", b""))
    assert not form.is_valid()
    assert "empty" in form.errors["pdf"][0]


def test_an_oversized_file_is_refused(settings):
    settings.MAX_PDF_BYTES = 1000
    form = mkp_form(
        pdf=pdf_upload(
            "big.pdf",
            make_invoice_pdf(number="B", amount=Decimal(1), issue_date=date(2026, 1, 1))
            + b"\n%"
            + b"x" * 2000,
        )
    )
    assert not form.is_valid()
    assert "at most 5 MB" in form.errors["pdf"][0]


def test_a_number_already_used_is_refused():
    InvoiceFactory(number="2026-100")
    form = mkp_form()
    assert not form.is_valid()
    assert form.errors["number"] == ["Invoice number 2026-100 is already used."]


def test_paid_at_in_the_future_is_refused():
    tomorrow = timezone.localdate() + timedelta(days=1)
    form = mkp_form(paid_at_0=tomorrow.isoformat(), paid_at_1="10:00:00")
    assert not form.is_valid()
    assert "future" in form.errors["paid_at"][0]


def test_qonto_upload_lists_every_bad_file():
    good = pdf_upload("good.pdf")
    bad = pdf_upload("notes.pdf", b"hello")
    form = QontoUploadForm({}, MultiValueDict({"pdfs": [good, bad]}))
    assert not form.is_valid()
    assert "notes.pdf is not a PDF file." in form.errors["pdfs"]


def test_mark_paid_form_refuses_a_future_qonto_date():
    tomorrow = timezone.localdate() + timedelta(days=1)
    form = MarkPaidForm(
        {"paid_at_0": tomorrow.isoformat(), "paid_at_1": "00:00:01"}, providers={Provider.QONTO}
    )
    assert not form.is_valid()
    assert "future" in form.errors["paid_at"][0]

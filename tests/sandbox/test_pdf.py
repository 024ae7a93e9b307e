from datetime import date
from decimal import Decimal

from integrations.sandbox.pdf import make_invoice_pdf, read_invoice_pdf


def test_written_pdf_reads_back():
    data = make_invoice_pdf(
        number="2026-(42)\\b",
        amount=Decimal("1234.5"),
        issue_date=date(2026, 11, 1),
        due_date=date(2026, 12, 1),
        customer="Électricité Dupont SARL",
    )
    assert data.startswith(b"%PDF-1.4")
    assert data.rstrip().endswith(b"%%EOF")
    fields = read_invoice_pdf(data)
    assert fields["number"] == "2026-(42)\\b"
    assert fields["amount"] == Decimal("1234.50")
    assert fields["issue_date"] == date(2026, 11, 1)
    assert fields["due_date"] == date(2026, 12, 1)
    assert fields["customer"] == "Électricité Dupont SARL"
    assert "Total: EUR 1234.50" in fields["text"]


def test_optional_lines_are_left_out():
    fields = read_invoice_pdf(
        make_invoice_pdf(number="X1", amount=Decimal("0"), issue_date=date(2026, 1, 31))
    )
    assert fields["due_date"] is None
    assert fields["customer"] is None
    assert fields["amount"] == Decimal("0.00")


def test_unreadable_file_gives_no_fields():
    fields = read_invoice_pdf(b"%PDF-1.4 this is not really a pdf")
    assert fields == {
        "number": None,
        "customer": None,
        "amount": None,
        "issue_date": None,
        "due_date": None,
        "text": "",
    }

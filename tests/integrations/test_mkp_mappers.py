from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from integrations.errors import ProviderBadResponse
from integrations.mkp import mappers
from integrations.types import STATUS_OPEN, STATUS_PAID, RemoteCustomer, RemoteInvoice


def invoice_payload(**overrides):
    """Shaped like the provider's Get Customer Invoice example, with real dates."""
    payload = {
        "id": "inv_abc12345def678",
        "customerId": "cst_abc12345def678",
        "invoiceNumber": "2026-001",
        "issuedAt": "2026-04-29",
        "dueAt": "2026-05-28",
        "currency": "EUR",
        "amount": "12.95",
        "paidAt": "2026-05-28T21:00:00+02:00",
        "createdAt": "2026-04-29T21:00:00+02:00",
        "links": {
            "customer": {
                "href": "https://api.mijnklantportaal.nl/v1/customers/cst_abc12345def678",
                "type": "application/json",
            },
            "onlinePaymentLink": {
                "href": "https://portal.mijnklantportaal.nl/public-invoice/inv_abc123/pay/123-abc",
                "type": "text/html",
            },
        },
    }
    payload.update(overrides)
    return payload


# Invoices ----------------------------------------------------------------------------------------
def test_invoice_from_payload_maps_every_documented_field():
    payload = invoice_payload()

    invoice = mappers.invoice_from_payload(payload)

    assert invoice == RemoteInvoice(
        remote_id="inv_abc12345def678",
        number="2026-001",
        status=STATUS_PAID,
        customer_remote_id="cst_abc12345def678",
        issue_date=date(2026, 4, 29),
        due_date=date(2026, 5, 28),
        amount=Decimal("12.95"),
        currency="EUR",
        paid_at=datetime(2026, 5, 28, 19, 0, tzinfo=UTC),
        remote_created_at=datetime(2026, 4, 29, 19, 0, tzinfo=UTC),
        payment_link="https://portal.mijnklantportaal.nl/public-invoice/inv_abc123/pay/123-abc",
    )
    assert type(invoice.amount) is Decimal
    assert invoice.paid_at.tzinfo is not None
    assert invoice.raw is payload


def test_invoice_without_paid_at_is_open():
    invoice = mappers.invoice_from_payload(invoice_payload(paidAt=None))

    assert invoice.status == STATUS_OPEN
    assert invoice.paid_at is None


def test_invoice_tolerates_missing_optional_keys():
    # The list and create examples carry no dueAt and only the customer link.
    invoice = mappers.invoice_from_payload(
        {
            "id": "inv_1",
            "invoiceNumber": "2026-002",
            "links": {"customer": {"href": "https://api.mijnklantportaal.nl/v1/customers/cst_1"}},
        }
    )

    assert invoice.remote_id == "inv_1"
    assert invoice.number == "2026-002"
    assert invoice.status == STATUS_OPEN
    assert invoice.due_date is None
    assert invoice.issue_date is None
    assert invoice.amount is None
    assert invoice.currency == "EUR"
    assert invoice.payment_link == ""
    assert invoice.customer_remote_id == ""


def test_invoice_with_null_due_date():
    assert mappers.invoice_from_payload(invoice_payload(dueAt=None)).due_date is None


@pytest.mark.parametrize(
    "payload", [None, [], "inv_1", 42, {}, {"id": ""}, {"id": None}, {"invoiceNumber": "1"}]
)
def test_invoice_that_is_not_an_object_or_has_no_id_is_a_bad_response(payload):
    with pytest.raises(ProviderBadResponse) as exc_info:
        mappers.invoice_from_payload(payload)

    assert exc_info.value.provider == "mkp"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("issuedAt", "2024-04-31"),  # the impossible date of the provider's own examples
        ("dueAt", "29-04-2026"),
        ("amount", "12,95"),
        ("amount", "NaN"),
        ("paidAt", "2026-05-28 21:00:00"),  # no offset: not ATOM
        ("createdAt", "yesterday"),
    ],
)
def test_unreadable_field_is_a_bad_response_naming_the_invoice(field, value):
    with pytest.raises(ProviderBadResponse) as exc_info:
        mappers.invoice_from_payload(invoice_payload(**{field: value}))

    assert "inv_abc12345def678" in str(exc_info.value)
    assert field in str(exc_info.value)


# Customers ---------------------------------------------------------------------------------------
def test_customer_from_payload():
    payload = {
        "id": "cst_abc12345def678",
        "companyName": "Test Company BV",
        "address": "Teststreet 123",
        "zipCode": "1234AB",
        "city": "Amsterdam",
        "countryCode": "NL",
        "primaryEmail": "john.doe@test.com",
        "phone": None,
        "integration": "acumulus",
        "integrationId": "123456789",
        "customerGroups": ["cug_123abc567"],
        "createdAt": "2026-04-28T21:00:00+02:00",
    }

    customer = mappers.customer_from_payload(payload)

    assert customer == RemoteCustomer(
        remote_id="cst_abc12345def678",
        name="Test Company BV",
        email="john.doe@test.com",
        remote_created_at=datetime(2026, 4, 28, 19, 0, tzinfo=UTC),
    )
    assert customer.raw is payload


def test_customer_without_id_is_a_bad_response():
    with pytest.raises(ProviderBadResponse):
        mappers.customer_from_payload({"companyName": "Test Company BV"})


# Formats we send ---------------------------------------------------------------------------------
def test_format_date():
    assert mappers.format_date(date(2026, 2, 3)) == "2026-02-03"


def test_format_date_refuses_a_datetime():
    with pytest.raises(TypeError):
        mappers.format_date(datetime(2026, 2, 3, 23, 30, tzinfo=UTC))


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (Decimal("12.95"), "12.95"),
        (Decimal("12.950"), "12.95"),
        (Decimal("12.9"), "12.90"),
        (Decimal("0"), "0.00"),
        (Decimal("-0"), "0.00"),
        (Decimal("1E+3"), "1000.00"),
        (Decimal("1234567.89"), "1234567.89"),
    ],
)
def test_format_amount(amount, expected):
    assert mappers.format_amount(amount) == expected


@pytest.mark.parametrize(
    "amount", [Decimal("-0.01"), Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("12.955")]
)
def test_format_amount_refuses_negative_not_a_number_and_fractions_of_a_cent(amount):
    with pytest.raises(ValueError):
        mappers.format_amount(amount)


def test_format_amount_refuses_a_float():
    with pytest.raises(TypeError):
        mappers.format_amount(12.95)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 1, 15, 10, 0, tzinfo=UTC), "2026-01-15 11:00:00"),  # CET, UTC+1
        (datetime(2026, 7, 1, 10, 0, tzinfo=UTC), "2026-07-01 12:00:00"),  # CEST, UTC+2
        (datetime(2026, 6, 30, 22, 30, tzinfo=UTC), "2026-07-01 00:30:00"),  # the day changes
        (datetime(2026, 3, 29, 1, 30, tzinfo=UTC), "2026-03-29 03:30:00"),  # just after the spring switch
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "2026-10-25 02:30:00"),  # just after the autumn switch
        (
            datetime(2026, 1, 15, 16, 0, 59, 999999, tzinfo=timezone(timedelta(hours=5))),
            "2026-01-15 12:00:59",
        ),
    ],
)
def test_format_paid_at_is_amsterdam_local_time(moment, expected):
    assert mappers.format_paid_at(moment) == expected


def test_format_paid_at_refuses_a_naive_datetime():
    with pytest.raises(ValueError):
        mappers.format_paid_at(datetime(2026, 7, 1, 12, 0))


# Formats we read ---------------------------------------------------------------------------------
def test_parse_date():
    assert mappers.parse_date("2026-04-29") == date(2026, 4, 29)


@pytest.mark.parametrize("value", ["2024-04-31", "20260429", "2026-04-29T00:00:00+02:00", "", None])
def test_parse_date_refuses_impossible_and_other_formats(value):
    with pytest.raises(ValueError):
        mappers.parse_date(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-05-28T21:00:00+02:00", datetime(2026, 5, 28, 19, 0, tzinfo=UTC)),
        ("2026-01-28T21:00:00+01:00", datetime(2026, 1, 28, 20, 0, tzinfo=UTC)),
        ("2026-01-28T21:00:00Z", datetime(2026, 1, 28, 21, 0, tzinfo=UTC)),
    ],
)
def test_parse_datetime_returns_aware_utc(value, expected):
    parsed = mappers.parse_datetime(value)

    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", ["2026-05-28T21:00:00", "2026-05-28", "2026-05-28 21:00:00", None])
def test_parse_datetime_refuses_values_without_offset(value):
    with pytest.raises(ValueError):
        mappers.parse_datetime(value)


# Pages -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.mijnklantportaal.nl/v1/customer-invoices?page=2,", 2),  # as printed in the docs
        ("https://api.mijnklantportaal.nl/v1/customer-invoices?page=3", 3),
        ("https://api.mijnklantportaal.nl/v1/customer-invoices?foo=bar&page=12", 12),
        ("https://api.mijnklantportaal.nl/v1/customer-invoices", None),
        ("https://api.mijnklantportaal.nl/v1/customer-invoices?page=abc", None),
        ("https://api.mijnklantportaal.nl/v1/customer-invoices?page=0", None),
        ("", None),
        (None, None),
    ],
)
def test_page_number_from_url(url, expected):
    assert mappers.page_number_from_url(url) == expected


def envelope(items, *, page=1, next_page_url=None):
    return {
        "current_page": page,
        "data": items,
        "first_page_url": "https://api.mijnklantportaal.nl/v1/customer-invoices?page=1",
        "from": 1,
        "next_page_url": next_page_url,
        "path": "https://api.mijnklantportaal.nl/v1/customer-invoices",
        "per_page": 15,
        "prev_page_url": None,
        "to": len(items),
    }


def test_page_from_payload():
    data = envelope(
        [invoice_payload(id="inv_1"), invoice_payload(id="inv_2")],
        next_page_url="https://api.mijnklantportaal.nl/v1/customer-invoices?page=2,",
    )

    page = mappers.page_from_payload(data, mappers.invoice_from_payload, requested_page=1)

    assert [invoice.remote_id for invoice in page.items] == ["inv_1", "inv_2"]
    assert page.number == 1
    assert page.next_page == 2


def test_last_page_has_no_next_page():
    page = mappers.page_from_payload(envelope([], page=4), mappers.invoice_from_payload, requested_page=4)

    assert page.items == []
    assert page.next_page is None


@pytest.mark.parametrize(
    "data",
    [
        {"current_page": 1},
        {"current_page": 1, "data": {"id": "inv_1"}},
        [],
        envelope([], next_page_url="https://api.mijnklantportaal.nl/v1/customer-invoices?cursor=x"),
        envelope([], next_page_url="https://api.mijnklantportaal.nl/v1/customer-invoices?page=1"),
        envelope([], page=3),
    ],
    ids=["no-data", "data-not-a-list", "not-an-object", "unreadable-next", "next-not-later", "wrong-page"],
)
def test_page_that_would_end_or_loop_a_scan_is_a_bad_response(data):
    with pytest.raises(ProviderBadResponse):
        mappers.page_from_payload(data, mappers.invoice_from_payload, requested_page=1)


def test_pdf_link_from_payload():
    link, expires_at = mappers.pdf_link_from_payload(
        {
            "link": "https://files.mijnklantportaal.nl/inv_1.pdf?sig=abc",
            "expiresAt": "2026-04-29T21:00:00+02:00",
        }
    )

    assert link == "https://files.mijnklantportaal.nl/inv_1.pdf?sig=abc"
    assert expires_at == datetime(2026, 4, 29, 19, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "data",
    [
        {"expiresAt": "2026-04-29T21:00:00+02:00"},
        {"link": "file:///etc/passwd", "expiresAt": "2026-04-29T21:00:00+02:00"},
        {"link": "https://files.mijnklantportaal.nl/inv_1.pdf"},
        ["https://files.mijnklantportaal.nl/inv_1.pdf"],
    ],
)
def test_pdf_link_without_link_or_expiry_is_a_bad_response(data):
    with pytest.raises(ProviderBadResponse):
        mappers.pdf_link_from_payload(data)

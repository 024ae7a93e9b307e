import copy
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from integrations import errors
from integrations.qonto import mappers
from integrations.types import STATUS_CANCELED, STATUS_DRAFT, STATUS_OPEN, STATUS_PAID, PdfFile

PARIS = ZoneInfo("Europe/Paris")
PDF = b"%PDF-1.7\n%%EOF\n"
MB = 1024 * 1024

# Shaped like the example of Qonto's "Mark a client invoice as paid" page (abridged).
INVOICE = {
    "id": "4d5418bb-bd0d-4df4-865c-c07afab8bb48",
    "organization_id": "4d5418bb-bd0d-4df4-865c-c07afab8bb48",
    "number": "INV001",
    "status": "paid",
    "invoice_url": "https://pay.qonto.com/invoices/00000000-0000-0000-0000-000000000000",
    "currency": "EUR",
    "total_amount": {"value": "12.52", "currency": "EUR"},
    "total_amount_cents": 1252,
    "vat_amount": {"value": "0.51", "currency": "EUR"},
    "vat_amount_cents": 51,
    "issue_date": "2022-03-01",
    "due_date": "2022-03-31",
    "created_at": "2022-03-04T17:58:30+02:00",
    "updated_at": "2022-03-05T08:00:00.123456Z",
    "paid_at": "2022-03-04T17:58:30+02:00",
    "items": [
        {
            "title": "Plastic tables",
            "quantity": "1.5",
            "unit_price": {"value": "10.0", "currency": "EUR"},
            "vat_rate": "0.1",
        }
    ],
    "client": {
        "id": "33v418bb-bd0d-4df4-865c-c07afab8bb48",
        "name": "McDonald's",
        "first_name": "Jane",
        "last_name": "Doe",
        "type": "company",
        "email": "jane@example.com",
    },
    "attachment_id": "5e5418bb-bd0d-4df4-865c-c07afab8bb48",
    "einvoicing_lifecycle_events": [{"status_code": 200, "timestamp": "2024-12-04T11:05:16.4497Z"}],
}


def invoice(**changes):
    payload = copy.deepcopy(INVOICE)
    payload.update(changes)
    return payload


# Invoices --------------------------------------------------------------------------------------
def test_invoice_from_the_documented_payload():
    result = mappers.invoice_from_payload({"client_invoice": invoice()})

    assert result.remote_id == "4d5418bb-bd0d-4df4-865c-c07afab8bb48"
    assert result.number == "INV001"
    assert result.status == STATUS_PAID
    assert result.customer_remote_id == "33v418bb-bd0d-4df4-865c-c07afab8bb48"
    assert result.customer_name == "McDonald's"
    assert result.issue_date == date(2022, 3, 1)
    assert result.due_date == date(2022, 3, 31)
    assert result.amount == Decimal("12.52")
    assert isinstance(result.amount, Decimal)
    assert result.vat_amount == Decimal("0.51")
    assert result.currency == "EUR"
    assert result.paid_at == datetime(2022, 3, 4, 15, 58, 30, tzinfo=UTC)
    assert result.paid_at.tzinfo is UTC
    assert result.remote_created_at == datetime(2022, 3, 4, 15, 58, 30, tzinfo=UTC)
    assert result.remote_updated_at == datetime(2022, 3, 5, 8, 0, 0, 123456, tzinfo=UTC)
    assert result.payment_link == "https://pay.qonto.com/invoices/00000000-0000-0000-0000-000000000000"
    assert result.attachment_id == "5e5418bb-bd0d-4df4-865c-c07afab8bb48"
    assert result.raw == invoice()


def test_bare_and_wrapped_payloads_give_the_same_invoice():
    assert mappers.invoice_from_payload(invoice()) == mappers.invoice_from_payload(
        {"client_invoice": invoice()}
    )


@pytest.mark.parametrize(
    ("qonto", "ours"),
    [
        ("draft", STATUS_DRAFT),
        ("unpaid", STATUS_OPEN),
        ("paid", STATUS_PAID),
        ("canceled", STATUS_CANCELED),
        ("Pending_Review", "pending_review"),  # unknown: kept, lower-cased, for the domain to decide
    ],
)
def test_status_mapping(qonto, ours):
    assert mappers.invoice_from_payload(invoice(status=qonto)).status == ours


def test_legacy_invoice_number_is_a_fallback():
    payload = invoice(invoice_number="F-2022-7")
    del payload["number"]
    assert mappers.invoice_from_payload(payload).number == "F-2022-7"
    assert mappers.invoice_from_payload(invoice(number="INV001", invoice_number="OLD")).number == "INV001"


def test_individual_client_is_named_first_last():
    client = {"id": "c1", "name": None, "first_name": "Jane", "last_name": "Doe", "type": "individual"}
    assert mappers.invoice_from_payload(invoice(client=client)).customer_name == "Jane Doe"


def test_a_lean_draft_does_not_crash():
    payload = {
        "id": "d1",
        "status": "draft",
        "number": None,
        "client": None,
        "total_amount": None,
        "vat_amount": None,
        "items": [None],
        "issue_date": None,
        "due_date": None,
        "paid_at": None,
        "invoice_url": None,
        "attachment_id": None,
    }
    result = mappers.invoice_from_payload(payload)

    assert result.remote_id == "d1"
    assert result.number == ""
    assert result.status == STATUS_DRAFT
    assert result.customer_remote_id == ""
    assert result.amount is None
    assert result.vat_amount is None
    assert result.currency == "EUR"
    assert result.paid_at is None
    assert result.remote_updated_at is None
    assert result.payment_link == ""
    assert result.attachment_id == ""


def test_amount_from_cents_when_the_value_is_missing():
    payload = invoice(total_amount=None, total_amount_cents=1999)
    assert mappers.invoice_from_payload(payload).amount == Decimal("19.99")


def test_amount_without_cents_is_taken_as_is():
    payload = invoice(total_amount={"value": "300.50", "currency": "EUR"})
    del payload["total_amount_cents"]
    assert mappers.invoice_from_payload(payload).amount == Decimal("300.50")


def test_value_and_cents_that_disagree_are_refused_naming_the_invoice():
    with pytest.raises(errors.ProviderBadResponse) as excinfo:
        mappers.invoice_from_payload(invoice(total_amount_cents=1253))
    message = str(excinfo.value)
    assert "INV001" in message
    assert "4d5418bb-bd0d-4df4-865c-c07afab8bb48" in message
    assert "total_amount" in message
    assert excinfo.value.provider == "qonto"


def test_vat_cents_are_cross_checked_too():
    with pytest.raises(errors.ProviderBadResponse, match="vat_amount"):
        mappers.invoice_from_payload(invoice(vat_amount_cents=50))


@pytest.mark.parametrize("value", ["abc", "NaN", "Infinity", True])
def test_an_amount_that_is_not_a_number_is_refused(value):
    with pytest.raises(errors.ProviderBadResponse, match="INV001"):
        mappers.invoice_from_payload(invoice(total_amount={"value": value}, total_amount_cents=None))


def test_an_impossible_date_is_refused():
    with pytest.raises(errors.ProviderBadResponse, match="due_date"):
        mappers.invoice_from_payload(invoice(due_date="2024-04-31"))


def test_a_datetime_without_offset_is_refused():
    with pytest.raises(errors.ProviderBadResponse, match="paid_at"):
        mappers.invoice_from_payload(invoice(paid_at="2022-03-04T17:58:30"))


@pytest.mark.parametrize("payload", [{"status": "paid"}, {"id": "x"}, {"client_invoice": None}, []])
def test_an_invoice_without_id_or_status_is_refused(payload):
    with pytest.raises(errors.ProviderBadResponse):
        mappers.invoice_from_payload(payload)


def test_currency_falls_back_to_the_amount_currency():
    payload = invoice(currency=None)
    assert mappers.invoice_from_payload(payload).currency == "EUR"


# Clients ---------------------------------------------------------------------------------------
def test_customer_from_a_wrapped_company():
    client = {
        "id": "c-1",
        "name": "Pied Piper",
        "email": "billing@piedpiper.example",
        "created_at": "2025-01-27T22:05:07.000Z",
        "updated_at": "2025-02-01T10:00:00+01:00",
    }
    result = mappers.customer_from_payload({"client": client})

    assert result.remote_id == "c-1"
    assert result.name == "Pied Piper"
    assert result.email == "billing@piedpiper.example"
    assert result.remote_created_at == datetime(2025, 1, 27, 22, 5, 7, tzinfo=UTC)
    assert result.remote_updated_at == datetime(2025, 2, 1, 9, 0, tzinfo=UTC)
    assert result.raw == client


def test_customer_bare_individual_without_optional_fields():
    result = mappers.customer_from_payload({"id": "c-2", "first_name": "Jane", "last_name": "Doe"})
    assert (result.name, result.email, result.remote_created_at) == ("Jane Doe", "", None)


def test_customer_without_id_is_refused():
    with pytest.raises(errors.ProviderBadResponse):
        mappers.customer_from_payload({"client": {"name": "x"}})


# Scalars ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-12-04T11:05:16.4497Z", datetime(2024, 12, 4, 11, 5, 16, 449700, tzinfo=UTC)),
        ("2022-03-04T17:58:30+02:00", datetime(2022, 3, 4, 15, 58, 30, tzinfo=UTC)),
        ("2025-01-27T22:05:07.000Z", datetime(2025, 1, 27, 22, 5, 7, tzinfo=UTC)),
        (None, None),
        ("", None),
    ],
)
def test_parse_datetime(text, expected):
    assert mappers.parse_datetime(text) == expected


@pytest.mark.parametrize("text", ["2022-03-04T17:58:30", "2022-03-04", "yesterday"])
def test_parse_datetime_refuses_ambiguous_text(text):
    with pytest.raises(ValueError):
        mappers.parse_datetime(text)


def test_parse_date():
    assert mappers.parse_date("2022-03-01") == date(2022, 3, 1)
    assert mappers.parse_date(None) is None
    for text in ("2024-04-31", "20240401", "2024-W01-1", "2024-04-01T00:00:00Z"):
        with pytest.raises(ValueError):
            mappers.parse_date(text)


def test_format_paid_on():
    assert mappers.format_paid_on(date(2024, 12, 5)) == "2024-12-05"
    with pytest.raises(TypeError):
        mappers.format_paid_on(datetime(2024, 12, 5, tzinfo=UTC))


def test_format_filter_datetime_is_utc_with_z():
    moment = datetime(2026, 11, 22, 0, 30, 15, 999999, tzinfo=PARIS)
    assert mappers.format_filter_datetime(moment) == "2026-11-21T23:30:15Z"
    with pytest.raises(ValueError):
        mappers.format_filter_datetime(datetime(2026, 11, 22))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Already the 23rd in Paris, still the 22nd in UTC: Paris decides.
        (datetime(2026, 11, 22, 23, 30, tzinfo=UTC), date(2026, 11, 23)),
        (datetime(2026, 11, 22, 22, 59, 59, tzinfo=UTC), date(2026, 11, 22)),
        (datetime(2026, 11, 22, 0, 30, tzinfo=PARIS), date(2026, 11, 22)),
        (datetime(2026, 11, 22, 0, 30, tzinfo=timezone(timedelta(hours=1))), date(2026, 11, 22)),
        # The last second of the Paris day, already the next day in UTC+3.
        (datetime(2026, 11, 22, 23, 59, 59, tzinfo=PARIS), date(2026, 11, 22)),
        # Summer time: Paris is UTC+2, so 22:30 UTC is already tomorrow there.
        (datetime(2026, 7, 14, 22, 30, tzinfo=UTC), date(2026, 7, 15)),
        (datetime(2026, 7, 14, 21, 59, tzinfo=UTC), date(2026, 7, 14)),
        (datetime(2026, 7, 15, 1, 59, tzinfo=PARIS), date(2026, 7, 15)),
        # Both agree at midday.
        (datetime(2026, 11, 22, 12, 0, tzinfo=UTC), date(2026, 11, 22)),
    ],
)
def test_latest_allowed_paid_on_is_today_in_paris(now, expected):
    assert mappers.latest_allowed_paid_on(now) == expected


def test_latest_allowed_paid_on_needs_an_aware_now():
    with pytest.raises(ValueError):
        mappers.latest_allowed_paid_on(datetime(2026, 11, 22, 12, 0))


def test_status_filter_accepts_ours_and_qontos():
    assert mappers.format_status_filter(["open", "paid"]) == "unpaid,paid"
    assert mappers.format_status_filter(["unpaid", "open", "draft", "canceled"]) == "unpaid,draft,canceled"
    with pytest.raises(ValueError):
        mappers.format_status_filter(["overdue"])


# Pages, imports, attachments, errors -----------------------------------------------------------
@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"current_page": 1, "next_page": 2, "total_pages": 3}, 2),
        ({"current_page": 1, "next_page": None}, None),
        ({"current_page": 1, "next_page": 0}, None),
        ({}, None),
        (None, None),
    ],
)
def test_next_page(meta, expected):
    assert mappers.next_page_from_meta({"meta": meta}, 1) == expected


@pytest.mark.parametrize("meta", [{"current_page": 1, "next_page": 1}, {"current_page": 2, "next_page": 3}])
def test_pagination_that_would_loop_or_was_ignored_is_refused(meta):
    with pytest.raises(errors.ProviderBadResponse):
        mappers.next_page_from_meta({"meta": meta}, 1)


def test_invoices_page_skips_null_entries():
    page = mappers.invoices_page_from_payload(
        {"client_invoices": [invoice(), None], "meta": {"current_page": 1, "next_page": None}}, 1
    )
    assert [item.number for item in page.items] == ["INV001"]
    assert (page.number, page.next_page) == (1, None)


def test_a_list_without_its_key_is_refused():
    with pytest.raises(errors.ProviderBadResponse):
        mappers.invoices_page_from_payload({"meta": {}}, 1)


def test_imported_invoices():
    data = {
        "client_invoices": [
            {"invoice_id": "019c688e-1", "file_name": "invoice1.pdf"},
            {"invoice_id": "019c688e-2", "file_name": "invoice2.pdf"},
        ]
    }
    assert mappers.imported_invoices_from_payload(data) == [
        ("invoice1.pdf", "019c688e-1"),
        ("invoice2.pdf", "019c688e-2"),
    ]
    with pytest.raises(errors.ProviderBadResponse):
        mappers.imported_invoices_from_payload({"client_invoices": [{"file_name": "a.pdf"}]})


def test_attachment_url():
    url = "https://qonto-attachments.example/a.pdf?X-Amz-Signature=abc&X-Amz-Expires=1800"
    assert mappers.attachment_url_from_payload({"attachment": {"id": "a", "url": url}}) == url
    with pytest.raises(errors.ProviderBadResponse):
        mappers.attachment_url_from_payload({"attachment": {"id": "a"}})


def test_error_from_json_api_body():
    body = {
        "errors": [
            {"code": "invalid", "detail": "must be EUR", "source": {"pointer": "/data/attributes/currency"}},
            {
                "code": "not_in_list",
                "detail": "status must be one of: draft",
                "source": {"parameter": "status"},
            },
        ],
        "trace_id": "6f1a2b3c",
    }
    message, trace_id, details = mappers.error_from_payload(body)
    assert message == "currency: must be EUR; status must be one of: draft"
    assert trace_id == "6f1a2b3c"
    assert details == body["errors"]


def test_error_from_flat_and_unknown_bodies():
    assert mappers.error_from_payload({"code": "sca_not_enrolled", "message": "Enrol first"}) == (
        "Enrol first",
        "",
        {"code": "sca_not_enrolled", "message": "Enrol first"},
    )
    assert mappers.error_from_payload({"code": "forbidden"})[0] == "forbidden"
    assert mappers.error_from_payload(None) == ("", "", None)
    assert mappers.error_from_payload({"trace_id": "t"}) == ("", "t", None)


# Import parts ---------------------------------------------------------------------------------
def test_import_parts_repeat_the_field_and_detect_the_type():
    parts = mappers.import_parts(
        [
            PdfFile("a.pdf", PDF),
            PdfFile("b.png", b"\x89PNG\r\n\x1a\nrest"),
            PdfFile("c.jpg", b"\xff\xd8\xff\xe0"),
        ]
    )
    assert [name for name, _ in parts] == ["client_invoices"] * 3
    assert [part[1][2] for part in parts] == ["application/pdf", "image/png", "image/jpeg"]
    assert parts[0][1][:2] == ("a.pdf", PDF)


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ([], "at least one"),
        ([PdfFile(f"{n}.pdf", PDF) for n in range(6)], "at most 5 files"),
        ([PdfFile("big.pdf", PDF + b"0" * (5 * MB))], "big.pdf is 5.1 MB"),
        ([PdfFile("empty.pdf", b"")], "empty.pdf is empty"),
        ([PdfFile("notes.docx", b"PK\x03\x04")], "notes.docx is not a PDF"),
        ([PdfFile(f"{n}.pdf", PDF + b"0" * (4 * MB)) for n in range(4)], "at most 15 MB"),
    ],
)
def test_import_parts_refuse_before_sending(files, fragment):
    with pytest.raises(errors.ProviderValidationError, match=fragment):
        mappers.import_parts(files)


def test_import_parts_accept_the_limits_exactly():
    exactly_five = PDF + b"0" * (5 * MB - len(PDF))
    files = [PdfFile("a.pdf", exactly_five), PdfFile("b.pdf", exactly_five), PdfFile("c.pdf", exactly_five)]
    assert len(mappers.import_parts(files)) == 3

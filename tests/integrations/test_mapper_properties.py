"""Whatever JSON a provider sends, both mappers answer with a value the mirror can hold or a typed
error: arbitrary JSON, and documented payloads with one hostile field."""

from __future__ import annotations

import copy
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations import records
from integrations.errors import ProviderBadResponse, ProviderRecordError
from integrations.mkp import mappers as mkp
from integrations.qonto import mappers as qonto
from integrations.types import Page, RemoteCustomer, RemoteInvoice
from tests.integrations.test_mkp_mappers import invoice_payload as mkp_invoice
from tests.integrations.test_qonto_mappers import INVOICE as QONTO_INVOICE

# Deterministic for CI: the same examples every run, none remembered between runs.
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)

MKP_CUSTOMER = {
    "id": "cst_abc12345def678",
    "companyName": "Test Company BV",
    "primaryEmail": "john.doe@test.com",
    "createdAt": "2024-04-28T21:00:00+02:00",
}
QONTO_CLIENT = {
    "id": "8b6c1d0e-5f2a-4c3b-9d7e-1a2b3c4d5e6f",
    "name": "Client SAS",
    "email": "client@example.com",
    "created_at": "2022-03-04T17:58:30+02:00",
    "updated_at": "2022-03-05T08:00:00Z",
}

ITEM_MAPPERS = {
    "mkp invoice": (mkp.invoice_from_payload, mkp_invoice()),
    "mkp customer": (mkp.customer_from_payload, MKP_CUSTOMER),
    "qonto invoice": (qonto.invoice_from_payload, QONTO_INVOICE),
    "qonto client": (qonto.customer_from_payload, QONTO_CLIENT),
}


def mkp_page(data):
    return mkp.page_from_payload(data, mkp.invoice_from_payload, requested_page=1)


def mkp_customers_page(data):
    return mkp.page_from_payload(data, mkp.customer_from_payload, requested_page=1)


PAGE_MAPPERS = {
    "mkp invoices": mkp_page,
    "mkp customers": mkp_customers_page,
    "qonto invoices": lambda data: qonto.invoices_page_from_payload(data, 1),
    "qonto clients": lambda data: qonto.customers_page_from_payload(data, 1),
}

# Values a provider could send that broke a sync: too long, too large, not a number, out of range.
HOSTILE = [
    "x" * 300,
    "1E+20",
    "NaN",
    "-Infinity",
    "1E+1000002",
    1e300,
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:30:00-01:00",
    "2024-04-31",
    "2024-01-01",
    "12.955",
    "12.950",
    {"id": "inv_abc"},
    ["inv_abc"],
    12345678901234567890123,
    True,
    "",
    "a\x00b",
    "javascript:alert(1)",
    "EURO",
]


def assert_holdable(value) -> None:
    """What a mapper returns fits the mirror's columns (see integrations/records.py)."""
    assert isinstance(value, RemoteInvoice | RemoteCustomer)
    assert isinstance(value.remote_id, str) and 0 < len(value.remote_id) <= records.ID_LENGTH
    for name in ("number", "customer_name", "name", "email"):
        text = getattr(value, name, "")
        assert isinstance(text, str) and len(text) <= records.TEXT_LENGTH and "\x00" not in text
    for name in ("customer_remote_id", "attachment_id"):
        assert len(getattr(value, name, "")) <= records.ID_LENGTH
    for name in ("amount", "vat_amount"):
        amount = getattr(value, name, None)
        assert amount is None or (
            isinstance(amount, Decimal)
            and amount.is_finite()
            and abs(amount) < 10**12
            and amount == amount.quantize(Decimal("0.01"))
        )
    for name in ("issue_date", "due_date"):
        assert getattr(value, name, None) is None or type(getattr(value, name)) is date
    for name in ("paid_at", "remote_created_at", "remote_updated_at"):
        moment = getattr(value, name, None)
        assert moment is None or (
            isinstance(moment, datetime) and records.EARLIEST <= moment <= records.LATEST
        )
    if isinstance(value, RemoteInvoice):
        assert len(value.currency) == 3 and value.currency.isalpha()
        assert len(value.payment_link) <= records.URL_LENGTH


def map_or_typed_error(mapper, data):
    try:
        return mapper(data)
    except ProviderBadResponse as exc:
        return exc


def assert_item_outcome(mapper, data) -> None:
    outcome = map_or_typed_error(mapper, data)
    if isinstance(outcome, ProviderBadResponse):
        # A record is refused with a typed error that names it, so that it can be quarantined.
        assert isinstance(outcome, ProviderRecordError)
        assert isinstance(outcome.remote_id, str) and 0 < len(outcome.remote_id) <= records.KEY_LENGTH
    else:
        assert_holdable(outcome)


def assert_page_outcome(mapper, data) -> None:
    outcome = map_or_typed_error(mapper, data)
    if isinstance(outcome, ProviderBadResponse):
        assert not isinstance(outcome, ProviderRecordError), "a bad record must not fail its page"
        return
    assert isinstance(outcome, Page)
    for item in outcome.items:
        assert_holdable(item)
    assert all(isinstance(problem, ProviderRecordError) for problem in outcome.problems)


@pytest.mark.parametrize("name", ITEM_MAPPERS)
@PROPERTY
@given(data=json_values)
def test_an_item_mapper_given_any_json_maps_it_or_raises_a_typed_error(name, data):
    assert_item_outcome(ITEM_MAPPERS[name][0], data)


@pytest.mark.parametrize("name", ITEM_MAPPERS)
@PROPERTY
@given(st.data())
def test_an_item_mapper_given_one_hostile_field_maps_it_or_raises_a_typed_error(name, data):
    mapper, valid = ITEM_MAPPERS[name]
    payload = copy.deepcopy(valid)
    key = data.draw(st.sampled_from(sorted(payload)), label="field")
    payload[key] = data.draw(st.sampled_from(HOSTILE) | json_values, label="value")
    assert_item_outcome(mapper, payload)


@pytest.mark.parametrize("name", PAGE_MAPPERS)
@PROPERTY
@given(data=json_values)
def test_a_page_mapper_given_any_json_maps_it_or_raises_a_typed_error(name, data):
    assert_page_outcome(PAGE_MAPPERS[name], data)


@PROPERTY
@given(
    items=st.lists(st.sampled_from(HOSTILE) | json_values, max_size=4),
    current_page=st.sampled_from([1, None]) | json_values,
    next_page_url=st.sampled_from(
        [None, "https://api.example.test/v1/customer-invoices?page=2", "http://[broken", "?page=²"]
    )
    | json_values,
)
def test_an_mkp_envelope_of_any_shape_maps_or_raises_a_typed_error(items, current_page, next_page_url):
    envelope = {"current_page": current_page, "data": [mkp_invoice(), *items], "next_page_url": next_page_url}
    assert_page_outcome(mkp_page, envelope)


@PROPERTY
@given(
    items=st.lists(st.sampled_from(HOSTILE) | json_values, max_size=4),
    meta=st.fixed_dictionaries({}, optional={"current_page": json_values, "next_page": json_values})
    | json_values,
)
def test_a_qonto_envelope_of_any_shape_maps_or_raises_a_typed_error(items, meta):
    envelope = {"client_invoices": [QONTO_INVOICE, *items], "meta": meta}
    assert_page_outcome(lambda data: qonto.invoices_page_from_payload(data, 1), envelope)


# The payloads of the report, one by one -------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"invoiceNumber": "N" * 300}, "invoiceNumber"),
        ({"amount": "1E+20"}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"paidAt": "0001-01-01T00:00:00+14:00"}, "paidAt"),
        ({"createdAt": "9999-12-31T23:30:00-01:00"}, "createdAt"),
        ({"id": "inv_" + "x" * 100}, "id"),
        ({"id": {"value": "inv_abc"}}, "id"),
        ({"currency": "EURO"}, "currency"),
        ({"customerId": ["cst_1"]}, "customerId"),
        ({"issuedAt": "2024-04-31"}, "issuedAt"),
        ({"links": {"onlinePaymentLink": {"href": "javascript:alert(1)"}}}, "links.onlinePaymentLink.href"),
        ({"extra": "a\x00b"}, "raw"),
    ],
)
def test_mkp_records_the_mirror_cannot_hold_are_typed_errors_naming_the_field(overrides, field):
    payload = mkp_invoice(**overrides)
    with pytest.raises(ProviderRecordError) as excinfo:
        mkp.invoice_from_payload(payload)
    assert excinfo.value.field == field
    assert excinfo.value.raw is payload
    assert excinfo.value.provider == "mkp"


def test_an_mkp_number_of_255_characters_is_held():
    assert mkp.invoice_from_payload(mkp_invoice(invoiceNumber="N" * 255)).number == "N" * 255


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"total_amount_cents": "1E+1000002"}, "total_amount_cents"),
        ({"vat_amount": {"value": "1E+20"}, "vat_amount_cents": None}, "vat_amount"),
        ({"id": {"uuid": "4d5418bb"}}, "id"),
        ({"client": {"id": {"uuid": "x"}}}, "client.id"),
        ({"currency": "EURO"}, "currency"),
        ({"paid_at": "9999-12-31T23:30:00-01:00"}, "paid_at"),
        ({"number": "N" * 256}, "number"),
        ({"status": {"value": "paid"}}, "status"),
        ({"attachment_id": "a" * 65}, "attachment_id"),
    ],
)
def test_qonto_records_the_mirror_cannot_hold_are_typed_errors_naming_the_field(overrides, field):
    payload = {**copy.deepcopy(QONTO_INVOICE), **overrides}
    with pytest.raises(ProviderRecordError) as excinfo:
        qonto.invoice_from_payload(payload)
    assert excinfo.value.field == field
    assert excinfo.value.raw is payload


def test_a_bad_record_is_kept_apart_and_the_rest_of_its_page_is_mapped():
    bad = mkp_invoice(id="inv_bad", amount="NaN")
    page = mkp_page({"current_page": 1, "data": [mkp_invoice(id="inv_1"), bad, mkp_invoice(id="inv_2")]})
    assert [invoice.remote_id for invoice in page.items] == ["inv_1", "inv_2"]
    [problem] = page.problems
    assert (problem.remote_id, problem.field, problem.value, problem.raw) == ("inv_bad", "amount", "NaN", bad)


def test_a_record_without_a_usable_id_is_known_by_a_digest_of_it():
    first = map_or_typed_error(qonto.invoice_from_payload, {**QONTO_INVOICE, "id": {"a": 1}})
    again = map_or_typed_error(
        qonto.invoice_from_payload, {**QONTO_INVOICE, "id": {"a": 1}, "number": "other"}
    )
    assert first.remote_id == again.remote_id
    assert first.remote_id.startswith("sha256:")


@pytest.mark.parametrize("next_page_url", [{"href": "x"}, 2, "http://[broken", "https://x.test/?page=²"])
def test_an_mkp_next_page_url_we_cannot_read_fails_the_page_with_a_typed_error(next_page_url):
    with pytest.raises(ProviderBadResponse) as excinfo:
        mkp_page({"current_page": 1, "data": [], "next_page_url": next_page_url})
    assert not isinstance(excinfo.value, ProviderRecordError)

import hashlib
import sqlite3
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import requests
import responses
from responses import matchers

from integrations import errors
from integrations.mkp.client import DEFAULT_BASE_URL, MijnKlantportaalClient
from integrations.ratelimit import SqliteRateLimiter, Window
from integrations.types import STATUS_OPEN, STATUS_PAID, PdfFile

API_KEY = "mkp_live_4f9cS3cr3tK3y"
AUTH = {"Authorization": f"Bearer {API_KEY}", "Accept": "application/json"}
INVOICES = f"{DEFAULT_BASE_URL}/customer-invoices"
CUSTOMERS = f"{DEFAULT_BASE_URL}/customers"
PDF_BYTES = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def invoice_payload(invoice_id="inv_abc12345def678", number="2026-001", paid_at=None, **extra):
    payload = {
        "id": invoice_id,
        "customerId": "cst_abc12345def678",
        "invoiceNumber": number,
        "issuedAt": "2026-04-29",
        "dueAt": "2026-05-28",
        "currency": "EUR",
        "amount": "12.95",
        "paidAt": paid_at,
        "createdAt": "2026-04-29T21:00:00+02:00",
        "links": {
            "customer": {
                "href": "https://api.mijnklantportaal.nl/v1/customers/cst_abc12345def678",
                "type": "application/json",
            },
            "onlinePaymentLink": {
                "href": f"https://portal.mijnklantportaal.nl/public-invoice/{invoice_id}/pay/123-abc",
                "type": "text/html",
            },
        },
    }
    payload.update(extra)
    return payload


def customer_payload(customer_id="cst_abc12345def678", name="Test Company BV"):
    return {
        "id": customer_id,
        "companyName": name,
        "address": "Teststreet 123",
        "zipCode": "1234AB",
        "city": "Amsterdam",
        "countryCode": "NL",
        "primaryEmail": "john.doe@test.com",
        "phone": "+312012345678",
        "integration": None,
        "integrationId": None,
        "customerGroups": [],
        "createdAt": "2026-04-28T21:00:00+02:00",
    }


def envelope(items, *, page, last_page, path=INVOICES):
    return {
        "current_page": page,
        "data": items,
        "first_page_url": f"{path}?page=1",
        "from": (page - 1) * 15 + 1,
        "next_page_url": None if page == last_page else f"{path}?page={page + 1}",
        "path": path,
        "per_page": 15,
        "prev_page_url": None if page == 1 else f"{path}?page={page - 1}",
        "to": (page - 1) * 15 + len(items),
    }


@pytest.fixture
def rsps():
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def sleeps(monkeypatch):
    calls = []
    monkeypatch.setattr("integrations.base.time.sleep", calls.append)
    return calls


@pytest.fixture
def client():
    return MijnKlantportaalClient(api_key=API_KEY)


# Configuration -----------------------------------------------------------------------------------
def test_budget_is_the_documented_sixty_requests_a_minute():
    assert MijnKlantportaalClient.provider == "mkp"
    assert MijnKlantportaalClient.windows == (Window(60, 60.0),)


def test_rate_limit_key_is_a_fingerprint_of_the_api_key(client):
    fingerprint = hashlib.sha256(API_KEY.encode()).hexdigest()[:16]

    assert client.rate_limit_key == f"mkp:{fingerprint}"
    assert API_KEY not in client.rate_limit_key
    assert API_KEY not in repr(client)
    assert MijnKlantportaalClient(api_key="another-key").rate_limit_key != client.rate_limit_key


@pytest.mark.parametrize("api_key", ["", "   "])
def test_missing_api_key_fails_before_any_request(rsps, api_key):
    client = MijnKlantportaalClient(api_key=api_key)

    with pytest.raises(errors.ProviderConfigurationError) as exc_info:
        client.get_invoice("inv_1")

    assert "API key" in str(exc_info.value)
    assert len(rsps.calls) == 0
    assert client.request_count == 0


def test_base_url_is_configurable(rsps):
    rsps.get("https://sandbox.example.test/v1/customer-invoices/inv_1", json=invoice_payload("inv_1"))
    client = MijnKlantportaalClient(api_key=API_KEY, base_url="https://sandbox.example.test/v1/")

    assert client.get_invoice("inv_1").remote_id == "inv_1"


# Customer invoices -------------------------------------------------------------------------------
def test_list_invoices_sends_the_key_and_the_page(rsps, client):
    rsps.get(
        INVOICES,
        json={
            **envelope([invoice_payload("inv_1"), invoice_payload("inv_2")], page=1, last_page=2),
            "next_page_url": f"{INVOICES}?page=2,",  # the stray comma of the provider's example
        },
        match=[matchers.header_matcher(AUTH), matchers.query_param_matcher({"page": 1})],
    )

    page = client.list_invoices()

    assert [invoice.remote_id for invoice in page.items] == ["inv_1", "inv_2"]
    assert page.number == 1
    assert page.next_page == 2


def test_iter_invoices_follows_next_page_url_until_null(rsps, client):
    for number, ids in [(1, ["inv_1", "inv_2"]), (2, ["inv_3"]), (3, ["inv_4"])]:
        rsps.get(
            INVOICES,
            json=envelope([invoice_payload(i) for i in ids], page=number, last_page=3),
            match=[matchers.query_param_matcher({"page": number})],
        )

    pages = list(client.iter_invoices())

    assert [page.number for page in pages] == [1, 2, 3]
    assert [invoice.remote_id for page in pages for invoice in page.items] == [
        "inv_1",
        "inv_2",
        "inv_3",
        "inv_4",
    ]
    assert pages[-1].next_page is None
    assert len(rsps.calls) == 3


def test_iter_invoices_can_resume_at_a_later_page(rsps, client):
    rsps.get(
        INVOICES,
        json=envelope([invoice_payload("inv_9")], page=5, last_page=5),
        match=[matchers.query_param_matcher({"page": 5})],
    )

    pages = list(client.iter_invoices(start_page=5))

    assert [page.number for page in pages] == [5]
    assert len(rsps.calls) == 1


def test_get_invoice(rsps, client):
    rsps.get(
        f"{INVOICES}/inv_abc12345def678",
        json=invoice_payload(paid_at="2026-05-28T21:00:00+02:00"),
        match=[matchers.header_matcher(AUTH)],
    )

    invoice = client.get_invoice("inv_abc12345def678")

    assert invoice.remote_id == "inv_abc12345def678"
    assert invoice.status == STATUS_PAID
    assert invoice.paid_at == datetime(2026, 5, 28, 19, 0, tzinfo=UTC)
    assert invoice.amount == Decimal("12.95")


def test_path_ids_are_url_quoted(rsps, client):
    rsps.get(f"{INVOICES}/inv_a%2F..%2Fb%3Fc", json=invoice_payload("inv_a/../b?c"))

    client.get_invoice("inv_a/../b?c")

    assert rsps.calls[0].request.url == f"{INVOICES}/inv_a%2F..%2Fb%3Fc"


def test_empty_invoice_id_is_refused_without_a_request(rsps, client):
    # Otherwise GET /customer-invoices/ would ask for the list.
    with pytest.raises(ValueError):
        client.get_invoice("")

    assert len(rsps.calls) == 0


def test_create_invoice_posts_the_documented_multipart_form(rsps, client):
    rsps.post(
        INVOICES,
        status=201,
        json=invoice_payload("inv_new", number="2026-014", paid_at="2026-07-01T12:00:00+02:00"),
        match=[
            matchers.header_matcher(AUTH),
            matchers.multipart_matcher(
                files={"pdf": ("2026-014.pdf", PDF_BYTES, "application/pdf")},
                data={
                    "customerId": "cst_abc12345def678",
                    "invoiceNumber": "2026-014",
                    "issuedAt": "2026-06-02",
                    "dueAt": "2026-07-02",
                    "amount": "1250.50",
                    "paidAt": "2026-07-01 12:00:00",
                    "sendNotification": "true",
                },
            ),
        ],
    )

    invoice = client.create_invoice(
        customer_id="cst_abc12345def678",
        number="2026-014",
        issued_at=date(2026, 6, 2),
        due_at=date(2026, 7, 2),
        amount=Decimal("1250.5"),
        paid_at=datetime(2026, 7, 1, 10, 0, tzinfo=UTC),
        pdf=PdfFile(name="2026-014.pdf", content=PDF_BYTES),
        send_notification=True,
    )

    assert invoice.remote_id == "inv_new"
    assert invoice.status == STATUS_PAID
    content_type = rsps.calls[0].request.headers["Content-Type"]
    assert content_type.startswith("multipart/form-data; boundary=")


def test_create_invoice_omits_empty_optional_fields(rsps, client):
    # An answer of 200 instead of the documented 201 is accepted too.
    rsps.post(
        INVOICES,
        status=200,
        json=invoice_payload("inv_new", number="2026-015"),
        match=[
            matchers.multipart_matcher(
                files={"pdf": ("factuur.pdf", PDF_BYTES, "application/pdf")},
                data={
                    "customerId": "cst_abc12345def678",
                    "invoiceNumber": "2026-015",
                    "issuedAt": "2026-01-15",
                    "amount": "12.95",
                    "sendNotification": "false",
                },
            )
        ],
    )

    invoice = client.create_invoice(
        customer_id="cst_abc12345def678",
        number="2026-015",
        issued_at=date(2026, 1, 15),
        amount=Decimal("12.95"),
        pdf=PdfFile(name="factuur.pdf", content=PDF_BYTES),
    )

    assert invoice.status == STATUS_OPEN
    assert b'name="dueAt"' not in rsps.calls[0].request.body
    assert b'name="paidAt"' not in rsps.calls[0].request.body


def test_create_invoice_sends_winter_payment_moment_in_amsterdam_time(rsps, client):
    rsps.post(
        INVOICES,
        status=201,
        json=invoice_payload("inv_new", number="2026-016", paid_at="2026-01-15T11:00:00+01:00"),
        match=[
            matchers.multipart_matcher(
                files={"pdf": ("2026-016.pdf", PDF_BYTES, "application/pdf")},
                data={
                    "customerId": "cst_abc12345def678",
                    "invoiceNumber": "2026-016",
                    "issuedAt": "2026-01-15",
                    "amount": "12.95",
                    "paidAt": "2026-01-15 11:00:00",
                    "sendNotification": "false",
                },
            )
        ],
    )

    invoice = client.create_invoice(
        customer_id="cst_abc12345def678",
        number="2026-016",
        issued_at=date(2026, 1, 15),
        amount=Decimal("12.95"),
        paid_at=datetime(2026, 1, 15, 10, 0, tzinfo=UTC),
        pdf=PdfFile(name="2026-016.pdf", content=PDF_BYTES),
    )

    assert invoice.paid_at == datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount", "paid_at"),
    [
        (Decimal("-12.95"), None),
        (Decimal("NaN"), None),
        (Decimal("12.95"), datetime(2026, 7, 1, 12, 0)),  # naive
    ],
)
def test_create_invoice_refuses_bad_input_without_a_request(rsps, client, amount, paid_at):
    with pytest.raises(ValueError):
        client.create_invoice(
            customer_id="cst_abc12345def678",
            number="2026-017",
            issued_at=date(2026, 7, 1),
            amount=amount,
            paid_at=paid_at,
            pdf=PdfFile(name="2026-017.pdf", content=PDF_BYTES),
        )

    assert len(rsps.calls) == 0


@pytest.mark.parametrize(
    ("paid_at", "sent"),
    [
        (datetime(2026, 7, 1, 10, 0, tzinfo=UTC), "2026-07-01 12:00:00"),
        (datetime(2026, 1, 15, 10, 0, tzinfo=UTC), "2026-01-15 11:00:00"),
    ],
    ids=["summer", "winter"],
)
def test_mark_paid_patches_amsterdam_local_time(rsps, client, paid_at, sent):
    rsps.patch(
        f"{INVOICES}/inv_abc12345def678",
        json=invoice_payload(paid_at=paid_at.isoformat()),
        match=[matchers.header_matcher(AUTH), matchers.json_params_matcher({"paidAt": sent})],
    )

    invoice = client.mark_paid("inv_abc12345def678", paid_at)

    assert invoice.status == STATUS_PAID
    assert invoice.paid_at == paid_at


def test_mark_paid_refuses_a_naive_datetime_without_a_request(rsps, client):
    with pytest.raises(ValueError):
        client.mark_paid("inv_abc12345def678", datetime(2026, 7, 1, 12, 0))

    assert len(rsps.calls) == 0


def test_invoice_pdf_link(rsps, client):
    rsps.get(
        f"{INVOICES}/inv_abc12345def678/pdf",
        json={
            "link": "https://files.example.test/inv_abc.pdf?sig=1",
            "expiresAt": "2026-04-29T21:00:00+02:00",
        },
        match=[matchers.header_matcher(AUTH)],
    )

    link, expires_at = client.invoice_pdf_link("inv_abc12345def678")

    assert link == "https://files.example.test/inv_abc.pdf?sig=1"
    assert expires_at == datetime(2026, 4, 29, 19, 0, tzinfo=UTC)


def test_download_invoice_pdf_fetches_the_link_without_our_key(rsps, client):
    rsps.get(
        f"{INVOICES}/inv_abc12345def678/pdf",
        json={
            "link": "https://files.example.test/inv_abc.pdf?sig=1",
            "expiresAt": "2026-04-29T21:00:00+02:00",
        },
    )
    rsps.get("https://files.example.test/inv_abc.pdf?sig=1", body=PDF_BYTES, content_type="application/pdf")

    content = client.download_invoice_pdf("inv_abc12345def678")

    assert content == PDF_BYTES
    assert "Authorization" not in rsps.calls[1].request.headers


def test_download_that_is_not_a_pdf_is_a_bad_response(rsps, client):
    rsps.get(
        f"{INVOICES}/inv_abc12345def678/pdf",
        json={"link": "https://files.example.test/inv_abc.pdf", "expiresAt": "2026-04-29T21:00:00+02:00"},
    )
    rsps.get("https://files.example.test/inv_abc.pdf", body="<html>Sign in</html>", content_type="text/html")

    with pytest.raises(errors.ProviderBadResponse):
        client.download_invoice_pdf("inv_abc12345def678")


# Customers ---------------------------------------------------------------------------------------
def test_iter_customers_follows_pages(rsps, client):
    for number, ids in [(1, ["cst_1", "cst_2"]), (2, ["cst_3"])]:
        rsps.get(
            CUSTOMERS,
            json=envelope([customer_payload(i) for i in ids], page=number, last_page=2, path=CUSTOMERS),
            match=[matchers.header_matcher(AUTH), matchers.query_param_matcher({"page": number})],
        )

    pages = list(client.iter_customers())

    assert [customer.remote_id for page in pages for customer in page.items] == ["cst_1", "cst_2", "cst_3"]
    assert pages[0].items[0].name == "Test Company BV"
    assert pages[0].items[0].email == "john.doe@test.com"


def test_get_customer(rsps, client):
    rsps.get(
        f"{CUSTOMERS}/cst_abc12345def678", json=customer_payload(), match=[matchers.header_matcher(AUTH)]
    )

    customer = client.get_customer("cst_abc12345def678")

    assert customer.remote_id == "cst_abc12345def678"
    assert customer.name == "Test Company BV"
    assert customer.remote_created_at == datetime(2026, 4, 28, 19, 0, tzinfo=UTC)


# Errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "body", "error_class", "message"),
    [
        (401, {"message": "Unauthenticated."}, errors.ProviderUnauthorized, "Unauthenticated."),
        (403, {"message": "Missing scope invoices.read."}, errors.ProviderUnauthorized, "Missing scope"),
        (
            404,
            {"message": "No Customer Invoice can be found for the given ID"},
            errors.ProviderNotFound,
            "No Customer Invoice can be found",
        ),
        (
            422,
            {"message": "Something is wrong with the posted data"},
            errors.ProviderValidationError,
            "Something is wrong with the posted data",
        ),
        (
            426,
            {"message": "The amount of invoices this month reached the license's limit"},
            errors.ProviderLicenseLimit,
            "license's limit",
        ),
    ],
)
def test_error_statuses_become_typed_errors_with_the_provider_message(
    rsps, client, status, body, error_class, message
):
    rsps.get(f"{INVOICES}/inv_1", status=status, json=body)

    with pytest.raises(error_class) as exc_info:
        client.get_invoice("inv_1")

    error = exc_info.value
    assert message in str(error)
    assert error.status_code == status
    assert error.provider == "mkp"
    assert error.retryable is False
    assert API_KEY not in str(error)
    assert len(rsps.calls) == 1  # client errors are never retried


def test_validation_error_carries_laravel_field_errors(rsps, client):
    rsps.post(
        INVOICES,
        status=422,
        json={
            "message": "The invoice number has already been taken.",
            "errors": {"invoiceNumber": ["The invoice number has already been taken."]},
        },
    )

    with pytest.raises(errors.ProviderValidationError) as exc_info:
        client.create_invoice(
            customer_id="cst_abc12345def678",
            number="2026-001",
            issued_at=date(2026, 4, 29),
            amount=Decimal("12.95"),
            pdf=PdfFile(name="2026-001.pdf", content=PDF_BYTES),
        )

    assert str(exc_info.value) == "The invoice number has already been taken."
    assert exc_info.value.details == {"invoiceNumber": ["The invoice number has already been taken."]}


def test_validation_error_without_message_is_told_from_the_field_errors(rsps, client):
    rsps.patch(
        f"{INVOICES}/inv_1", status=422, json={"errors": {"paidAt": ["The paid at is not a valid date."]}}
    )

    with pytest.raises(errors.ProviderValidationError) as exc_info:
        client.mark_paid("inv_1", datetime(2026, 7, 1, 10, 0, tzinfo=UTC))

    assert str(exc_info.value) == "The paid at is not a valid date."


def test_license_limit_on_create(rsps, client):
    rsps.post(
        INVOICES,
        status=426,
        json={"message": "The amount of invoices this month reached the license's limit"},
    )

    with pytest.raises(errors.ProviderLicenseLimit) as exc_info:
        client.create_invoice(
            customer_id="cst_abc12345def678",
            number="2026-001",
            issued_at=date(2026, 4, 29),
            amount=Decimal("12.95"),
            pdf=PdfFile(name="2026-001.pdf", content=PDF_BYTES),
        )

    assert exc_info.value.status_code == 426
    assert "license's limit" in str(exc_info.value)


def test_rate_limited_by_the_provider_carries_retry_after(rsps, client, sleeps):
    rsps.get(
        INVOICES,
        status=429,
        json={"code": 429, "message": "Too many requests."},
        headers={"retry-after": "17", "x-ratelimit-reset": "1893456000"},
    )

    with pytest.raises(errors.ProviderRateLimited) as exc_info:
        client.list_invoices()

    assert exc_info.value.retry_after == 17.0
    assert str(exc_info.value) == "Too many requests."
    assert exc_info.value.retryable is True
    assert len(rsps.calls) == 1  # the task layer reschedules; the client never sleeps for it
    assert sleeps == []


def test_the_key_is_redacted_if_the_provider_echoes_it(rsps, client):
    rsps.get(f"{INVOICES}/inv_1", status=401, json={"message": f"Invalid token Bearer {API_KEY}"})

    with pytest.raises(errors.ProviderUnauthorized) as exc_info:
        client.get_invoice("inv_1")

    assert API_KEY not in str(exc_info.value)
    assert "[redacted]" in str(exc_info.value)


def test_error_page_that_is_not_json_gets_a_plain_message(rsps, client):
    rsps.get(
        f"{INVOICES}/inv_1", status=404, body="<html><h1>Not Found</h1></html>", content_type="text/html"
    )

    with pytest.raises(errors.ProviderNotFound) as exc_info:
        client.get_invoice("inv_1")

    assert str(exc_info.value) == "The provider does not know this object."


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_on_a_read_is_retried_then_raised(rsps, client, sleeps, status):
    rsps.get(f"{INVOICES}/inv_1", status=status, body="<html>Bad Gateway</html>", content_type="text/html")

    with pytest.raises(errors.ProviderServerError) as exc_info:
        client.get_invoice("inv_1")

    assert exc_info.value.status_code == status
    assert exc_info.value.retryable is True
    assert len(rsps.calls) == 3  # one attempt and client.read_retries (2) retries
    assert len(sleeps) == 2
    assert API_KEY not in str(exc_info.value)


def test_read_recovers_after_a_transient_server_error(rsps, client, sleeps):
    rsps.get(f"{INVOICES}/inv_1", status=503, json={"message": "Service Unavailable"})
    rsps.get(f"{INVOICES}/inv_1", json=invoice_payload("inv_1"))

    assert client.get_invoice("inv_1").remote_id == "inv_1"
    assert len(rsps.calls) == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_on_create_is_not_retried(rsps, client, sleeps, status):
    rsps.post(INVOICES, status=status, json={"message": "Server Error"})

    with pytest.raises(errors.ProviderServerError) as exc_info:
        client.create_invoice(
            customer_id="cst_abc12345def678",
            number="2026-001",
            issued_at=date(2026, 4, 29),
            amount=Decimal("12.95"),
            pdf=PdfFile(name="2026-001.pdf", content=PDF_BYTES),
        )

    assert exc_info.value.outcome_unknown is True
    assert len(rsps.calls) == 1
    assert sleeps == []


def test_server_error_on_mark_paid_is_not_retried(rsps, client, sleeps):
    rsps.patch(f"{INVOICES}/inv_1", status=502)

    with pytest.raises(errors.ProviderServerError):
        client.mark_paid("inv_1", datetime(2026, 7, 1, 10, 0, tzinfo=UTC))

    assert len(rsps.calls) == 1


def test_timeout_on_create_leaves_the_outcome_unknown(rsps, client, sleeps):
    rsps.post(INVOICES, body=requests.exceptions.ReadTimeout("read timed out"))

    with pytest.raises(errors.ProviderTimeout) as exc_info:
        client.create_invoice(
            customer_id="cst_abc12345def678",
            number="2026-001",
            issued_at=date(2026, 4, 29),
            amount=Decimal("12.95"),
            pdf=PdfFile(name="2026-001.pdf", content=PDF_BYTES),
        )

    assert exc_info.value.outcome_unknown is True
    assert exc_info.value.retryable is True
    assert len(rsps.calls) == 1
    assert API_KEY not in str(exc_info.value)


def test_timeout_on_a_read_is_retried_then_raised(rsps, client, sleeps):
    rsps.get(f"{INVOICES}/inv_1", body=requests.exceptions.ReadTimeout("read timed out"))

    with pytest.raises(errors.ProviderTimeout) as exc_info:
        client.get_invoice("inv_1")

    assert exc_info.value.outcome_unknown is True
    assert len(rsps.calls) == 3
    assert len(sleeps) == 2


def test_connection_error(rsps, client, sleeps):
    rsps.get(f"{INVOICES}/inv_1", body=requests.exceptions.ConnectionError("connection reset by peer"))

    with pytest.raises(errors.ProviderConnectionError) as exc_info:
        client.get_invoice("inv_1")

    assert len(rsps.calls) == 3
    assert API_KEY not in str(exc_info.value)


def test_malformed_json_is_a_bad_response(rsps, client):
    rsps.get(f"{INVOICES}/inv_1", body='{"id": "inv_1", "amount": ', content_type="application/json")

    with pytest.raises(errors.ProviderBadResponse) as exc_info:
        client.get_invoice("inv_1")

    assert exc_info.value.status_code == 200
    assert len(rsps.calls) == 1


def test_json_that_is_not_an_invoice_is_a_bad_response(rsps, client):
    rsps.get(f"{INVOICES}/inv_1", json=[{"id": "inv_1"}])

    with pytest.raises(errors.ProviderBadResponse):
        client.get_invoice("inv_1")


def test_html_page_with_200_is_a_configuration_error(rsps, client):
    rsps.get(
        INVOICES,
        body="<!DOCTYPE html><html><body>Log in to MijnKlantportaal</body></html>",
        content_type="text/html; charset=UTF-8",
    )

    with pytest.raises(errors.ProviderConfigurationError) as exc_info:
        client.list_invoices()

    assert "web page" in str(exc_info.value)
    assert API_KEY not in str(exc_info.value)


def test_list_whose_next_page_cannot_be_read_is_a_bad_response(rsps, client):
    rsps.get(
        INVOICES,
        json={
            **envelope([invoice_payload("inv_1")], page=1, last_page=2),
            "next_page_url": f"{INVOICES}?cursor=x",
        },
    )

    with pytest.raises(errors.ProviderBadResponse):
        list(client.iter_invoices())


# Shared rate limiter -----------------------------------------------------------------------------
def test_shared_limiter_is_consulted_before_every_request(rsps, tmp_path):
    limiter = SqliteRateLimiter(tmp_path / "ratelimit.sqlite3")
    client = MijnKlantportaalClient(api_key=API_KEY, rate_limiter=limiter, max_wait=0)
    client.windows = (Window(2, 60.0),)
    rsps.get(f"{INVOICES}/inv_1", json=invoice_payload("inv_1"))

    client.get_invoice("inv_1")
    client.get_invoice("inv_1")
    with pytest.raises(errors.ProviderRateLimited) as exc_info:
        client.get_invoice("inv_1")

    assert len(rsps.calls) == 2
    assert 0 < exc_info.value.retry_after <= 60
    # The budget is kept under the key's fingerprint, never the key itself.
    buckets = {
        row[0] for row in sqlite3.connect(tmp_path / "ratelimit.sqlite3").execute("SELECT bucket FROM grants")
    }
    assert buckets == {f"{client.rate_limit_key}:60.0s"}
    assert not any(API_KEY in bucket for bucket in buckets)


def test_each_api_key_has_its_own_budget(rsps, tmp_path):
    limiter = SqliteRateLimiter(tmp_path / "ratelimit.sqlite3")
    first = MijnKlantportaalClient(api_key=API_KEY, rate_limiter=limiter, max_wait=0)
    second = MijnKlantportaalClient(api_key="mkp_live_other", rate_limiter=limiter, max_wait=0)
    first.windows = second.windows = (Window(1, 60.0),)
    rsps.get(f"{INVOICES}/inv_1", json=invoice_payload("inv_1"))

    first.get_invoice("inv_1")
    second.get_invoice("inv_1")
    with pytest.raises(errors.ProviderRateLimited):
        first.get_invoice("inv_1")

    assert len(rsps.calls) == 2

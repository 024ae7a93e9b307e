import copy
import email
import shutil
import sqlite3
import subprocess
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import requests
import responses
import time_machine
from responses import matchers

from integrations import errors
from integrations.breaker import MemoryBreaker, RedisBreaker, SqliteBreaker, breaker_from_url
from integrations.qonto import DEFAULT_BASE_URL, SANDBOX_BASE_URL, MemoryTokenStore, QontoClient
from integrations.qonto.auth import DEFAULT_TOKEN_URL, TokenServiceUnavailable
from integrations.ratelimit import Window
from integrations.types import STATUS_OPEN, STATUS_PAID, PdfFile, RemoteInvoice

LOGIN = "pied-piper-7132"
SECRET = "62885d39f3a0ddedd3d3ee0432a43ccr"
API_KEY_AUTH = {"Authorization": f"{LOGIN}:{SECRET}"}
INVOICES = f"{DEFAULT_BASE_URL}/v2/client_invoices"
INVOICE_ID = "4d5418bb-bd0d-4df4-865c-c07afab8bb48"
ATTACHMENT_ID = "5e5418bb-bd0d-4df4-865c-c07afab8bb48"
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
TRACE_ID = "6f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c"

INVOICE = {
    "id": INVOICE_ID,
    "number": "INV001",
    "status": "unpaid",
    "invoice_url": "https://pay.qonto.com/invoices/00000000-0000-0000-0000-000000000000",
    "currency": "EUR",
    "total_amount": {"value": "12.52", "currency": "EUR"},
    "total_amount_cents": 1252,
    "vat_amount": {"value": "0.51", "currency": "EUR"},
    "vat_amount_cents": 51,
    "issue_date": "2022-03-01",
    "due_date": "2022-03-31",
    "created_at": "2022-03-04T17:58:30+02:00",
    "updated_at": "2022-03-04T17:58:30+02:00",
    "paid_at": None,
    "client": {"id": "33v418bb-bd0d-4df4-865c-c07afab8bb48", "name": "McDonald's"},
    "attachment_id": ATTACHMENT_ID,
}


def invoice(**changes):
    payload = copy.deepcopy(INVOICE)
    payload.update(changes)
    return payload


def page_body(items, current, next_page):
    return {
        "client_invoices": items,
        "meta": {"current_page": current, "next_page": next_page, "prev_page": None, "per_page": 100},
    }


def qonto_error(detail, *, code="invalid", pointer=None):
    error = {"code": code, "detail": detail}
    if pointer:
        error["source"] = {"pointer": pointer}
    return {"errors": [error], "trace_id": TRACE_ID}


def api_key_client(**kwargs):
    return QontoClient(login=LOGIN, secret_key=SECRET, **kwargs)


def oauth_client(*, expires_in, store=None, **kwargs):
    return QontoClient(
        access_token="access-old-0000",
        refresh_token="refresh-old-0000",
        client_id="backoffice",
        client_secret="client-s3cret-0000",
        token_expires_at=datetime.now(UTC) + expires_in,
        token_store=store if store is not None else MemoryTokenStore(),
        **kwargs,
    )


@pytest.fixture(autouse=True)
def sleeps(monkeypatch):
    calls = []
    monkeypatch.setattr("integrations.base.time.sleep", calls.append)
    return calls


@pytest.fixture
def mocked():
    with responses.RequestsMock() as rsps:
        yield rsps


def multipart_parts(request):
    """(field name, file name, content type, bytes) of each part of a multipart request."""
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.message_from_bytes(head + request.body)
    return [
        (
            part.get_param("name", header="content-disposition"),
            part.get_filename(),
            part.get_content_type(),
            part.get_payload(decode=True),
        )
        for part in message.get_payload()
    ]


# Authentication headers ------------------------------------------------------------------------
def test_api_key_header_is_raw_login_colon_secret(mocked):
    mocked.get(
        f"{INVOICES}/{INVOICE_ID}",
        json={"client_invoice": invoice()},
        match=[matchers.header_matcher(API_KEY_AUTH)],
    )
    result = api_key_client().get_invoice(INVOICE_ID)

    assert result.remote_id == INVOICE_ID
    assert result.status == STATUS_OPEN
    assert result.amount == Decimal("12.52")
    sent = mocked.calls[0].request.headers
    assert "X-Qonto-Staging-Token" not in sent
    assert not sent["Authorization"].startswith(("Basic", "Bearer"))


def test_staging_token_is_sent_to_the_sandbox(mocked):
    mocked.get(
        f"{SANDBOX_BASE_URL}/v2/clients/c-1",
        json={"client": {"id": "c-1", "name": "Pied Piper"}},
        match=[matchers.header_matcher({**API_KEY_AUTH, "X-Qonto-Staging-Token": "stg-123"})],
    )
    client = api_key_client(base_url=SANDBOX_BASE_URL, staging_token="stg-123")
    assert client.get_client("c-1").name == "Pied Piper"


def test_no_credentials_is_a_configuration_error_without_a_request(mocked):
    with pytest.raises(errors.ProviderConfigurationError, match="No Qonto credentials"):
        QontoClient().get_invoice(INVOICE_ID)
    assert len(mocked.calls) == 0


def test_html_login_page_with_200_is_a_configuration_error(mocked):
    mocked.get(
        f"{SANDBOX_BASE_URL}/v2/client_invoices",
        body="<!DOCTYPE html><html><body>Sign in - OneLogin</body></html>",
        content_type="text/html",
    )
    with pytest.raises(errors.ProviderConfigurationError, match="staging token"):
        api_key_client(base_url=SANDBOX_BASE_URL).list_invoices()


def test_the_documented_request_budget():
    assert QontoClient.windows == (Window(1000, 10.0), Window(10000, 600.0))
    assert QontoClient.provider == "qonto"


# OAuth -----------------------------------------------------------------------------------------
def token_answer(access="access-new-1111", refresh="refresh-new-1111", expires_in=3600):
    return {
        "access_token": access,
        "expires_in": expires_in,
        "refresh_token": refresh,
        "scope": "client_invoices.read client_invoice.write offline_access",
        "token_type": "bearer",
    }


def refresh_form(refresh_token="refresh-old-0000"):
    return matchers.urlencoded_params_matcher(
        {
            "grant_type": "refresh_token",
            "client_id": "backoffice",
            "client_secret": "client-s3cret-0000",
            "refresh_token": refresh_token,
        }
    )


def test_oauth_token_far_from_expiry_is_used_as_is(mocked):
    mocked.get(
        f"{INVOICES}/{INVOICE_ID}",
        json={"client_invoice": invoice()},
        match=[matchers.header_matcher({"Authorization": "Bearer access-old-0000"})],
    )
    oauth_client(expires_in=timedelta(hours=1)).get_invoice(INVOICE_ID)
    assert [call.request.url for call in mocked.calls] == [f"{INVOICES}/{INVOICE_ID}"]


def test_oauth_token_is_refreshed_before_it_expires_and_rotated_tokens_are_saved(mocked):
    store = MemoryTokenStore()
    mocked.post(DEFAULT_TOKEN_URL, json=token_answer(), match=[refresh_form()])
    mocked.get(
        f"{INVOICES}/{INVOICE_ID}",
        json={"client_invoice": invoice()},
        match=[matchers.header_matcher({"Authorization": "Bearer access-new-1111"})],
    )
    client = oauth_client(expires_in=timedelta(minutes=4), store=store)

    client.get_invoice(INVOICE_ID)
    client.get_invoice(INVOICE_ID)  # the renewed token lasts an hour: no second renewal

    assert [call.request.method for call in mocked.calls] == ["POST", "GET", "GET"]
    token_request = mocked.calls[0].request
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in token_request.headers
    saved = store.load()
    assert saved["access_token"] == "access-new-1111"
    assert saved["refresh_token"] == "refresh-new-1111"
    assert timedelta(minutes=59) < saved["expires_at"] - datetime.now(UTC) <= timedelta(hours=1)


def test_rotated_tokens_are_shared_through_the_store(mocked):
    store = MemoryTokenStore()
    mocked.post(DEFAULT_TOKEN_URL, json=token_answer(), match=[refresh_form()])
    mocked.get(
        f"{INVOICES}/{INVOICE_ID}",
        json={"client_invoice": invoice()},
        match=[matchers.header_matcher({"Authorization": "Bearer access-new-1111"})],
    )
    oauth_client(expires_in=timedelta(minutes=1), store=store).get_invoice(INVOICE_ID)
    # Another worker, configured with the same (now rotated) tokens, reads the new ones.
    oauth_client(expires_in=timedelta(minutes=1), store=store).get_invoice(INVOICE_ID)

    assert [call.request.method for call in mocked.calls] == ["POST", "GET", "GET"]


def test_tokens_of_a_previous_configuration_are_ignored(mocked):
    store = MemoryTokenStore()
    mocked.post(DEFAULT_TOKEN_URL, json=token_answer(), match=[refresh_form()])
    mocked.get(f"{INVOICES}/{INVOICE_ID}", json={"client_invoice": invoice()})
    oauth_client(expires_in=timedelta(minutes=1), store=store).get_invoice(INVOICE_ID)

    reconnected = QontoClient(
        access_token="access-reconnected",
        token_expires_at=datetime.now(UTC) + timedelta(hours=1),
        token_store=store,
    )
    reconnected.get_invoice(INVOICE_ID)
    assert mocked.calls[-1].request.headers["Authorization"] == "Bearer access-reconnected"


def test_tokens_from_a_connect_flow_in_the_store_are_used(mocked):
    store = MemoryTokenStore(
        {"access_token": "from-flow", "refresh_token": "r", "expires_at": "2999-01-01T00:00:00+00:00"}
    )
    mocked.get(
        f"{INVOICES}/{INVOICE_ID}",
        json={"client_invoice": invoice()},
        match=[matchers.header_matcher({"Authorization": "Bearer from-flow"})],
    )
    QontoClient(token_store=store, client_id="backoffice", client_secret="x").get_invoice(INVOICE_ID)


def test_unknown_expiry_renews_once_to_learn_it(mocked):
    mocked.post(DEFAULT_TOKEN_URL, json=token_answer(), match=[refresh_form()])
    mocked.get(f"{INVOICES}/{INVOICE_ID}", json={"client_invoice": invoice()})
    client = QontoClient(
        access_token="access-old-0000",
        refresh_token="refresh-old-0000",
        client_id="backoffice",
        client_secret="client-s3cret-0000",
    )
    client.get_invoice(INVOICE_ID)
    client.get_invoice(INVOICE_ID)
    assert [call.request.method for call in mocked.calls] == ["POST", "GET", "GET"]


def test_expired_token_without_refresh_credentials_is_a_configuration_error(mocked):
    client = QontoClient(
        access_token="access-old-0000", token_expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    with pytest.raises(errors.ProviderConfigurationError, match="expired"):
        client.get_invoice(INVOICE_ID)
    assert len(mocked.calls) == 0


def test_refused_refresh_pauses_the_calls(mocked):
    mocked.post(
        DEFAULT_TOKEN_URL,
        status=400,
        json={"error": "invalid_grant", "error_description": "refresh-old-0000 is revoked"},
    )
    client = oauth_client(expires_in=timedelta(minutes=1))

    with pytest.raises(errors.ProviderConfigurationError, match="invalid_grant") as first:
        client.get_invoice(INVOICE_ID)
    with pytest.raises(errors.ProviderConfigurationError, match="paused until the credentials are changed"):
        client.get_invoice(INVOICE_ID)

    assert len(mocked.calls) == 1
    assert "refresh-old-0000" not in str(first.value)
    assert "client-s3cret" not in str(first.value)


def test_refresh_retried_once_after_a_timeout(mocked):
    mocked.post(DEFAULT_TOKEN_URL, body=requests.exceptions.ReadTimeout("slow"))
    mocked.post(DEFAULT_TOKEN_URL, json=token_answer(), match=[refresh_form()])
    mocked.get(f"{INVOICES}/{INVOICE_ID}", json={"client_invoice": invoice()})

    oauth_client(expires_in=timedelta(minutes=1)).get_invoice(INVOICE_ID)
    assert [call.request.method for call in mocked.calls] == ["POST", "POST", "GET"]


def test_refresh_that_keeps_failing_is_a_typed_error(mocked):
    mocked.post(DEFAULT_TOKEN_URL, body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(TokenServiceUnavailable, match="did not answer in time") as excinfo:
        oauth_client(expires_in=timedelta(minutes=1)).mark_paid(INVOICE_ID, date(2024, 12, 15))
    # Retryable, but nothing reached the API: the invoice is certainly not marked paid.
    assert excinfo.value.retryable
    assert not excinfo.value.outcome_unknown
    assert len(mocked.calls) == 2


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 503, "body": "unavailable"},
        {"status": 200, "body": "not json"},
        {"status": 200, "json": {"token_type": "bearer"}},
    ],
)
def test_refresh_answer_that_is_not_usable_is_a_typed_error(mocked, answer):
    mocked.post(DEFAULT_TOKEN_URL, **answer)
    with pytest.raises(TokenServiceUnavailable):
        oauth_client(expires_in=timedelta(minutes=1)).get_invoice(INVOICE_ID)
    assert all(call.request.url == DEFAULT_TOKEN_URL for call in mocked.calls)
    assert len(mocked.calls) == (2 if answer["status"] == 503 else 1)


# Invoices --------------------------------------------------------------------------------------
def test_list_invoices_sends_the_filters(mocked):
    mocked.get(
        INVOICES,
        json=page_body([invoice()], 2, None),
        match=[
            matchers.header_matcher(API_KEY_AUTH),
            matchers.query_param_matcher(
                {
                    "page": "2",
                    "per_page": "50",
                    "filter[status]": "unpaid,paid",
                    "filter[updated_at_from]": "2026-11-21T23:00:00Z",
                    "filter[updated_at_to]": "2026-11-22T10:15:30Z",
                    "sort_by": "updated_at:asc",
                },
                strict_match=True,
            ),
        ],
    )
    page = api_key_client().list_invoices(
        page=2,
        per_page=50,
        statuses=["open", "paid"],
        updated_at_from=datetime(2026, 11, 22, 0, 0, tzinfo=UTC) - timedelta(hours=1),
        updated_at_to=datetime(2026, 11, 22, 11, 15, 30, 500000, tzinfo=UTC) - timedelta(hours=1),
        sort_by="updated_at:asc",
    )

    assert [item.number for item in page.items] == ["INV001"]
    assert (page.number, page.next_page) == (2, None)
    url = mocked.calls[0].request.url
    assert "filter%5Bstatus%5D=unpaid%2Cpaid" in url
    assert "filter%5Bupdated_at_from%5D=2026-11-21T23%3A00%3A00Z" in url


def test_list_invoices_without_filters_sends_only_paging(mocked):
    mocked.get(
        INVOICES,
        json=page_body([], 1, None),
        match=[matchers.query_param_matcher({"page": "1", "per_page": "100"}, strict_match=True)],
    )
    assert api_key_client().list_invoices().items == []


def test_iter_invoices_follows_meta_next_page(mocked):
    first, second = invoice(id="i-1", number="A"), invoice(id="i-2", number="B")
    mocked.get(
        INVOICES,
        json=page_body([first], 1, 2),
        match=[matchers.query_param_matcher({"page": "1", "per_page": "100", "filter[status]": "unpaid"})],
    )
    mocked.get(
        INVOICES,
        json={"client_invoices": [second], "meta": {"current_page": 2}},  # next_page missing: last page
        match=[matchers.query_param_matcher({"page": "2", "per_page": "100", "filter[status]": "unpaid"})],
    )
    numbers = [
        item.number for page in api_key_client().iter_invoices(statuses=["unpaid"]) for item in page.items
    ]
    assert numbers == ["A", "B"]
    assert len(mocked.calls) == 2


def test_get_invoice_quotes_the_id(mocked):
    mocked.get(f"{INVOICES}/a%2Fb%20c", json={"client_invoice": invoice(id="a/b c")})
    assert api_key_client().get_invoice("a/b c").remote_id == "a/b c"


def test_mark_paid_sends_the_date_and_returns_the_paid_invoice(mocked):
    paid = invoice(status="paid", paid_at="2024-12-15T00:00:00+01:00")
    mocked.post(
        f"{INVOICES}/{INVOICE_ID}/mark_as_paid",
        json={"client_invoice": paid},
        match=[
            matchers.header_matcher({**API_KEY_AUTH, "Content-Type": "application/json"}),
            matchers.json_params_matcher({"paid_at": "2024-12-15"}, strict_match=True),
        ],
    )
    result = api_key_client().mark_paid(INVOICE_ID, date(2024, 12, 15))

    assert result.status == STATUS_PAID
    assert result.paid_at == datetime(2024, 12, 14, 23, 0, tzinfo=UTC)


def test_mark_paid_refuses_a_future_date_without_a_request(mocked):
    with pytest.raises(errors.ProviderValidationError, match="future"):
        api_key_client().mark_paid(INVOICE_ID, date.today() + timedelta(days=2))
    assert len(mocked.calls) == 0


@pytest.mark.parametrize(
    ("now", "refused", "accepted"),
    [
        # 23:30 UTC: already the 23rd in Paris, not yet in UTC. Paris decides: the 23rd is today.
        (datetime(2026, 11, 22, 23, 30, tzinfo=UTC), date(2026, 11, 24), date(2026, 11, 23)),
        # 22:59 UTC is 23:59 in Paris: the 22nd is today there, the 23rd not yet.
        (datetime(2026, 11, 22, 22, 59, tzinfo=UTC), date(2026, 11, 23), date(2026, 11, 22)),
    ],
)
def test_mark_paid_around_midnight(mocked, now, refused, accepted):
    mocked.post(
        f"{INVOICES}/{INVOICE_ID}/mark_as_paid",
        json={"client_invoice": invoice(status="paid")},
        match=[matchers.json_params_matcher({"paid_at": accepted.isoformat()})],
    )
    with time_machine.travel(now, tick=False):
        client = api_key_client()
        with pytest.raises(errors.ProviderValidationError, match=refused.isoformat()):
            client.mark_paid(INVOICE_ID, refused)
        client.mark_paid(INVOICE_ID, accepted)
    assert len(mocked.calls) == 1


def test_import_invoices_repeats_the_field_and_sends_the_idempotency_key(mocked):
    mocked.post(
        f"{INVOICES}/bulk",
        json={
            "client_invoices": [
                {"invoice_id": "019c688e-1", "file_name": "invoice1.pdf"},
                {"invoice_id": "019c688e-2", "file_name": "invoice2.pdf"},
            ]
        },
        match=[
            matchers.header_matcher(
                {**API_KEY_AUTH, "X-Qonto-Idempotency-Key": "2c3f1b8e-6a51-4a3e-9d55-1f2b0b7c9e11"}
            )
        ],
    )
    result = api_key_client().import_invoices(
        [PdfFile("invoice1.pdf", PDF), PdfFile("invoice2.pdf", PDF + b"2")],
        idempotency_key="2c3f1b8e-6a51-4a3e-9d55-1f2b0b7c9e11",
    )

    assert result == [("invoice1.pdf", "019c688e-1"), ("invoice2.pdf", "019c688e-2")]
    request = mocked.calls[0].request
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert multipart_parts(request) == [
        ("client_invoices", "invoice1.pdf", "application/pdf", PDF),
        ("client_invoices", "invoice2.pdf", "application/pdf", PDF + b"2"),
    ]


def test_import_without_key_sends_no_idempotency_header(mocked):
    mocked.post(f"{INVOICES}/bulk", json={"client_invoices": [{"invoice_id": "i", "file_name": "a.pdf"}]})
    api_key_client().import_invoices([PdfFile("a.pdf", PDF)])
    assert "X-Qonto-Idempotency-Key" not in mocked.calls[0].request.headers


def test_import_refuses_a_too_big_file_without_a_request(mocked):
    big = PdfFile("scan.pdf", PDF + b"0" * (5 * 1024 * 1024))
    with pytest.raises(errors.ProviderValidationError, match=r"scan\.pdf is 5\.1 MB"):
        api_key_client().import_invoices([PdfFile("a.pdf", PDF), big])
    assert len(mocked.calls) == 0


# Attachments and clients -----------------------------------------------------------------------
def test_download_invoice_pdf_fetches_the_signed_link_at_once(mocked):
    signed = "https://qonto-attachments.s3.example/a.pdf?X-Amz-Expires=1800&X-Amz-Signature=abc"
    mocked.get(
        f"{DEFAULT_BASE_URL}/v2/attachments/{ATTACHMENT_ID}",
        json={"attachment": {"id": ATTACHMENT_ID, "file_name": "INV001.pdf", "url": signed}},
        match=[matchers.header_matcher(API_KEY_AUTH)],
    )
    mocked.get(signed, body=PDF, content_type="application/pdf")
    client = api_key_client()

    assert client.download_invoice_pdf(_remote(ATTACHMENT_ID)) == PDF
    assert "Authorization" not in mocked.calls[1].request.headers


def _remote(attachment_id):
    return RemoteInvoice(
        remote_id=INVOICE_ID, number="INV001", status=STATUS_OPEN, attachment_id=attachment_id
    )


def test_no_attachment_means_no_pdf_and_no_request(mocked):
    assert api_key_client().download_invoice_pdf(_remote("")) is None
    assert len(mocked.calls) == 0


def test_clients_list_and_iteration(mocked):
    mocked.get(
        f"{DEFAULT_BASE_URL}/v2/clients",
        json={"clients": [{"id": "c-1", "name": "A"}], "meta": {"current_page": 1, "next_page": 2}},
        match=[matchers.query_param_matcher({"page": "1", "per_page": "100"}, strict_match=True)],
    )
    mocked.get(
        f"{DEFAULT_BASE_URL}/v2/clients",
        json={
            "clients": [{"id": "c-2", "first_name": "Jane", "last_name": "Doe"}],
            "meta": {"current_page": 2, "next_page": None},
        },
        match=[matchers.query_param_matcher({"page": "2", "per_page": "100"}, strict_match=True)],
    )
    assert [c.name for page in api_key_client().iter_clients() for c in page.items] == ["A", "Jane Doe"]


# Errors ----------------------------------------------------------------------------------------
def test_unauthorized_pauses_every_client_with_the_same_credentials(mocked, tmp_path):
    path = tmp_path / "ratelimit.sqlite3"
    new_secret = "a-new-secret-key-after-regenerate"
    mocked.get(
        f"{INVOICES}/{INVOICE_ID}",
        status=401,
        json=qonto_error("Invalid credentials", code="unauthorized"),
        match=[matchers.header_matcher(API_KEY_AUTH)],
    )
    mocked.get(
        f"{INVOICES}/{INVOICE_ID}",
        json={"client_invoice": invoice()},
        match=[matchers.header_matcher({"Authorization": f"{LOGIN}:{new_secret}"})],
    )

    with pytest.raises(errors.ProviderUnauthorized) as first:
        api_key_client(breaker=SqliteBreaker(path)).get_invoice(INVOICE_ID)
    assert "Invalid credentials" in str(first.value)
    assert TRACE_ID in str(first.value)
    assert "paused" in str(first.value)

    # Another worker (new client, new breaker object on the same file): no request at all.
    with pytest.raises(errors.ProviderConfigurationError, match="paused until the credentials are changed"):
        api_key_client(breaker=SqliteBreaker(path)).list_invoices()
    assert len(mocked.calls) == 1

    # New credentials call again.
    other = QontoClient(login=LOGIN, secret_key=new_secret, breaker=SqliteBreaker(path))
    assert other.get_invoice(INVOICE_ID).remote_id == INVOICE_ID
    assert len(mocked.calls) == 2

    # The breaker stores a fingerprint, never the credentials.
    db = sqlite3.connect(path)
    keys = [row[0] for row in db.execute("SELECT key FROM breakers")]
    db.close()
    assert len(keys) == 1
    assert SECRET not in keys[0]
    assert LOGIN not in keys[0]


def test_resume_lifts_the_pause(mocked):
    breaker = MemoryBreaker()
    mocked.get(f"{INVOICES}/{INVOICE_ID}", status=401, json=qonto_error("Invalid credentials"))
    client = api_key_client(breaker=breaker)
    with pytest.raises(errors.ProviderUnauthorized):
        client.get_invoice(INVOICE_ID)
    with pytest.raises(errors.ProviderConfigurationError):
        client.get_invoice(INVOICE_ID)

    client.resume()
    mocked.replace(responses.GET, f"{INVOICES}/{INVOICE_ID}", json={"client_invoice": invoice()})
    assert client.get_invoice(INVOICE_ID).remote_id == INVOICE_ID


def test_oauth_401_pauses_that_access_token(mocked):
    mocked.get(f"{INVOICES}/{INVOICE_ID}", status=401, json=qonto_error("Token revoked"))
    client = oauth_client(expires_in=timedelta(hours=1))
    with pytest.raises(errors.ProviderUnauthorized):
        client.get_invoice(INVOICE_ID)
    with pytest.raises(errors.ProviderConfigurationError, match="paused"):
        client.get_invoice(INVOICE_ID)
    assert len(mocked.calls) == 1


def test_forbidden_scope_does_not_pause(mocked):
    mocked.get(
        f"{INVOICES}/{INVOICE_ID}",
        status=403,
        json=qonto_error("missing required OAuth scope: client_invoices.read", code="forbidden"),
    )
    client = api_key_client()
    for _ in range(2):
        with pytest.raises(errors.ProviderUnauthorized, match="missing required OAuth scope"):
            client.get_invoice(INVOICE_ID)
    assert len(mocked.calls) == 2


def test_not_found(mocked):
    mocked.get(
        f"{INVOICES}/missing", status=404, json=qonto_error("Client invoice not found", code="not_found")
    )
    with pytest.raises(errors.ProviderNotFound, match="Client invoice not found") as excinfo:
        api_key_client().get_invoice("missing")
    assert excinfo.value.status_code == 404


def test_validation_error_names_the_field_and_carries_the_trace_id(mocked):
    body = qonto_error("paid_at cannot be in the future", code="invalid_body", pointer="/paid_at")
    mocked.post(f"{INVOICES}/{INVOICE_ID}/mark_as_paid", status=422, json=body)
    with pytest.raises(errors.ProviderValidationError) as excinfo:
        api_key_client().mark_paid(INVOICE_ID, date(2024, 12, 15))

    error = excinfo.value
    assert str(error) == f"paid_at cannot be in the future (trace id {TRACE_ID})"
    assert error.trace_id == TRACE_ID
    assert error.details == body["errors"]
    assert len(mocked.calls) == 1


def test_validation_error_prefixes_a_field_the_detail_does_not_name(mocked):
    body = qonto_error("must be EUR", pointer="/data/attributes/currency")
    mocked.get(f"{INVOICES}/{INVOICE_ID}", status=422, json=body)
    with pytest.raises(errors.ProviderValidationError, match=r"^currency: must be EUR"):
        api_key_client().get_invoice(INVOICE_ID)


def test_trace_id_from_the_header_when_the_body_has_none(mocked):
    mocked.get(
        f"{INVOICES}/{INVOICE_ID}", status=400, body="Bad Request", headers={"X-Tyk-Trace-Id": "tyk-1"}
    )
    with pytest.raises(errors.ProviderValidationError) as excinfo:
        api_key_client().get_invoice(INVOICE_ID)
    assert str(excinfo.value) == "The provider refused the data. (trace id tyk-1)"


def test_flat_error_body(mocked):
    mocked.post(
        f"{INVOICES}/{INVOICE_ID}/mark_as_paid",
        status=428,
        json={"code": "sca_not_enrolled", "message": "Strong customer authentication is required"},
    )
    with pytest.raises(errors.ProviderError, match="Strong customer authentication") as excinfo:
        api_key_client().mark_paid(INVOICE_ID, date(2024, 12, 15))
    assert excinfo.value.details == {
        "code": "sca_not_enrolled",
        "message": "Strong customer authentication is required",
    }


def test_rate_limited_carries_retry_after_and_is_not_retried(mocked, sleeps):
    mocked.get(INVOICES, status=429, headers={"Retry-After": "7"}, json=qonto_error("Too many requests"))
    with pytest.raises(errors.ProviderRateLimited) as excinfo:
        api_key_client().list_invoices()
    assert excinfo.value.retry_after == 7.0
    assert excinfo.value.retryable
    assert len(mocked.calls) == 1
    assert sleeps == []


def test_server_error_on_a_read_is_retried(mocked, sleeps):
    mocked.get(f"{INVOICES}/{INVOICE_ID}", status=502, body="Bad gateway")
    with pytest.raises(errors.ProviderServerError):
        api_key_client().get_invoice(INVOICE_ID)
    assert len(mocked.calls) == 3
    assert len(sleeps) == 2


def test_server_error_then_success_on_a_read(mocked):
    mocked.get(f"{INVOICES}/{INVOICE_ID}", status=503)
    mocked.get(f"{INVOICES}/{INVOICE_ID}", json={"client_invoice": invoice()})
    assert api_key_client().get_invoice(INVOICE_ID).remote_id == INVOICE_ID
    assert len(mocked.calls) == 2


def test_server_error_on_a_write_is_not_retried(mocked, sleeps):
    mocked.post(f"{INVOICES}/{INVOICE_ID}/mark_as_paid", status=500, json=qonto_error("Internal error"))
    with pytest.raises(errors.ProviderServerError) as excinfo:
        api_key_client().mark_paid(INVOICE_ID, date(2024, 12, 15))
    assert excinfo.value.outcome_unknown
    assert len(mocked.calls) == 1
    assert sleeps == []


def test_timeout_on_a_write_is_outcome_unknown_and_not_retried(mocked):
    mocked.post(f"{INVOICES}/bulk", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(errors.ProviderTimeout) as excinfo:
        api_key_client().import_invoices([PdfFile("a.pdf", PDF)])
    assert excinfo.value.outcome_unknown
    assert len(mocked.calls) == 1


def test_timeout_on_a_read_is_retried(mocked):
    mocked.get(INVOICES, body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(errors.ProviderTimeout):
        api_key_client().list_invoices()
    assert len(mocked.calls) == 3


def test_connection_error(mocked):
    mocked.get(INVOICES, body=requests.exceptions.ConnectionError("reset"))
    with pytest.raises(errors.ProviderConnectionError):
        api_key_client(read_retries=0).list_invoices()
    assert len(mocked.calls) == 1


def test_malformed_json(mocked):
    mocked.get(f"{INVOICES}/{INVOICE_ID}", body='{"client_invoice": {', content_type="application/json")
    with pytest.raises(errors.ProviderBadResponse):
        api_key_client().get_invoice(INVOICE_ID)


def test_inconsistent_amounts_are_a_bad_response(mocked):
    mocked.get(f"{INVOICES}/{INVOICE_ID}", json={"client_invoice": invoice(total_amount_cents=1)})
    with pytest.raises(errors.ProviderBadResponse, match="INV001"):
        api_key_client().get_invoice(INVOICE_ID)


def test_no_secret_in_error_messages_even_when_echoed(mocked):
    mocked.get(
        f"{INVOICES}/{INVOICE_ID}",
        status=401,
        json=qonto_error(f"Unknown key {LOGIN}:{SECRET}"),
    )
    with pytest.raises(errors.ProviderUnauthorized) as excinfo:
        api_key_client().get_invoice(INVOICE_ID)
    assert SECRET not in str(excinfo.value)
    assert SECRET not in repr(excinfo.value.args)


# Breaker backends ------------------------------------------------------------------------------
@pytest.fixture
def redis_url(tmp_path):
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    socket = tmp_path / "redis.sock"
    process = subprocess.Popen(
        [server, "--port", "0", "--unixsocket", str(socket), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        yield f"unix://{socket}"
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_redis_breaker(redis_url):
    breaker = breaker_from_url(redis_url)
    assert isinstance(breaker, RedisBreaker)
    assert not breaker.is_open("qonto:abc")
    breaker.trip("qonto:abc", 60)
    assert breaker_from_url(redis_url).is_open("qonto:abc")
    assert 0 < breaker.redis.ttl("breaker:qonto:abc") <= 60
    breaker.reset("qonto:abc")
    assert not breaker.is_open("qonto:abc")


def test_redis_breaker_pauses_across_clients(mocked, redis_url):
    mocked.get(f"{INVOICES}/{INVOICE_ID}", status=401, json=qonto_error("Invalid credentials"))
    with pytest.raises(errors.ProviderUnauthorized):
        api_key_client(breaker=breaker_from_url(redis_url)).get_invoice(INVOICE_ID)
    with pytest.raises(errors.ProviderConfigurationError):
        api_key_client(breaker=breaker_from_url(redis_url)).get_invoice(INVOICE_ID)
    assert len(mocked.calls) == 1


def test_sqlite_breaker_expires(tmp_path, monkeypatch):
    breaker = breaker_from_url(f"sqlite:///{tmp_path}/limits.sqlite3")
    assert isinstance(breaker, SqliteBreaker)
    breaker.trip("k", 30)
    assert breaker.is_open("k")
    later = time.time() + 31
    monkeypatch.setattr("integrations.breaker.time.time", lambda: later)
    assert not breaker.is_open("k")


def test_breaker_from_url_off_and_unknown():
    assert breaker_from_url("") is None
    assert breaker_from_url("off") is None
    with pytest.raises(ValueError):
        breaker_from_url("memcached://localhost")

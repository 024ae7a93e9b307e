"""Qonto over real HTTP: auth and the staging gate, listing filters, mark as paid, bulk import,
attachments, clients, JSON:API errors and rate limits."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests

from integrations.sandbox import SandboxServer, times

from .conftest import QONTO_KEY_AUTH, QONTO_TOKEN_AUTH, TIMEOUT, pdf

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def get(sandbox, path: str, headers=QONTO_KEY_AUTH, **params) -> requests.Response:
    return requests.get(f"{sandbox.qonto_base_url}{path}", params=params, headers=headers, timeout=TIMEOUT)


def post(sandbox, path: str, headers=QONTO_KEY_AUTH, **kwargs) -> requests.Response:
    return requests.post(f"{sandbox.qonto_base_url}{path}", headers=headers, timeout=TIMEOUT, **kwargs)


def assert_jsonapi_error(response: requests.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"errors", "trace_id"}
    assert re.fullmatch(r"[0-9a-f]{32}", body["trace_id"])
    assert response.headers["X-Tyk-Trace-Id"] == body["trace_id"]
    error = body["errors"][0]
    assert {"code", "detail"} <= set(error)
    if code:
        assert error["code"] == code
    return error


def seeded_invoice(sandbox, status: str):
    if not sandbox.state.data.qonto_invoices:
        sandbox.state.seed(invoices=200, seed=3)
    return next(inv for inv in sandbox.state.data.qonto_invoices.values() if inv.status == status)


@pytest.mark.parametrize("headers", [QONTO_KEY_AUTH, QONTO_TOKEN_AUTH])
def test_both_auth_schemes_are_accepted(sandbox, headers):
    response = get(sandbox, "/v2/client_invoices", headers=headers)
    assert response.status_code == 200
    assert response.json() == {
        "client_invoices": [],
        "meta": {
            "current_page": 1,
            "next_page": None,
            "prev_page": None,
            "total_pages": 0,
            "total_count": 0,
            "per_page": 100,
        },
    }


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "sandbox-org:wrong"},
        {"Authorization": "Basic sandbox-org:sandbox-secret"},
        {"Authorization": "Bearer sandbox-org:sandbox-secret"},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "sandbox-qonto-token"},
    ],
)
def test_bad_credentials_get_a_jsonapi_401(sandbox, headers):
    assert_jsonapi_error(get(sandbox, "/v2/client_invoices", headers=headers), 401, "unauthorized")


def test_required_staging_token_missing_gives_the_html_login_page():
    with SandboxServer(qonto_staging_token="stg-123") as sandbox:
        for headers in (QONTO_KEY_AUTH, {**QONTO_KEY_AUTH, "X-Qonto-Staging-Token": "other"}):
            response = get(sandbox, "/v2/client_invoices", headers=headers)
            assert response.status_code == 200
            assert response.headers["Content-Type"].startswith("text/html")
            assert "<html" in response.text
        ok = get(
            sandbox, "/v2/client_invoices", headers={**QONTO_KEY_AUTH, "X-Qonto-Staging-Token": "stg-123"}
        )
        assert ok.status_code == 200
        assert "client_invoices" in ok.json()


def test_invoice_shape(sandbox):
    invoice = seeded_invoice(sandbox, "paid")
    body = get(sandbox, f"/v2/client_invoices/{invoice.id}").json()
    assert set(body) == {"client_invoice"}
    data = body["client_invoice"]
    assert UUID.fullmatch(data["id"])
    assert data["status"] == "paid"
    assert data["total_amount"] == {"value": str(invoice.total), "currency": "EUR"}
    assert data["total_amount_cents"] == int(invoice.total * 100)
    assert Decimal(data["vat_amount"]["value"]) * 100 == data["vat_amount_cents"]
    assert data["currency"] == "EUR"
    for name in ("created_at", "updated_at", "finalized_at", "paid_at"):
        assert datetime.fromisoformat(data[name]).tzinfo is not None
    assert {"id", "name", "email", "billing_address"} <= set(data["client"])
    assert UUID.fullmatch(data["attachment_id"])
    assert data["items"][0]["total_amount"] == data["total_amount"]
    assert {"organization_id", "number", "invoice_url", "issue_date", "due_date"} <= set(data)


def test_list_pages_and_meta(sandbox):
    sandbox.state.seed(invoices=45, seed=1)
    first = get(sandbox, "/v2/client_invoices", per_page=20).json()
    assert first["meta"] == {
        "current_page": 1,
        "next_page": 2,
        "prev_page": None,
        "total_pages": 3,
        "total_count": 45,
        "per_page": 20,
    }
    last = get(sandbox, "/v2/client_invoices", per_page=20, page=3).json()
    assert len(last["client_invoices"]) == 5
    assert (last["meta"]["next_page"], last["meta"]["prev_page"]) == (None, 2)
    created = [row["created_at"] for row in first["client_invoices"]]
    assert created == sorted(created, reverse=True)  # created_at:desc by default
    ascending = get(sandbox, "/v2/client_invoices", per_page=100, sort_by="created_at:asc").json()
    stamps = [datetime.fromisoformat(row["created_at"]) for row in ascending["client_invoices"]]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize(
    "params",
    [
        {"per_page": 101},
        {"per_page": 0},
        {"page": "x"},
        {"sort_by": "number:asc"},
        {"filter[updated_at_from]": "soon"},
    ],
)
def test_bad_list_parameters_are_422(sandbox, params):
    error = assert_jsonapi_error(get(sandbox, "/v2/client_invoices", **params), 422)
    assert "parameter" in error["source"]


def test_filter_by_status(sandbox):
    sandbox.state.seed(invoices=200, seed=2)
    body = get(sandbox, "/v2/client_invoices", **{"filter[status]": "paid,canceled"}).json()
    expected = [
        inv for inv in sandbox.state.data.qonto_invoices.values() if inv.status in ("paid", "canceled")
    ]
    assert {row["status"] for row in body["client_invoices"]} == {"paid", "canceled"}
    assert body["meta"]["total_count"] == len(expected)
    drafts = get(sandbox, "/v2/client_invoices", **{"filter[status]": "draft"}).json()["client_invoices"]
    assert drafts
    assert all(row["status"] == "draft" and row["number"] is None for row in drafts)


def test_filter_by_updated_at_window_is_inclusive(sandbox):
    sandbox.state.seed(invoices=50, seed=4)
    before = datetime.now(UTC)
    target = seeded_invoice(sandbox, "unpaid")
    marked = post(sandbox, f"/v2/client_invoices/{target.id}/mark_as_paid", json={}).json()["client_invoice"]
    updated = datetime.fromisoformat(marked["updated_at"])
    assert updated >= before.replace(microsecond=before.microsecond // 1000 * 1000)

    window = {
        "filter[updated_at_from]": before.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "filter[updated_at_to]": (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sort_by": "updated_at:asc",
    }
    rows = get(sandbox, "/v2/client_invoices", **window).json()["client_invoices"]
    assert [row["id"] for row in rows] == [target.id]
    exact = {"filter[updated_at_from]": marked["updated_at"], "filter[updated_at_to]": marked["updated_at"]}
    assert [row["id"] for row in get(sandbox, "/v2/client_invoices", **exact).json()["client_invoices"]] == [
        target.id
    ]

    old = {"filter[created_at_to]": (before - timedelta(days=200)).isoformat()}
    rows = get(sandbox, "/v2/client_invoices", **old).json()["client_invoices"]
    assert rows
    assert all(datetime.fromisoformat(row["created_at"]) <= before - timedelta(days=200) for row in rows)


def test_list_reflects_changes_made_since_the_previous_list(sandbox):
    sandbox.state.seed(invoices=40, seed=5)
    newest_first = {"sort_by": "updated_at:desc", "filter[status]": "paid"}
    before = get(sandbox, "/v2/client_invoices", **newest_first).json()["client_invoices"]
    target = seeded_invoice(sandbox, "unpaid")
    post(sandbox, f"/v2/client_invoices/{target.id}/mark_as_paid", json={})
    after = get(sandbox, "/v2/client_invoices", **newest_first).json()["client_invoices"]
    assert [row["id"] for row in after] == [target.id, *(row["id"] for row in before)]

    sandbox.state.remove_qonto_invoice(target.id)
    again = get(sandbox, "/v2/client_invoices", **newest_first).json()["client_invoices"]
    assert [row["id"] for row in again] == [row["id"] for row in before]


def test_mark_as_paid_today_by_default_and_updates_paid_invoices(sandbox):
    invoice = seeded_invoice(sandbox, "unpaid")
    url = f"/v2/client_invoices/{invoice.id}/mark_as_paid"
    first = post(sandbox, url)
    assert first.status_code == 200
    data = first.json()["client_invoice"]
    assert data["status"] == "paid"
    assert datetime.fromisoformat(data["paid_at"]).date() == times.paris_today()

    again = post(sandbox, url, json={"paid_at": "2026-01-15"}).json()["client_invoice"]
    assert again["paid_at"] == "2026-01-15T00:00:00+01:00"
    assert again["updated_at"] > data["updated_at"]


def test_paid_at_in_the_future_is_refused(sandbox):
    invoice = seeded_invoice(sandbox, "unpaid")
    tomorrow = (times.paris_today() + timedelta(days=1)).isoformat()
    error = assert_jsonapi_error(
        post(sandbox, f"/v2/client_invoices/{invoice.id}/mark_as_paid", json={"paid_at": tomorrow}), 422
    )
    assert error["source"] == {"pointer": "/paid_at"}
    assert sandbox.state.data.qonto_invoices[invoice.id].status == "unpaid"


@pytest.mark.parametrize("paid_at", ["15/12/2024", "2024-04-31", "2024-12-15T10:00:00"])
def test_paid_at_must_be_a_date(sandbox, paid_at):
    invoice = seeded_invoice(sandbox, "unpaid")
    response = post(sandbox, f"/v2/client_invoices/{invoice.id}/mark_as_paid", json={"paid_at": paid_at})
    assert assert_jsonapi_error(response, 422)["source"] == {"pointer": "/paid_at"}


@pytest.mark.parametrize("status", ["draft", "canceled"])
def test_only_unpaid_or_paid_invoices_can_be_marked_paid(sandbox, status):
    invoice = seeded_invoice(sandbox, status)
    assert_jsonapi_error(
        post(sandbox, f"/v2/client_invoices/{invoice.id}/mark_as_paid"), 422, "invalid_status"
    )
    assert sandbox.state.data.qonto_invoices[invoice.id].status == status


def test_unknown_ids_are_jsonapi_404(sandbox):
    missing = "00000000-0000-4000-8000-000000000000"
    for response in (
        get(sandbox, f"/v2/client_invoices/{missing}"),
        post(sandbox, f"/v2/client_invoices/{missing}/mark_as_paid"),
        get(sandbox, f"/v2/attachments/{missing}"),
        get(sandbox, f"/v2/clients/{missing}"),
        get(sandbox, "/v2/nothing"),
    ):
        assert_jsonapi_error(response, 404, "not_found")


def bulk(sandbox, *files, headers=None) -> requests.Response:
    return post(
        sandbox,
        "/v2/client_invoices/bulk",
        headers={**QONTO_KEY_AUTH, **(headers or {})},
        files=[("client_invoices", (name, content, "application/pdf")) for name, content in files],
    )


def test_bulk_import_reads_the_pdf_and_is_idempotent(sandbox):
    document = pdf("F-2026-0099", "240.00", customer="Boulangerie Martin SAS")
    response = bulk(sandbox, ("facture-99.pdf", document), ("scan.pdf", pdf("F-2026-0100", "10.00")))
    assert response.status_code == 200
    results = response.json()["client_invoices"]
    assert [row["file_name"] for row in results] == ["facture-99.pdf", "scan.pdf"]
    invoice = get(sandbox, f"/v2/client_invoices/{results[0]['invoice_id']}").json()["client_invoice"]
    assert invoice == {
        **invoice,
        "number": "F-2026-0099",
        "status": "unpaid",
        "total_amount": {"value": "240.00", "currency": "EUR"},
        "total_amount_cents": 24000,
        "issue_date": "2026-11-01",
    }
    assert invoice["client"]["name"] == "Boulangerie Martin SAS"

    attachment = get(sandbox, f"/v2/attachments/{invoice['attachment_id']}").json()["attachment"]
    assert attachment == {
        **attachment,
        "id": invoice["attachment_id"],
        "file_name": "facture-99.pdf",
        "file_size": str(len(document)),
        "file_content_type": "application/pdf",
    }
    assert requests.get(attachment["url"], timeout=TIMEOUT).content == document

    again = bulk(sandbox, ("renamed.pdf", document))
    assert again.json()["client_invoices"] == [
        {"invoice_id": results[0]["invoice_id"], "file_name": "renamed.pdf"}
    ]
    assert len(sandbox.state.data.qonto_invoices) == 2


def test_bulk_import_falls_back_when_the_pdf_says_nothing(sandbox):
    result = bulk(sandbox, ("INV-77.pdf", b"%PDF-1.4\n%%EOF\n")).json()["client_invoices"][0]
    invoice = get(sandbox, f"/v2/client_invoices/{result['invoice_id']}").json()["client_invoice"]
    assert invoice["number"] == "INV-77"
    assert invoice["total_amount"] == {"value": "0.00", "currency": "EUR"}
    assert invoice["issue_date"] == times.paris_today().isoformat()
    assert invoice["client"] is None


def test_idempotency_key_replays_the_first_answer(sandbox):
    key = {"X-Qonto-Idempotency-Key": "7b0f3f9e-4c55-4d8e-9a56-1b0c7c0f0001"}
    first = bulk(sandbox, ("a.pdf", pdf("A-1")), headers=key)
    second = bulk(sandbox, ("b.pdf", pdf("B-2")), headers=key)  # a different body: still the first answer
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert len(sandbox.state.data.qonto_invoices) == 1
    other = bulk(sandbox, ("b.pdf", pdf("B-2")), headers={"X-Qonto-Idempotency-Key": "another"})
    assert other.json() != first.json()
    assert len(sandbox.state.data.qonto_invoices) == 2


def test_failed_answers_are_not_cached_for_an_idempotency_key(sandbox):
    key = {"X-Qonto-Idempotency-Key": "k-1"}
    assert bulk(sandbox, ("a.txt", b"plain text"), headers=key).status_code == 422
    assert bulk(sandbox, ("a.pdf", pdf("A-1")), headers=key).status_code == 200


def test_bulk_import_is_all_or_nothing(sandbox):
    response = bulk(sandbox, ("good.pdf", pdf("G-1")), ("photo.png", b"\x89PNG\r\n"))
    error = assert_jsonapi_error(response, 422, "invalid_file_type")
    assert error["source"] == {"pointer": "/client_invoices/1"}
    assert not sandbox.state.data.qonto_invoices


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ([], "missing_file"),
        ([(f"{n}.pdf", pdf(str(n))) for n in range(6)], "too_many_files"),
        ([("big.pdf", b"%PDF" + b"0" * (5 * 1024 * 1024))], "file_too_large"),
    ],
)
def test_bulk_import_limits(sandbox, files, code):
    if files:
        response = bulk(sandbox, *files)
    else:
        response = post(sandbox, "/v2/client_invoices/bulk", files={"other": ("x.pdf", pdf())})
    assert_jsonapi_error(response, 422, code)
    assert not sandbox.state.data.qonto_invoices


def test_attachment_url_expires():
    with SandboxServer(qonto_attachment_url_seconds=0) as sandbox:
        invoice = seeded_invoice(sandbox, "paid")
        attachment = get(sandbox, f"/v2/attachments/{invoice.attachment_id}").json()["attachment"]
        assert requests.get(attachment["url"], timeout=TIMEOUT).status_code == 403


def test_clients_list_and_get(sandbox):
    sandbox.state.seed(customers=12, invoices=0)
    body = get(sandbox, "/v2/clients", per_page=5).json()
    assert len(body["clients"]) == 5
    assert body["meta"]["total_count"] == 12
    client = body["clients"][0]
    assert UUID.fullmatch(client["id"])
    assert get(sandbox, f"/v2/clients/{client['id']}").json() == {"client": client}
    by_name = get(sandbox, "/v2/clients", **{"filter[name]": client["name"][:6]}).json()["clients"]
    assert client["id"] in [row["id"] for row in by_name]


def test_rate_limits_answer_429_with_retry_after():
    with SandboxServer(qonto_requests_per_10s=3) as sandbox:
        assert [get(sandbox, "/v2/clients").status_code for _ in range(3)] == [200, 200, 200]
        refused = get(sandbox, "/v2/clients")
        assert_jsonapi_error(refused, 429, "too_many_requests")
        assert 1 <= int(refused.headers["Retry-After"]) <= 10
        sandbox.config.rate_limit = False
        assert get(sandbox, "/v2/clients").status_code == 200

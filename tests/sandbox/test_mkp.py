"""MijnKlantportaal over real HTTP: auth, paging, the invoice lifecycle, validation, limits."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from integrations.sandbox import SandboxServer

from .conftest import MKP_AUTH, TIMEOUT, pdf


def first_customer(sandbox) -> str:
    if not sandbox.state.data.mkp_customers:
        sandbox.state.seed(customers=3, invoices=0)
    return next(iter(sandbox.state.data.mkp_customers))


def create(sandbox, *, pdf_bytes: bytes | None = None, **fields) -> requests.Response:
    data = {
        "customerId": first_customer(sandbox),
        "invoiceNumber": "2026-001",
        "issuedAt": "2026-11-01",
        "amount": "12.95",
        "sendNotification": "false",
        **fields,
    }
    data = {name: value for name, value in data.items() if value is not None}
    files = {"pdf": ("2026-001.pdf", pdf() if pdf_bytes is None else pdf_bytes, "application/pdf")}
    return requests.post(
        f"{sandbox.mkp_base_url}/customer-invoices", data=data, files=files, headers=MKP_AUTH, timeout=TIMEOUT
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": "sandbox-mkp-key"},
        {"Authorization": "Basic x"},
    ],
)
def test_requests_without_the_key_are_refused(sandbox, headers):
    response = requests.get(f"{sandbox.mkp_base_url}/customer-invoices", headers=headers, timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthenticated."}


def test_list_pages_15_at_a_time_oldest_first(sandbox):
    sandbox.state.seed(invoices=31, customers=4)
    expected_ids = list(sandbox.state.data.mkp_order)
    url = f"{sandbox.mkp_base_url}/customer-invoices"
    pages, seen = [], []
    while url:
        body = requests.get(url, headers={**MKP_AUTH, "Host": "sandbox.test:1234"}, timeout=TIMEOUT).json()
        pages.append(body)
        seen += [row["id"] for row in body["data"]]
        url = body["next_page_url"] and body["next_page_url"].replace(
            "sandbox.test:1234", f"127.0.0.1:{sandbox.port}"
        )
    assert [len(p["data"]) for p in pages] == [15, 15, 1]
    assert seen == expected_ids
    base = "http://sandbox.test:1234/mkp/v1/customer-invoices"
    assert pages[0] == {**pages[0], "current_page": 1, "from": 1, "to": 15, "per_page": 15, "path": base}
    assert pages[0]["first_page_url"] == f"{base}?page=1"
    assert pages[0]["prev_page_url"] is None
    assert pages[0]["next_page_url"] == f"{base}?page=2"
    assert (pages[2]["from"], pages[2]["to"], pages[2]["next_page_url"]) == (31, 31, None)
    assert pages[2]["prev_page_url"] == f"{base}?page=2"
    assert set(pages[0]) == {
        "current_page", "data", "first_page_url", "from", "next_page_url", "path", "per_page", "prev_page_url", "to",
    }  # fmt: skip
    empty = requests.get(
        f"{sandbox.mkp_base_url}/customer-invoices?page=9", headers=MKP_AUTH, timeout=TIMEOUT
    ).json()
    assert (empty["data"], empty["from"], empty["to"], empty["next_page_url"]) == ([], None, None, None)


def test_create_get_mark_paid_and_download(sandbox):
    document = pdf("2026-007", "99.50")
    response = create(
        sandbox, invoiceNumber="2026-007", amount="99.5", dueAt="2026-12-01", pdf_bytes=document
    )
    assert response.status_code == 201
    invoice = response.json()
    assert re.fullmatch(r"inv_[a-z0-9]{14}", invoice["id"])
    assert invoice == {
        **invoice,
        "invoiceNumber": "2026-007",
        "issuedAt": "2026-11-01",
        "dueAt": "2026-12-01",
        "currency": "EUR",
        "amount": "99.50",
        "paidAt": None,
    }
    base = f"http://127.0.0.1:{sandbox.port}"
    assert invoice["links"]["customer"] == {
        "href": f"{base}/mkp/v1/customers/{invoice['customerId']}",
        "type": "application/json",
    }
    assert invoice["links"]["onlinePaymentLink"]["type"] == "text/html"
    assert requests.get(invoice["links"]["onlinePaymentLink"]["href"], timeout=TIMEOUT).status_code == 200
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00", invoice["createdAt"])

    url = f"{sandbox.mkp_base_url}/customer-invoices/{invoice['id']}"
    assert requests.get(url, headers=MKP_AUTH, timeout=TIMEOUT).json() == invoice

    paid = requests.patch(url, json={"paidAt": "2026-07-01 14:30:00"}, headers=MKP_AUTH, timeout=TIMEOUT)
    assert paid.status_code == 200
    assert paid.json()["paidAt"] == "2026-07-01T14:30:00+02:00"  # summer time in Amsterdam
    winter = requests.patch(url, json={"paidAt": "2026-01-05 09:00:00"}, headers=MKP_AUTH, timeout=TIMEOUT)
    assert winter.json()["paidAt"] == "2026-01-05T09:00:00+01:00"

    link = requests.get(f"{url}/pdf", headers=MKP_AUTH, timeout=TIMEOUT).json()
    assert set(link) == {"link", "expiresAt"}
    assert link["link"].startswith(f"{base}/")
    download = requests.get(link["link"], timeout=TIMEOUT)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.content == document


def test_seeded_invoices_get_a_pdf_on_download(sandbox):
    sandbox.state.seed(invoices=2)
    invoice_id = sandbox.state.data.mkp_order[0]
    invoice = sandbox.state.data.mkp_invoices[invoice_id]
    link = requests.get(
        f"{sandbox.mkp_base_url}/customer-invoices/{invoice_id}/pdf", headers=MKP_AUTH, timeout=TIMEOUT
    ).json()
    content = requests.get(link["link"], timeout=TIMEOUT).content
    assert content.startswith(b"%PDF")
    assert f"Invoice number: {invoice.invoice_number}".encode() in content


def test_pdf_link_expires():
    with SandboxServer(mkp_pdf_link_seconds=0) as sandbox:
        invoice = create(sandbox).json()
        link = requests.get(
            f"{sandbox.mkp_base_url}/customer-invoices/{invoice['id']}/pdf", headers=MKP_AUTH, timeout=TIMEOUT
        ).json()
        time.sleep(0.01)  # links end on a whole second: with 0 seconds, already past
        assert requests.get(link["link"], timeout=TIMEOUT).status_code == 403


def test_create_with_paid_at_and_notification(sandbox):
    response = create(sandbox, paidAt="2026-03-29 02:30:00", sendNotification="true")
    assert response.status_code == 201
    # 02:30 does not exist that night (clocks go forward): read as the zone database does.
    assert response.json()["paidAt"].startswith("2026-03-29T0")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"customerId": None}, "The customer id field is required."),
        ({"customerId": "cst_doesnotexist00"}, "The selected customer id is invalid."),
        ({"invoiceNumber": ""}, "The invoice number field is required."),
        ({"issuedAt": None}, "The issued at field is required."),
        ({"issuedAt": "2024-04-31"}, "The issued at field must match the format Y-m-d."),
        ({"issuedAt": "01-11-2026"}, "The issued at field must match the format Y-m-d."),
        ({"dueAt": "2026-02-30"}, "The due at field must match the format Y-m-d."),
        ({"amount": None}, "The amount field is required."),
        ({"amount": "12,95"}, "The amount field format is invalid."),
        ({"amount": "12.955"}, "The amount field format is invalid."),
        ({"amount": "-5.00"}, "The amount field format is invalid."),
        ({"paidAt": "2026-11-01"}, "The paid at field must match the format Y-m-d H:i:s."),
        ({"paidAt": "2026-11-01T10:00:00"}, "The paid at field must match the format Y-m-d H:i:s."),
        ({"paidAt": "2024-04-31 14:00:00"}, "The paid at field must match the format Y-m-d H:i:s."),
        ({"sendNotification": "yes"}, "The send notification field must be true or false."),
        (
            {"amount": "12,95", "issuedAt": "2024-04-31"},
            "The issued at field must match the format Y-m-d. (and 1 more error)",
        ),
    ],
)
def test_bad_fields_are_refused(sandbox, fields, message):
    response = create(sandbox, **fields)
    assert response.status_code == 422
    assert response.json() == {"message": message}
    assert not sandbox.state.data.mkp_invoices


def test_file_must_be_a_pdf(sandbox):
    response = create(sandbox, pdf_bytes=b"GIF89a not a pdf")
    assert (response.status_code, response.json()) == (
        422,
        {"message": "The pdf field must be a file of type: pdf."},
    )
    no_file = requests.post(
        f"{sandbox.mkp_base_url}/customer-invoices",
        json={
            "customerId": first_customer(sandbox),
            "invoiceNumber": "1",
            "issuedAt": "2026-11-01",
            "amount": "1",
        },
        headers=MKP_AUTH,
        timeout=TIMEOUT,
    )
    assert (no_file.status_code, no_file.json()) == (422, {"message": "The pdf field is required."})


@pytest.mark.parametrize(
    "body", [{}, {"paidAt": None}, {"paidAt": "2024-04-31 14:00:00"}, {"paidAt": "1 May"}]
)
def test_mark_paid_needs_a_valid_moment(sandbox, body):
    invoice = create(sandbox).json()
    response = requests.patch(
        f"{sandbox.mkp_base_url}/customer-invoices/{invoice['id']}",
        json=body,
        headers=MKP_AUTH,
        timeout=TIMEOUT,
    )
    assert response.status_code == 422
    assert set(response.json()) == {"message"}
    assert sandbox.state.data.mkp_invoices[invoice["id"]].paid_at is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/customer-invoices/inv_unknown0000000"),
        ("PATCH", "/customer-invoices/inv_unknown0000000"),
        ("GET", "/customer-invoices/inv_unknown0000000/pdf"),
        ("GET", "/customers/cst_unknown0000000"),
    ],
)
def test_unknown_ids_are_404(sandbox, method, path):
    response = requests.request(
        method,
        f"{sandbox.mkp_base_url}{path}",
        json={"paidAt": "2026-01-01 00:00:00"},
        headers=MKP_AUTH,
        timeout=TIMEOUT,
    )
    assert response.status_code == 404
    assert set(response.json()) == {"message"}
    assert response.headers["X-RateLimit-Limit"] == "60"


def test_concurrent_creates_are_all_kept(sandbox):
    first_customer(sandbox)
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda n: create(sandbox, invoiceNumber=f"C-{n}"), range(40)))
    assert [r.status_code for r in responses] == [201] * 40
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 40
    assert ids == set(sandbox.state.data.mkp_order) == set(sandbox.state.data.mkp_invoices)


def test_customers_list_and_get(sandbox):
    sandbox.state.seed(customers=16, invoices=0)
    body = requests.get(f"{sandbox.mkp_base_url}/customers", headers=MKP_AUTH, timeout=TIMEOUT).json()
    assert len(body["data"]) == 15
    assert body["next_page_url"].endswith("/mkp/v1/customers?page=2")
    customer = body["data"][0]
    assert re.fullmatch(r"cst_[a-z0-9]{14}", customer["id"])
    assert set(customer) >= {
        "companyName",
        "address",
        "zipCode",
        "city",
        "countryCode",
        "primaryEmail",
        "createdAt",
    }
    one = requests.get(
        f"{sandbox.mkp_base_url}/customers/{customer['id']}", headers=MKP_AUTH, timeout=TIMEOUT
    )
    assert one.json() == customer


def test_duplicate_numbers_are_accepted_unless_refused_by_flag(sandbox):
    assert create(sandbox, invoiceNumber="DUP-1").status_code == 201
    assert create(sandbox, invoiceNumber="DUP-1").status_code == 201
    assert requests.get(f"{sandbox.admin_url}/stats", timeout=TIMEOUT).json()["duplicates"]["mkp"] == {
        "DUP-1": 2
    }

    sandbox.config.mkp_unique_numbers = True
    refused = create(sandbox, invoiceNumber="DUP-1")
    assert (refused.status_code, refused.json()) == (
        422,
        {"message": "The invoice number has already been taken."},
    )


def test_license_limit_answers_426():
    with SandboxServer(mkp_license_limit=2) as sandbox:
        assert [create(sandbox, invoiceNumber=str(n)).status_code for n in range(2)] == [201, 201]
        response = create(sandbox, invoiceNumber="3")
        assert response.status_code == 426
        assert response.json() == {"message": "The amount of invoices this month reached the license's limit"}
        assert len(sandbox.state.data.mkp_invoices) == 2


def test_rate_limit_is_60_a_minute_per_key(sandbox):
    url = f"{sandbox.mkp_base_url}/customers"
    remaining = []
    with requests.Session() as session:
        for _ in range(60):
            response = session.get(url, headers=MKP_AUTH, timeout=TIMEOUT)
            assert response.status_code == 200
            assert response.headers["X-RateLimit-Limit"] == "60"
            remaining.append(int(response.headers["X-RateLimit-Remaining"]))
        refused = session.get(url, headers=MKP_AUTH, timeout=TIMEOUT)
    assert remaining == list(range(59, -1, -1))
    assert refused.status_code == 429
    assert refused.json() == {"code": 429, "message": "Too many requests."}
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert int(refused.headers["x-ratelimit-reset"]) >= int(time.time())
    assert refused.headers["X-RateLimit-Remaining"] == "0"


def test_rate_limit_can_be_switched_off():
    with SandboxServer(rate_limit=False, mkp_requests_per_minute=1) as sandbox:
        for _ in range(3):
            response = requests.get(f"{sandbox.mkp_base_url}/customers", headers=MKP_AUTH, timeout=TIMEOUT)
            assert response.status_code == 200
            assert "X-RateLimit-Remaining" not in response.headers


def test_wrong_method_and_unknown_route(sandbox):
    wrong = requests.delete(f"{sandbox.mkp_base_url}/customers", headers=MKP_AUTH, timeout=TIMEOUT)
    assert wrong.status_code == 405
    missing = requests.get(f"{sandbox.mkp_base_url}/nothing-here", headers=MKP_AUTH, timeout=TIMEOUT)
    assert missing.status_code == 404
    assert set(missing.json()) == {"message"}

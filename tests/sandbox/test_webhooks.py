"""Webhooks at the sandbox: MijnKlantportaal's /webhooks records, Qonto's OAuth server and webhook
subscriptions, and the signed deliveries to a receiver, with retries and the webhook faults."""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from integrations.qonto.auth import OAuthTokens
from integrations.sandbox import SandboxServer, Store

from .conftest import MKP_AUTH, QONTO_KEY_AUTH, TIMEOUT, pdf

CALLBACK = "http://127.0.0.1:8000/admin/qonto/connect/callback"
CLIENT = {"client_id": "sandbox-client", "client_secret": "sandbox-client-secret"}
INVOICE_EVENTS = ("invoice-created", "invoice-paid", "invoice-chargeback", "invoice-deleted")
CUSTOMER_EVENTS = ("customer-created", "customer-deleted")


# A receiver of our own ----------------------------------------------------------------------------
class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers ``status``."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[dict] = []
        self.status = 200
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._changed:
                    receiver.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    receiver._changed.notify_all()
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def sandbox():
    with SandboxServer(data_seed=7, webhook_retry_ms=50, webhook_timeout_ms=2_000) as server:
        server.state.seed(invoices=60, seed=5)
        yield server


def admin(sandbox, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{sandbox.admin_url}{path}", timeout=TIMEOUT, **kwargs)


def configure(sandbox, **settings) -> None:
    assert admin(sandbox, "POST", "/config", json=settings).status_code == 200


# Helpers at each provider -----------------------------------------------------------------------
def mkp(sandbox, method: str, path: str, **kwargs) -> requests.Response:
    kwargs.setdefault("headers", MKP_AUTH)
    return requests.request(method, f"{sandbox.mkp_base_url}{path}", timeout=TIMEOUT, **kwargs)


def mkp_register(sandbox, url: str, types=INVOICE_EVENTS + CUSTOMER_EVENTS) -> dict[str, str]:
    """Register ``url`` for each type; returns type -> the record's secret."""
    secrets = {}
    for kind in types:
        response = mkp(sandbox, "POST", "/webhooks", json={"url": url, "type": kind})
        assert response.status_code == 201
        secrets[kind] = response.json()["secret"]
    return secrets


def authorize(sandbox, scope: str = "webhook offline_access", state: str = "state-1234567", **extra):
    params = {
        "client_id": "sandbox-client",
        "redirect_uri": CALLBACK,
        "scope": scope,
        "response_type": "code",
        "state": state,
        **extra,
    }
    return requests.get(
        f"{sandbox.qonto_oauth_url}/auth", params=params, allow_redirects=False, timeout=TIMEOUT
    )


def redirected(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def token(sandbox, **form) -> requests.Response:
    return requests.post(f"{sandbox.qonto_oauth_url}/token", data={**CLIENT, **form}, timeout=TIMEOUT)


def connect(sandbox, scope: str = "webhook offline_access") -> dict:
    code = redirected(authorize(sandbox, scope))["code"]
    response = token(sandbox, grant_type="authorization_code", code=code, redirect_uri=CALLBACK)
    assert response.status_code == 200
    return response.json()


def bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def subscriptions(sandbox, method: str, path: str = "", headers=None, **kwargs) -> requests.Response:
    return requests.request(
        method,
        f"{sandbox.qonto_base_url}/v2/webhook_subscriptions{path}",
        headers=headers,
        timeout=TIMEOUT,
        **kwargs,
    )


def qonto_subscribe(sandbox, url: str, types=("v1/client-invoices", "v1/clients")) -> str:
    """Subscribe ``url``; returns the subscription's secret."""
    response = subscriptions(
        sandbox, "POST", headers=bearer(connect(sandbox)), json={"callback_url": url, "types": list(types)}
    )
    assert response.status_code == 201
    return response.json()["secret"]


def qonto_verifies(delivery: dict, secret: str) -> bool:
    fields = dict(part.split("=", 1) for part in delivery["headers"]["X-Qonto-Signature"].split(","))
    expected = hmac.new(
        secret.encode(), f"{fields['t']}.".encode() + delivery["body"], hashlib.sha256
    ).hexdigest()
    fresh = abs(time.time() - int(fields["t"])) < 300
    return fresh and hmac.compare_digest(fields["v1"], expected)


def unpaid(sandbox, provider: str) -> list[str]:
    data = sandbox.state.data
    if provider == "mkp":
        return [i.id for i in data.mkp_invoices.values() if i.paid_at is None]
    return [i.id for i in data.qonto_invoices.values() if i.status == "unpaid"]


# MijnKlantportaal /webhooks ---------------------------------------------------------------------
def test_mkp_webhook_records_are_created_listed_fetched_and_deleted(sandbox):
    created = mkp(
        sandbox, "POST", "/webhooks", json={"url": "https://example.nl/hook", "type": "invoice-paid"}
    )
    assert created.status_code == 201
    record = created.json()
    assert set(record) == {"id", "type", "url", "secret", "createdAt"}
    assert record["id"].startswith("wbh_") and len(record["id"]) == 18
    assert (record["type"], record["url"]) == ("invoice-paid", "https://example.nl/hook")
    assert len(record["secret"]) == 20 and record["secret"].isalnum()

    for kind in ("customer-created", "invoice-deleted"):
        mkp(sandbox, "POST", "/webhooks", json={"url": "https://example.nl/hook", "type": kind})
    listed = mkp(sandbox, "GET", "/webhooks").json()
    assert [r["type"] for r in listed["data"]] == ["invoice-paid", "customer-created", "invoice-deleted"]
    assert listed["data"][0] == record
    assert (listed["per_page"], listed["next_page_url"], listed["current_page"]) == (15, None, 1)

    assert mkp(sandbox, "GET", f"/webhooks/{record['id']}").json() == record
    assert mkp(sandbox, "DELETE", f"/webhooks/{record['id']}").status_code == 204
    missing = mkp(sandbox, "GET", f"/webhooks/{record['id']}")
    assert (missing.status_code, missing.json()) == (
        404,
        {"message": "No Webhook can be found for the given ID"},
    )
    assert mkp(sandbox, "DELETE", f"/webhooks/{record['id']}").status_code == 404
    assert len(mkp(sandbox, "GET", "/webhooks").json()["data"]) == 2


def test_mkp_webhook_list_pages_by_15(sandbox):
    for _ in range(16):
        mkp(sandbox, "POST", "/webhooks", json={"url": "https://example.nl/h", "type": "invoice-paid"})
    first = mkp(sandbox, "GET", "/webhooks").json()
    assert len(first["data"]) == 15
    assert first["next_page_url"] == f"{sandbox.mkp_base_url}/webhooks?page=2"
    assert len(mkp(sandbox, "GET", "/webhooks", params={"page": 2}).json()["data"]) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"type": "invoice-paid"}, "The url field is required."),
        ({"url": "not a url", "type": "invoice-paid"}, "The url field must be a valid URL."),
        ({"url": "https://example.nl/h", "type": "invoice-updated"}, "The selected type is invalid."),
        ({}, "The url field is required. (and 1 more error)"),
    ],
)
def test_mkp_webhook_validation(sandbox, body, message):
    response = mkp(sandbox, "POST", "/webhooks", json=body)
    assert (response.status_code, response.json()) == (422, {"message": message})
    assert sandbox.state.data.mkp_webhooks == {}


def test_mkp_webhooks_need_the_api_key(sandbox):
    for method, path in (("GET", "/webhooks"), ("POST", "/webhooks"), ("DELETE", "/webhooks/wbh_x")):
        response = mkp(sandbox, method, path, headers={"Authorization": "Bearer wrong"})
        assert (response.status_code, response.json()) == (401, {"message": "Unauthenticated."})


# Qonto OAuth -----------------------------------------------------------------------------------
def test_oauth_flow_authorize_exchange_and_use(sandbox):
    query = redirected(authorize(sandbox, "client_invoices.read webhook offline_access"))
    assert query["state"] == "state-1234567"
    assert query["scope"] == "client_invoices.read webhook offline_access"
    assert query["code"].startswith("ory_ac_")

    response = token(sandbox, grant_type="authorization_code", code=query["code"], redirect_uri=CALLBACK)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    tokens = response.json()
    assert set(tokens) == {"access_token", "expires_in", "refresh_token", "scope", "token_type"}
    assert (tokens["expires_in"], tokens["token_type"]) == (3600, "bearer")
    listed = requests.get(
        f"{sandbox.qonto_base_url}/v2/client_invoices", headers=bearer(tokens), timeout=TIMEOUT
    )
    assert listed.status_code == 200
    assert listed.json()["meta"]["total_count"] == 60


def test_refresh_tokens_rotate(sandbox):
    configure(sandbox, qonto_refresh_grace_seconds=0)
    first = connect(sandbox)
    renewed = token(sandbox, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert renewed.status_code == 200
    second = renewed.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == "webhook offline_access"

    reused = token(sandbox, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
    assert (
        token(sandbox, grant_type="refresh_token", refresh_token=second["refresh_token"]).status_code == 200
    )


def test_a_used_refresh_token_works_during_the_grace_period(sandbox):
    first = connect(sandbox)
    for _ in range(2):
        again = token(sandbox, grant_type="refresh_token", refresh_token=first["refresh_token"])
        assert again.status_code == 200


def test_no_refresh_token_without_offline_access(sandbox):
    tokens = connect(sandbox, scope="webhook")
    assert "refresh_token" not in tokens


def test_token_errors(sandbox):
    code = redirected(authorize(sandbox))["code"]
    wrong_secret = token(
        sandbox, grant_type="authorization_code", code=code, redirect_uri=CALLBACK, client_secret="nope"
    )
    assert (wrong_secret.status_code, wrong_secret.json()["error"]) == (401, "invalid_client")
    wrong_uri = token(sandbox, grant_type="authorization_code", code=code, redirect_uri="http://127.0.0.1/x")
    assert (wrong_uri.status_code, wrong_uri.json()["error"]) == (400, "invalid_grant")
    unknown = token(sandbox, grant_type="authorization_code", code="ory_ac_made_up", redirect_uri=CALLBACK)
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_grant")
    grant = token(sandbox, grant_type="password")
    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")
    as_json = requests.post(
        f"{sandbox.qonto_oauth_url}/token", json={**CLIENT, "grant_type": "refresh_token"}, timeout=TIMEOUT
    )
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")
    # HTTP Basic client authentication is accepted as well as the form fields.
    basic = requests.post(
        f"{sandbox.qonto_oauth_url}/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK},
        auth=("sandbox-client", "sandbox-client-secret"),
        timeout=TIMEOUT,
    )
    assert basic.status_code == 200


def test_a_code_used_twice_is_refused_and_revokes_its_tokens(sandbox):
    code = redirected(authorize(sandbox))["code"]
    first = token(sandbox, grant_type="authorization_code", code=code, redirect_uri=CALLBACK).json()
    second = token(sandbox, grant_type="authorization_code", code=code, redirect_uri=CALLBACK)
    assert (second.status_code, second.json()["error"]) == (400, "invalid_grant")
    assert subscriptions(sandbox, "GET", headers=bearer(first)).status_code == 401
    refreshed = token(sandbox, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert refreshed.status_code == 400


def test_authorize_refusals(sandbox):
    unknown_client = authorize(sandbox, client_id="someone-else")
    assert unknown_client.status_code == 400 and "Location" not in unknown_client.headers
    bad_uri = authorize(sandbox, redirect_uri="javascript:alert(1)")
    assert bad_uri.status_code == 400 and "Location" not in bad_uri.headers
    assert redirected(authorize(sandbox, state="short"))["error"] == "invalid_state"
    assert redirected(authorize(sandbox, scope="webhook everything"))["error"] == "invalid_scope"
    assert redirected(authorize(sandbox, response_type="token"))["error"] == "unsupported_response_type"
    configure(sandbox, qonto_oauth_deny=True)
    denied = redirected(authorize(sandbox))
    assert (denied["error"], denied["state"]) == ("access_denied", "state-1234567")
    assert "code" not in denied


def test_an_expired_access_token_is_refused(sandbox):
    configure(sandbox, qonto_access_token_seconds=0)
    tokens = connect(sandbox)
    assert subscriptions(sandbox, "GET", headers=bearer(tokens)).status_code == 401


def test_the_products_token_renewal_works_against_the_sandbox(sandbox):
    tokens = connect(sandbox, scope="client_invoices.read offline_access")
    oauth = OAuthTokens(
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        token_url=f"{sandbox.qonto_oauth_url}/token",
        **CLIENT,
    )
    with requests.Session() as session:
        renewed = oauth.refresh(oauth.current(), session, (5, 5))
    assert renewed.refresh_token not in ("", tokens["refresh_token"])
    assert oauth.store.load()["refresh_token"] == renewed.refresh_token
    listed = requests.get(
        f"{sandbox.qonto_base_url}/v2/client_invoices",
        headers={"Authorization": f"Bearer {renewed.access_token}"},
        timeout=TIMEOUT,
    )
    assert listed.status_code == 200


# Qonto webhook subscriptions -------------------------------------------------------------------
def test_subscriptions_are_created_listed_fetched_and_deleted(sandbox):
    auth = bearer(connect(sandbox))
    created = subscriptions(
        sandbox,
        "POST",
        headers=auth,
        json={"callback_url": "https://example.fr/hook", "types": ["v1/client-invoices"]},
    )
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("whsec_") and 32 <= len(body["secret"]) <= 128
    assert (body["callback_url"], body["types"], body["description"]) == (
        "https://example.fr/hook",
        ["v1/client-invoices"],
        None,
    )
    assert body["organization_id"] == sandbox.config.organization_id
    own_secret = "s" * 40
    subscriptions(
        sandbox,
        "POST",
        headers=auth,
        json={"callback_url": "https://example.fr/c", "types": ["v1/clients"], "secret": own_secret},
    )
    assert (
        sandbox.state.data.qonto_subscriptions[
            next(s for s in sandbox.state.data.qonto_subscriptions if s != body["id"])
        ].secret
        == own_secret
    )

    listed = subscriptions(sandbox, "GET", headers=auth, params={"per_page": 1}).json()
    assert [s["id"] for s in listed["webhook_subscriptions"]] == [body["id"]]
    assert "secret" not in listed["webhook_subscriptions"][0]
    assert (listed["meta"]["total_count"], listed["meta"]["next_page"]) == (2, 2)
    fetched = subscriptions(sandbox, "GET", f"/{body['id']}", headers=auth).json()["webhook_subscription"]
    assert fetched == {k: v for k, v in body.items() if k != "secret"}

    assert subscriptions(sandbox, "DELETE", f"/{body['id']}", headers=auth).status_code == 204
    assert subscriptions(sandbox, "GET", f"/{body['id']}", headers=auth).status_code == 404
    assert subscriptions(sandbox, "GET", headers=auth).json()["meta"]["total_count"] == 1


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"types": ["v1/client-invoices"]}, "/callback_url"),
        ({"callback_url": "https://e.fr/" + "x" * 500, "types": ["v1/clients"]}, "/callback_url"),
        ({"callback_url": "https://e.fr/h", "types": []}, "/types"),
        ({"callback_url": "https://e.fr/h", "types": ["v1/invoices"]}, "/types"),
        ({"callback_url": "https://e.fr/h", "types": ["v1/clients"], "secret": "short"}, "/secret"),
    ],
)
def test_subscription_validation(sandbox, body, pointer):
    response = subscriptions(sandbox, "POST", headers=bearer(connect(sandbox)), json=body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["source"] == {"pointer": pointer}


def test_subscriptions_need_an_oauth_token_with_the_webhook_scope(sandbox):
    without_scope = bearer(connect(sandbox, scope="client_invoices.read offline_access"))
    body = {"callback_url": "https://e.fr/h", "types": ["v1/clients"]}
    for headers in (without_scope, QONTO_KEY_AUTH):
        refused = subscriptions(sandbox, "POST", headers=headers, json=body)
        assert refused.status_code == 403
        assert "missing required OAuth scope: webhook" in refused.json()["errors"][0]["detail"]
        assert subscriptions(sandbox, "GET", headers=headers).status_code == 403
    assert subscriptions(sandbox, "GET", headers={"Authorization": "Bearer made-up"}).status_code == 401
    assert sandbox.state.data.qonto_subscriptions == {}
    # The same token without the scope still reads invoices.
    assert requests.get(
        f"{sandbox.qonto_base_url}/v2/client_invoices", headers=without_scope, timeout=TIMEOUT
    ).ok


# Deliveries ------------------------------------------------------------------------------------
def test_mkp_sends_signed_webhooks_for_invoice_and_customer_changes(sandbox, receiver):
    secrets = mkp_register(sandbox, f"{receiver.url}/webhooks/mkp/")
    invoice_id = unpaid(sandbox, "mkp")[0]
    customer_id = next(iter(sandbox.state.data.mkp_customers))
    assert admin(sandbox, "POST", f"/pay/mkp/{invoice_id}").json()["paid"] is True
    assert admin(sandbox, "POST", f"/chargeback/mkp/{invoice_id}").json()["paid"] is False
    assert admin(sandbox, "DELETE", f"/state/mkp/{invoice_id}").status_code == 200
    created = mkp(sandbox, "POST", "/customer-invoices", data={"customerId": customer_id, "invoiceNumber": "W-1", "issuedAt": "2026-11-01", "amount": "10.00"}, files={"pdf": ("W-1.pdf", pdf("W-1"), "application/pdf")})  # fmt: skip
    assert created.status_code == 201
    new_customer = admin(sandbox, "POST", "/customers/mkp", json={"name": "Bakkerij De Vries"}).json()["id"]
    assert admin(sandbox, "DELETE", f"/customers/mkp/{new_customer}").status_code == 200

    got = receiver.wait_for(6)
    assert [(d["path"], json.loads(d["body"])) for d in got] == [
        ("/webhooks/mkp/", {"type": "invoice-paid", "data": {"id": invoice_id}}),
        ("/webhooks/mkp/", {"type": "invoice-chargeback", "data": {"id": invoice_id}}),
        ("/webhooks/mkp/", {"type": "invoice-deleted", "data": {"id": invoice_id}}),
        ("/webhooks/mkp/", {"type": "invoice-created", "data": {"id": created.json()["id"]}}),
        ("/webhooks/mkp/", {"type": "customer-created", "data": {"id": new_customer}}),
        ("/webhooks/mkp/", {"type": "customer-deleted", "data": {"id": new_customer}}),
    ]
    for delivery in got:
        kind = json.loads(delivery["body"])["type"]
        assert delivery["headers"]["X-Webhook-Signature"] == secrets[kind]
        assert delivery["headers"]["Content-Type"] == "application/json"
    counts = admin(sandbox, "GET", "/webhooks/deliveries").json()["counts"]
    assert counts == {
        "events": 6,
        "attempts": 6,
        "delivered": 6,
        "failed_attempts": 0,
        "abandoned": 0,
        "pending": 0,
    }


def test_mkp_payment_through_the_payment_link_and_the_api_send_invoice_paid(sandbox, receiver):
    mkp_register(sandbox, receiver.url, types=("invoice-paid",))
    by_link, by_api = unpaid(sandbox, "mkp")[:2]
    link = mkp(sandbox, "GET", f"/customer-invoices/{by_link}").json()["links"]["onlinePaymentLink"]["href"]
    page = requests.post(link, timeout=TIMEOUT)
    assert page.status_code == 200 and "Betaald" in page.text
    mkp(sandbox, "PATCH", f"/customer-invoices/{by_api}", json={"paidAt": "2026-11-02 10:00:00"})
    ids = [json.loads(d["body"])["data"]["id"] for d in receiver.wait_for(2)]
    assert ids == [by_link, by_api]
    assert sandbox.state.data.mkp_invoices[by_link].paid_at is not None


def test_qonto_sends_signed_events_for_invoices_and_clients(sandbox, receiver):
    secret = qonto_subscribe(sandbox, f"{receiver.url}/webhooks/qonto/")
    invoice_id = unpaid(sandbox, "qonto")[0]
    admin(sandbox, "POST", f"/pay/qonto/{invoice_id}")
    admin(sandbox, "POST", f"/chargeback/qonto/{invoice_id}")
    admin(sandbox, "DELETE", f"/state/qonto/{invoice_id}")  # Qonto has no deleted event for invoices
    client_id = admin(sandbox, "POST", "/customers/qonto", json={"name": "Garage Dupont"}).json()["id"]
    admin(sandbox, "DELETE", f"/customers/qonto/{client_id}")

    got = receiver.wait_for(4)
    assert sandbox.app.hooks.wait_idle(5)
    assert len(receiver.received) == 4
    events = [json.loads(d["body"]) for d in got]
    assert [(e["type"], e["data"]["id"]) for e in events] == [
        ("v1/client-invoices", invoice_id),
        ("v1/client-invoices", invoice_id),
        ("v1/clients", client_id),
        ("v1/clients", client_id),
    ]
    assert [e["data"]["status"] for e in events[:2]] == ["paid", "unpaid"]
    assert "event" not in events[0]["data"]
    assert not any(key.endswith("_cents") for key in events[0]["data"])
    assert [e["data"]["event"] for e in events[2:]] == ["created", "deleted"]
    first = events[0]
    assert set(first) == {
        "id",
        "subscription_id",
        "organization_id",
        "membership_id",
        "type",
        "created_at",
        "data",
    }
    assert first["created_at"].endswith("Z")
    assert len({e["id"] for e in events}) == 4
    assert all(d["path"] == "/webhooks/qonto/" and qonto_verifies(d, secret) for d in got)


def test_qonto_api_mark_as_paid_sends_an_update(sandbox, receiver):
    secret = qonto_subscribe(sandbox, receiver.url, types=("v1/client-invoices",))
    invoice_id = unpaid(sandbox, "qonto")[0]
    response = requests.post(
        f"{sandbox.qonto_base_url}/v2/client_invoices/{invoice_id}/mark_as_paid",
        headers=QONTO_KEY_AUTH,
        json={},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    (delivery,) = receiver.wait_for(1)
    assert json.loads(delivery["body"])["data"]["status"] == "paid"
    assert qonto_verifies(delivery, secret)


def test_deliveries_happen_after_the_change_not_inside_it(sandbox, receiver):
    configure(sandbox, webhook_delay_ms=800)
    mkp_register(sandbox, receiver.url, types=("invoice-paid",))
    started = time.monotonic()
    assert admin(sandbox, "POST", f"/pay/mkp/{unpaid(sandbox, 'mkp')[0]}").status_code == 200
    answered = time.monotonic() - started
    assert receiver.received == []
    receiver.wait_for(1)
    assert answered < 0.8 <= time.monotonic() - started


# Webhook faults ---------------------------------------------------------------------------------
def test_duplicate_sends_each_event_twice(sandbox, receiver):
    configure(sandbox, webhook_duplicate=True)
    secret = qonto_subscribe(sandbox, receiver.url, types=("v1/client-invoices",))
    admin(sandbox, "POST", f"/pay/qonto/{unpaid(sandbox, 'qonto')[0]}")
    first, second = receiver.wait_for(2)
    assert first["body"] == second["body"]
    assert qonto_verifies(first, secret) and qonto_verifies(second, secret)


def test_out_of_order_holds_one_event_until_the_next_went_out(sandbox, receiver):
    configure(sandbox, webhook_out_of_order=True)
    mkp_register(sandbox, receiver.url, types=("invoice-paid",))
    earlier, later = unpaid(sandbox, "mkp")[:2]
    admin(sandbox, "POST", f"/pay/mkp/{earlier}")
    admin(sandbox, "POST", f"/pay/mkp/{later}")
    ids = [json.loads(d["body"])["data"]["id"] for d in receiver.wait_for(2)]
    assert ids == [later, earlier]


def test_bad_signature_does_not_verify(sandbox, receiver):
    configure(sandbox, webhook_bad_signature=True)
    mkp_secret = mkp_register(sandbox, receiver.url, types=("invoice-paid",))["invoice-paid"]
    qonto_secret = qonto_subscribe(sandbox, receiver.url, types=("v1/client-invoices",))
    admin(sandbox, "POST", f"/pay/mkp/{unpaid(sandbox, 'mkp')[0]}")
    admin(sandbox, "POST", f"/pay/qonto/{unpaid(sandbox, 'qonto')[0]}")
    mkp_delivery, qonto_delivery = receiver.wait_for(2)
    assert mkp_delivery["headers"]["X-Webhook-Signature"] != mkp_secret
    assert not qonto_verifies(qonto_delivery, qonto_secret)
    assert qonto_delivery["headers"]["X-Qonto-Signature"].startswith("t=")


def test_a_receiver_answering_errors_is_retried_until_it_accepts(sandbox, receiver):
    receiver.status = 503
    mkp_register(sandbox, receiver.url, types=("invoice-paid",))
    admin(sandbox, "POST", f"/pay/mkp/{unpaid(sandbox, 'mkp')[0]}")
    receiver.wait_for(2)
    receiver.status = 200
    assert sandbox.app.hooks.wait_idle(5)
    deliveries = admin(sandbox, "GET", "/webhooks/deliveries").json()
    (delivery,) = deliveries["deliveries"]
    assert delivery["status"] == "delivered" and delivery["attempts"] >= 3 and delivery["last_status"] == 200
    assert deliveries["counts"]["attempts"] == delivery["attempts"] == len(receiver.received)
    assert deliveries["counts"]["failed_attempts"] == delivery["attempts"] - 1


def test_a_receiver_that_is_down_gets_the_event_once_it_is_up(sandbox):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configure(sandbox, webhook_retry_ms=150)
    mkp_register(sandbox, f"http://127.0.0.1:{port}/hook", types=("invoice-paid",))
    invoice_id = unpaid(sandbox, "mkp")[0]
    admin(sandbox, "POST", f"/pay/mkp/{invoice_id}")
    time.sleep(0.3)
    late = Receiver(port)
    try:
        (delivery,) = late.wait_for(1)
        assert json.loads(delivery["body"])["data"]["id"] == invoice_id
        assert sandbox.app.hooks.wait_idle(5)
        (logged,) = admin(sandbox, "GET", "/webhooks/deliveries").json()["deliveries"]
        assert logged["status"] == "delivered" and logged["attempts"] >= 2
        assert logged["last_error"] is None
    finally:
        late.close()


def test_a_delivery_is_abandoned_after_the_last_attempt(sandbox, receiver):
    configure(sandbox, webhook_max_attempts=2)
    receiver.status = 500
    mkp_register(sandbox, receiver.url, types=("invoice-paid",))
    admin(sandbox, "POST", f"/pay/mkp/{unpaid(sandbox, 'mkp')[0]}")
    assert sandbox.app.hooks.wait_idle(5)
    body = admin(sandbox, "GET", "/webhooks/deliveries").json()
    assert body["counts"]["abandoned"] == 1 and body["counts"]["attempts"] == 2
    assert body["deliveries"][0]["status"] == "abandoned" and body["deliveries"][0]["last_status"] == 500
    assert len(receiver.received) == 2


# Sandbox admin ------------------------------------------------------------------------------------
def test_admin_lists_registrations_and_refuses_impossible_changes(sandbox, receiver):
    mkp_register(sandbox, receiver.url, types=("invoice-paid",))
    qonto_subscribe(sandbox, receiver.url, types=("v1/clients",))
    registered = admin(sandbox, "GET", "/webhooks").json()
    assert [h["type"] for h in registered["mkp"]] == ["invoice-paid"]
    assert registered["qonto"][0]["types"] == ["v1/clients"] and registered["qonto"][0]["secret"]
    paid_mkp = next(i.id for i in sandbox.state.data.mkp_invoices.values() if i.paid_at)
    assert admin(sandbox, "POST", f"/pay/mkp/{paid_mkp}").status_code == 409
    assert admin(sandbox, "POST", f"/chargeback/mkp/{unpaid(sandbox, 'mkp')[0]}").status_code == 409
    assert admin(sandbox, "POST", "/pay/mkp/inv_unknown").status_code == 404
    assert (
        admin(sandbox, "POST", f"/pay/mkp/{unpaid(sandbox, 'mkp')[0]}", json={"paid_at": "soon"}).status_code
        == 400
    )
    invoiced = next(iter(sandbox.state.data.mkp_invoices.values())).customer_id
    assert admin(sandbox, "DELETE", f"/customers/mkp/{invoiced}").status_code == 409
    assert admin(sandbox, "POST", "/customers/mkp", json={"name": " "}).status_code == 400
    assert sandbox.app.hooks.wait_idle(2)
    assert receiver.received == []


def test_reset_forgets_registrations_and_deliveries(sandbox, receiver):
    mkp_register(sandbox, receiver.url, types=("invoice-paid",))
    admin(sandbox, "POST", f"/pay/mkp/{unpaid(sandbox, 'mkp')[0]}")
    receiver.wait_for(1)
    admin(sandbox, "POST", "/reset")
    assert admin(sandbox, "GET", "/webhooks").json() == {"mkp": [], "qonto": []}
    assert admin(sandbox, "GET", "/webhooks/deliveries").json()["counts"]["events"] == 0


def test_registrations_and_tokens_are_kept_in_the_state_file(sandbox, tmp_path):
    mkp_register(sandbox, "https://example.nl/h", types=("invoice-paid",))
    tokens = connect(sandbox)
    path = str(tmp_path / "state.pickle")
    sandbox.state.save(path)
    restored = Store()
    restored.load(path)
    assert [h.type for h in restored.data.mkp_webhooks.values()] == ["invoice-paid"]
    assert restored.data.oauth_grants[tokens["refresh_token"]].kind == "refresh"


def test_a_state_file_from_before_webhooks_still_loads(tmp_path):
    old = Store()
    old.seed(invoices=5, seed=1)
    for name in ("mkp_webhooks", "qonto_subscriptions", "oauth_grants"):
        delattr(old.data, name)
    path = tmp_path / "old.pickle"
    path.write_bytes(pickle.dumps(old.data))
    restored = Store()
    assert restored.load(str(path)) == {"mkp": 5, "qonto": 5}
    assert restored.data.mkp_webhooks == {} and restored.data.oauth_grants == {}

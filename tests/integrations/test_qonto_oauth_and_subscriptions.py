"""Qonto's authorization code grant and its webhook subscription endpoints (OAuth only)."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from responses import matchers

from integrations import errors
from integrations.qonto import DEFAULT_BASE_URL, MemoryTokenStore, QontoClient
from integrations.qonto.auth import (
    DEFAULT_AUTHORIZE_URL,
    DEFAULT_TOKEN_URL,
    AuthorizationRefused,
    TokenServiceUnavailable,
    authorize_url,
    exchange_code,
)
from integrations.qonto.client import OAuthRequired

CLIENT_ID = "9a8b7c6d-client"
CLIENT_SECRET = "s3cr3t-of-the-oauth-application"
REDIRECT = "https://bo.example.com/admin/invoices/webhooksubscription/connect-qonto/done/"
SUBSCRIPTIONS = f"{DEFAULT_BASE_URL}/v2/webhook_subscriptions"
ACCESS = "ory_at_access-token-0123456789"
SUBSCRIPTION = {
    "id": "018f4a1e-9a4b-7c1d-8e2f-3a4b5c6d7e8f",
    "organization_id": "org-1",
    "membership_id": "mem-1",
    "callback_url": "https://bo.example.com/webhooks/qonto/",
    "types": ["v1/client-invoices", "v1/clients"],
    "description": None,
    "created_at": "2026-12-07T10:00:00.000+01:00",
    "updated_at": "2026-12-07T10:00:00.000+01:00",
}


def test_the_authorize_url_carries_what_qonto_documents():
    url = authorize_url(
        authorize_url=DEFAULT_AUTHORIZE_URL,
        client_id=CLIENT_ID,
        redirect_uri=REDIRECT,
        scopes=("offline_access", "client_invoices.read", "webhook"),
        state="st4te-0123456789",
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == DEFAULT_AUTHORIZE_URL
    assert parse_qs(parts.query) == {
        "response_type": ["code"],
        "client_id": [CLIENT_ID],
        "redirect_uri": [REDIRECT],
        "scope": ["offline_access client_invoices.read webhook"],
        "state": ["st4te-0123456789"],
    }
    assert "+" not in parts.query  # spaces as %20, as Qonto's examples


@responses.activate
def test_a_code_is_exchanged_for_tokens():
    responses.post(
        DEFAULT_TOKEN_URL,
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "authorization_code",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "code": "ory_ac_the-code",
                    "redirect_uri": REDIRECT,
                }
            )
        ],
        json={
            "access_token": ACCESS,
            "refresh_token": "ory_rt_r1",
            "expires_in": 3600,
            "token_type": "bearer",
        },
    )
    before = datetime.now(UTC)
    tokens = exchange_code(
        code="ory_ac_the-code", redirect_uri=REDIRECT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    assert tokens.access_token == ACCESS and tokens.refresh_token == "ory_rt_r1"
    assert before + timedelta(seconds=3590) < tokens.expires_at <= datetime.now(UTC) + timedelta(seconds=3600)


@responses.activate
def test_a_refused_code_is_a_typed_error_without_secrets():
    responses.post(
        DEFAULT_TOKEN_URL,
        status=400,
        json={"error": "invalid_grant", "error_description": f"code ory_ac_the-code for {CLIENT_SECRET}"},
    )
    with pytest.raises(AuthorizationRefused) as caught:
        exchange_code(
            code="ory_ac_the-code", redirect_uri=REDIRECT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
        )
    assert "invalid_grant" in str(caught.value)
    assert CLIENT_SECRET not in str(caught.value) and "ory_ac_the-code" not in str(caught.value)
    assert len(responses.calls) == 1  # a code is used once: never retried


@responses.activate
def test_a_token_service_that_does_not_answer_is_a_typed_error():
    responses.post(DEFAULT_TOKEN_URL, body=requests.ReadTimeout())
    with pytest.raises(TokenServiceUnavailable, match="did not answer in time"):
        exchange_code(code="c", redirect_uri=REDIRECT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    responses.replace(responses.POST, DEFAULT_TOKEN_URL, status=502, body="bad gateway")
    with pytest.raises(TokenServiceUnavailable, match="HTTP 502"):
        exchange_code(code="c", redirect_uri=REDIRECT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)


def oauth_client(**tokens) -> QontoClient:
    stored = {"access_token": ACCESS, "expires_at": datetime.now(UTC) + timedelta(hours=1)} | tokens
    return QontoClient(login="org", secret_key="an-api-key-secret", token_store=MemoryTokenStore(stored))


BEARER = matchers.header_matcher({"Authorization": f"Bearer {ACCESS}"})


@responses.activate
def test_create_sends_our_secret_and_both_types_with_the_bearer_token():
    secret = "whsec_" + "k" * 40
    responses.post(
        SUBSCRIPTIONS,
        match=[
            BEARER,
            matchers.json_params_matcher(
                {
                    "callback_url": SUBSCRIPTION["callback_url"],
                    "types": SUBSCRIPTION["types"],
                    "secret": secret,
                }
            ),
        ],
        json={**SUBSCRIPTION, "secret": secret},
        status=201,
    )
    created = oauth_client().create_webhook_subscription(
        url=SUBSCRIPTION["callback_url"], types=SUBSCRIPTION["types"], secret=secret
    )
    assert created.remote_id == SUBSCRIPTION["id"]
    assert created.event_types == ("v1/client-invoices", "v1/clients")
    assert created.secret == secret and secret not in repr(created)


@responses.activate
def test_list_reads_every_page_under_either_key():
    second = {**SUBSCRIPTION, "id": "second"}
    responses.get(
        SUBSCRIPTIONS,
        match=[BEARER, matchers.query_param_matcher({"page": "1", "per_page": "100"})],
        json={"subscriptions": [SUBSCRIPTION], "meta": {"current_page": 1, "next_page": 2}},
    )
    responses.get(
        SUBSCRIPTIONS,
        match=[BEARER, matchers.query_param_matcher({"page": "2", "per_page": "100"})],
        json={"webhook_subscriptions": [second], "meta": {"current_page": 2, "next_page": None}},
    )
    pages = list(oauth_client().iter_webhook_subscriptions())
    assert [s.remote_id for page in pages for s in page.items] == [SUBSCRIPTION["id"], "second"]
    assert all(not s.secret for page in pages for s in page.items)


@responses.activate
def test_delete_answers_nothing():
    responses.delete(f"{SUBSCRIPTIONS}/{SUBSCRIPTION['id']}", match=[BEARER], status=204)
    assert oauth_client().delete_webhook_subscription(SUBSCRIPTION["id"]) is None
    responses.delete(
        f"{SUBSCRIPTIONS}/gone", status=404, json={"errors": [{"code": "not_found", "detail": "no"}]}
    )
    with pytest.raises(errors.ProviderNotFound):
        oauth_client().delete_webhook_subscription("gone")


@responses.activate
def test_without_oauth_tokens_nothing_is_sent_and_the_error_says_connect_qonto_first():
    client = QontoClient(login="org", secret_key="an-api-key-secret", token_store=MemoryTokenStore())
    for call in (
        client.list_webhook_subscriptions,
        lambda: client.create_webhook_subscription(url="https://bo.example.com/w/", types=["v1/clients"]),
        lambda: client.delete_webhook_subscription("x"),
    ):
        with pytest.raises(OAuthRequired, match="Connect Qonto first"):
            call()
    assert len(responses.calls) == 0

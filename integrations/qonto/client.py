"""Qonto Business API client for client invoices (receivables): one short method per endpoint.

Authentication is either the API key (``Authorization: login:secret-key``) or OAuth (``Bearer``,
renewed before expiry through a shared token store). A 401 trips a circuit breaker keyed by a
fingerprint of the credentials, shared by every worker: Qonto throttles an IP after 200 responses
401 in an hour, and calling again with refused credentials cannot succeed anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import requests

from integrations import errors
from integrations.base import BaseClient
from integrations.breaker import CircuitBreaker, MemoryBreaker, fingerprint
from integrations.qonto import mappers
from integrations.qonto.auth import (
    DEFAULT_TOKEN_URL,
    OAuthTokens,
    TokenRefreshRefused,
    Tokens,
    TokenStore,
    api_key_header,
)
from integrations.ratelimit import Window
from integrations.types import Page, PdfFile, RemoteCustomer, RemoteInvoice, RemoteSubscription

DEFAULT_BASE_URL = "https://thirdparty.qonto.com"
SANDBOX_BASE_URL = "https://thirdparty-sandbox.staging.qonto.co"

T = TypeVar("T")

#: What a webhook subscription is about: client invoices and clients, the objects we mirror.
WEBHOOK_TYPES = ("v1/client-invoices", "v1/clients")


class OAuthRequired(errors.ProviderConfigurationError):
    """An endpoint Qonto serves to OAuth tokens only (webhook subscriptions), with no OAuth token
    stored or configured: the account must be connected first."""


PAUSED_MESSAGE = (
    "Qonto refused our credentials (HTTP 401), so calls are paused until the credentials are changed. "
    "Check the Qonto login and secret key, or connect the Qonto account again."
)


def _quote(remote_id: str) -> str:
    if not remote_id:
        raise ValueError("a Qonto id is required")
    return quote(str(remote_id), safe="")


class QontoClient(BaseClient):
    provider = "qonto"
    windows = (Window(1000, 10.0), Window(10000, 600.0))
    #: How long a 401 pauses the credentials that got it. Long on purpose: new credentials get a new
    #: breaker key, so changing them (or ``resume()``) is what lifts the pause.
    pause_seconds = 30 * 24 * 3600.0

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        login: str = "",
        secret_key: str = "",
        access_token: str = "",
        refresh_token: str = "",
        client_id: str = "",
        client_secret: str = "",
        token_url: str = DEFAULT_TOKEN_URL,
        token_expires_at: datetime | None = None,
        token_store: TokenStore | None = None,
        staging_token: str = "",
        breaker: CircuitBreaker | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url=base_url, **kwargs)
        self.login = login
        self.secret_key = secret_key
        self.staging_token = staging_token
        self.breaker = breaker if breaker is not None else MemoryBreaker()
        self.oauth = (
            OAuthTokens(
                access_token=access_token,
                refresh_token=refresh_token,
                client_id=client_id,
                client_secret=client_secret,
                token_url=token_url,
                expires_at=token_expires_at,
                store=token_store,
            )
            if access_token or refresh_token or token_store is not None
            else None
        )

    # Authentication and the 401 breaker --------------------------------------------------------
    def _oauth_tokens(self) -> Tokens | None:
        """The OAuth tokens to use, or None to use the API key (OAuth wins when both are set)."""
        tokens = self.oauth.current() if self.oauth else None
        return tokens if tokens and (tokens.access_token or tokens.refresh_token) else None

    def _pause_key(self, *parts: str) -> str:
        # Never the secret itself: a digest, scoped to the API host (sandbox and production differ).
        return f"{self.provider}:{fingerprint(self.base_url, *parts)}"

    def _check_not_paused(self, key: str) -> None:
        if self.breaker.is_open(key):
            raise errors.ProviderConfigurationError(PAUSED_MESSAGE, provider=self.provider)

    def auth_headers(self) -> dict[str, str]:
        tokens = self._oauth_tokens()
        if tokens is not None:
            refresh_key = self._pause_key("refresh", tokens.refresh_token)
            self._check_not_paused(refresh_key)
            try:
                tokens = self.oauth.fresh(tokens, self.session, self.timeout)
            except TokenRefreshRefused:
                self.breaker.trip(refresh_key, self.pause_seconds)
                raise
            authorization = f"Bearer {tokens.access_token}"
        elif self.login and self.secret_key:
            authorization = api_key_header(self.login, self.secret_key)
        else:
            raise errors.ProviderConfigurationError(
                "No Qonto credentials are configured: set the login and secret key, or the OAuth tokens.",
                provider=self.provider,
            )
        self._check_not_paused(self._pause_key("authorization", authorization))
        headers = {"Authorization": authorization}
        if self.staging_token:
            headers["X-Qonto-Staging-Token"] = self.staging_token
        return headers

    def send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = super().send(method, path, **kwargs)
        if response.status_code == 401:
            sent = response.request.headers.get("Authorization", "") if response.request else ""
            self.breaker.trip(self._pause_key("authorization", sent), self.pause_seconds)
            error = self.error_for(response)
            error.message = f"{error.message} Calls to Qonto are paused until the credentials are changed."
            error.args = (error.message,)
            raise error
        return response

    def resume(self) -> None:
        """Lift a pause on the current credentials (once the problem is fixed at Qonto's side)."""
        tokens = self._oauth_tokens()
        if tokens is not None:
            self.breaker.reset(self._pause_key("refresh", tokens.refresh_token))
            self.breaker.reset(self._pause_key("authorization", f"Bearer {tokens.access_token}"))
        if self.login and self.secret_key:
            self.breaker.reset(self._pause_key("authorization", api_key_header(self.login, self.secret_key)))

    def error_text(self, response: requests.Response) -> tuple[str, str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        message, trace_id, details = mappers.error_from_payload(body)
        return self._redact(message), trace_id or response.headers.get("X-Tyk-Trace-Id", ""), details

    def _redact(self, text: str) -> str:
        """Belt and braces: an error message must never carry a credential, even one echoed back."""
        secrets = [self.secret_key, self.staging_token]
        if self.oauth:
            tokens = self.oauth.current()
            secrets += [self.oauth.client_secret, tokens.access_token, tokens.refresh_token]
        for secret in secrets:
            if secret and len(secret) >= 8:
                text = text.replace(secret, "[redacted]")
        return text

    # Pagination --------------------------------------------------------------------------------
    @staticmethod
    def _pages(list_page: Callable[..., Page[T]], **filters: Any) -> Iterator[Page[T]]:
        page: int | None = 1
        while page is not None:
            result = list_page(page=page, **filters)
            yield result
            page = result.next_page

    @staticmethod
    def _paging(page: int, per_page: int) -> dict[str, int]:
        if page < 1 or not 1 <= per_page <= 100:
            raise ValueError("Qonto pages start at 1 and hold 1 to 100 items")
        return {"page": page, "per_page": per_page}

    # Client invoices ---------------------------------------------------------------------------
    def list_invoices(
        self,
        *,
        page: int = 1,
        per_page: int = 100,
        statuses: list[str] | None = None,
        updated_at_from: datetime | None = None,
        updated_at_to: datetime | None = None,
        sort_by: str | None = None,
    ) -> Page[RemoteInvoice]:
        """One page of ``GET /v2/client_invoices``. ``statuses`` are ours (``open``) or Qonto's."""
        params: dict[str, Any] = self._paging(page, per_page)
        if statuses:
            params["filter[status]"] = mappers.format_status_filter(statuses)
        if updated_at_from is not None:
            params["filter[updated_at_from]"] = mappers.format_filter_datetime(updated_at_from)
        if updated_at_to is not None:
            params["filter[updated_at_to]"] = mappers.format_filter_datetime(updated_at_to)
        if sort_by:
            params["sort_by"] = sort_by
        data = self.request("GET", "/v2/client_invoices", params=params)
        return mappers.invoices_page_from_payload(data, page)

    def iter_invoices(self, **filters: Any) -> Iterator[Page[RemoteInvoice]]:
        """Every page of invoices matching ``list_invoices`` filters."""
        return self._pages(self.list_invoices, **filters)

    def get_invoice(self, invoice_id: str) -> RemoteInvoice:
        data = self.request("GET", f"/v2/client_invoices/{_quote(invoice_id)}")
        return mappers.invoice_from_payload(data)

    def mark_paid(self, invoice_id: str, paid_on: date) -> RemoteInvoice:
        """``POST .../mark_as_paid``; also moves the date of an invoice already paid.

        A date after :func:`mappers.latest_allowed_paid_on` is refused here, before anything is sent.
        """
        paid_at = mappers.format_paid_on(paid_on)
        latest = mappers.latest_allowed_paid_on(datetime.now(UTC))
        if paid_on > latest:
            raise errors.ProviderValidationError(
                f"Qonto does not accept a payment date in the future: {paid_at} is after {latest.isoformat()}.",
                provider=self.provider,
            )
        data = self.request(
            "POST", f"/v2/client_invoices/{_quote(invoice_id)}/mark_as_paid", json={"paid_at": paid_at}
        )
        return mappers.invoice_from_payload(data)

    def import_invoices(
        self, files: list[PdfFile], *, idempotency_key: str | None = None
    ) -> list[tuple[str, str]]:
        """``POST /v2/client_invoices/bulk``: import issued invoices as they are.

        Returns ``[(file_name, invoice_id), ...]``, one per file sent. Qonto answers a file imported
        before with the existing invoice id, so repeating an import is safe; an answer that does
        not name every file sent raises :class:`errors.ProviderIncompleteAnswer`.
        """
        headers = {"X-Qonto-Idempotency-Key": idempotency_key} if idempotency_key else {}
        data = self.request(
            "POST", "/v2/client_invoices/bulk", files=mappers.import_parts(files), headers=headers
        )
        imported = mappers.imported_invoices_from_payload(data)
        named = {name for name, _ in imported}
        missing = [file.name for file in files if file.name not in named]
        if missing:
            raise errors.ProviderIncompleteAnswer(
                f"Qonto's answer to the import does not name {', '.join(missing)}.",
                provider=self.provider,
                answered=imported,
            )
        return imported

    # Attachments -------------------------------------------------------------------------------
    def get_attachment_url(self, attachment_id: str) -> str:
        """The signed download link of an attachment; it works for 30 minutes."""
        return mappers.attachment_url_from_payload(
            self.request("GET", f"/v2/attachments/{_quote(attachment_id)}")
        )

    def download_invoice_pdf(self, invoice: RemoteInvoice) -> bytes | None:
        """The invoice's PDF, or None when Qonto has no attachment for it (yet)."""
        if not invoice.attachment_id:
            return None
        return self.download_pdf(
            self.get_attachment_url(invoice.attachment_id), of=f"invoice {invoice.number}"
        )

    # Clients -----------------------------------------------------------------------------------
    def list_clients(self, *, page: int = 1, per_page: int = 100) -> Page[RemoteCustomer]:
        data = self.request("GET", "/v2/clients", params=self._paging(page, per_page))
        return mappers.customers_page_from_payload(data, page)

    def iter_clients(self) -> Iterator[Page[RemoteCustomer]]:
        return self._pages(self.list_clients)

    def get_client(self, client_id: str) -> RemoteCustomer:
        return mappers.customer_from_payload(self.request("GET", f"/v2/clients/{_quote(client_id)}"))

    # Webhook subscriptions (OAuth only, scope ``webhook``) -----------------------------------------
    def _require_oauth(self) -> None:
        if self._oauth_tokens() is None:
            raise OAuthRequired(
                "Qonto's webhook subscriptions need the account connected through OAuth, and it is not: "
                "Connect Qonto first.",
                provider=self.provider,
            )

    def list_webhook_subscriptions(self, *, page: int = 1, per_page: int = 100) -> Page[RemoteSubscription]:
        self._require_oauth()
        data = self.request("GET", "/v2/webhook_subscriptions", params=self._paging(page, per_page))
        return mappers.subscriptions_page_from_payload(data, page)

    def iter_webhook_subscriptions(self) -> Iterator[Page[RemoteSubscription]]:
        return self._pages(self.list_webhook_subscriptions)

    def create_webhook_subscription(
        self, *, url: str, types: list[str], secret: str | None = None, description: str = ""
    ) -> RemoteSubscription:
        """``POST /v2/webhook_subscriptions``; without ``secret`` Qonto generates one. The answer is
        the only place Qonto ever shows the secret."""
        self._require_oauth()
        body: dict[str, Any] = {"callback_url": url, "types": list(types)}
        if secret is not None:
            body["secret"] = secret
        if description:
            body["description"] = description
        subscription = mappers.subscription_from_payload(
            self.request("POST", "/v2/webhook_subscriptions", json=body)
        )
        if secret is not None and not subscription.secret:
            subscription = replace(subscription, secret=secret)
        return subscription

    def delete_webhook_subscription(self, subscription_id: str) -> None:
        self._require_oauth()
        self.request("DELETE", f"/v2/webhook_subscriptions/{_quote(subscription_id)}", expect_json=False)

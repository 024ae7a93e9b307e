"""MijnKlantportaal REST API v1: customer invoices and customers. One short method per endpoint."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

import requests

from integrations import errors
from integrations.base import BaseClient
from integrations.mkp import mappers
from integrations.ratelimit import Window
from integrations.types import Page, PdfFile, RemoteCustomer, RemoteInvoice, RemoteWebhook

DEFAULT_BASE_URL = "https://api.mijnklantportaal.nl/v1"

T = TypeVar("T")


def key_fingerprint(api_key: str) -> str:
    """A short, stable name for an API key that reveals nothing about it (rate-limit buckets, logs)."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:16]


class MijnKlantportaalClient(BaseClient):
    provider = "mkp"
    #: "each API key or access token is limited to 60 requests per minute".
    windows = (Window(60, 60.0),)

    def __init__(self, *, api_key: str, base_url: str = DEFAULT_BASE_URL, **kwargs: Any) -> None:
        self._api_key = (api_key or "").strip()
        kwargs.setdefault("rate_limit_key", f"{self.provider}:{key_fingerprint(self._api_key)}")
        super().__init__(base_url=base_url, **kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url} key {key_fingerprint(self._api_key)}>"

    # BaseClient hooks ----------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        # Checked before the shared limiter, so a missing key does not spend the budget.
        if not self._api_key:
            raise errors.ProviderConfigurationError(
                "No MijnKlantportaal API key is configured.", provider=self.provider
            )
        return super().request(method, path, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}

    def error_text(self, response: requests.Response) -> tuple[str, str, Any]:
        """``{"message": "..."}``, with Laravel's ``errors`` per field when a 422 carries them."""
        try:
            body = response.json()
        except ValueError:
            return "", "", None
        if not isinstance(body, dict):
            return "", "", None
        message = body.get("message")
        message = message.strip() if isinstance(message, str) else ""
        details = body.get("errors") if isinstance(body.get("errors"), dict) else None
        if not message and details:
            message = " ".join(_field_messages(details))
        if self._api_key:
            message = message.replace(self._api_key, "[redacted]")
        return message, "", details

    # Customer invoices ---------------------------------------------------------------------------
    def list_invoices(self, page: int = 1) -> Page[RemoteInvoice]:
        data = self.request("GET", "customer-invoices", params={"page": page})
        return mappers.page_from_payload(data, mappers.invoice_from_payload, requested_page=page)

    def iter_invoices(self, start_page: int = 1) -> Iterator[Page[RemoteInvoice]]:
        return self._iter_pages(self.list_invoices, start_page)

    def get_invoice(self, invoice_id: str) -> RemoteInvoice:
        return mappers.invoice_from_payload(self.request("GET", _path("customer-invoices", invoice_id)))

    def create_invoice(
        self,
        *,
        customer_id: str,
        number: str,
        issued_at: date,
        amount: Decimal,
        pdf: PdfFile,
        due_at: date | None = None,
        paid_at: datetime | None = None,
        send_notification: bool = False,
    ) -> RemoteInvoice:
        """Upload a PDF invoice (multipart). Not retried here: MKP has no idempotency key, so after a
        timeout the invoice is looked for in the list (``invoices.lookup``) before it is sent again."""
        fields = {
            "customerId": customer_id,
            "invoiceNumber": number,
            "issuedAt": mappers.format_date(issued_at),
        }
        if due_at is not None:
            fields["dueAt"] = mappers.format_date(due_at)
        fields["amount"] = mappers.format_amount(amount)
        if paid_at is not None:
            fields["paidAt"] = mappers.format_paid_at(paid_at)
        fields["sendNotification"] = "true" if send_notification else "false"
        files = {"pdf": (pdf.name or f"{number}.pdf", pdf.content, "application/pdf")}
        data = self.request("POST", "customer-invoices", data=fields, files=files)
        return mappers.invoice_from_payload(data)

    def mark_paid(self, invoice_id: str, paid_at: datetime) -> RemoteInvoice:
        body = {"paidAt": mappers.format_paid_at(paid_at)}
        data = self.request("PATCH", _path("customer-invoices", invoice_id), json=body)
        return mappers.invoice_from_payload(data)

    def invoice_pdf_link(self, invoice_id: str) -> tuple[str, datetime]:
        data = self.request("GET", _path("customer-invoices", invoice_id, "pdf"))
        return mappers.pdf_link_from_payload(data)

    def download_invoice_pdf(self, invoice_id: str) -> bytes:
        link, _expires_at = self.invoice_pdf_link(invoice_id)
        return self.download_pdf(link, of=f"invoice {invoice_id}")

    # Customers -----------------------------------------------------------------------------------
    def list_customers(self, page: int = 1) -> Page[RemoteCustomer]:
        data = self.request("GET", "customers", params={"page": page})
        return mappers.page_from_payload(data, mappers.customer_from_payload, requested_page=page)

    def iter_customers(self, start_page: int = 1) -> Iterator[Page[RemoteCustomer]]:
        return self._iter_pages(self.list_customers, start_page)

    def get_customer(self, customer_id: str) -> RemoteCustomer:
        return mappers.customer_from_payload(self.request("GET", _path("customers", customer_id)))

    # Webhooks ------------------------------------------------------------------------------------
    def list_webhooks(self, page: int = 1) -> Page[RemoteWebhook]:
        data = self.request("GET", "webhooks", params={"page": page})
        return mappers.page_from_payload(data, mappers.webhook_from_payload, requested_page=page)

    def iter_webhooks(self, start_page: int = 1) -> Iterator[Page[RemoteWebhook]]:
        return self._iter_pages(self.list_webhooks, start_page)

    def create_webhook(self, *, url: str, event_type: str) -> RemoteWebhook:
        """One record per event type; the answer holds the record's secret."""
        data = self.request("POST", "webhooks", json={"url": url, "type": event_type})
        return mappers.webhook_from_payload(data)

    def delete_webhook(self, webhook_id: str) -> None:
        """``DELETE /webhooks/{id}`` (not in MijnKlantportaal's documentation, which lists no way to
        remove a record; assumed as the sandbox serves it)."""
        self.request("DELETE", _path("webhooks", webhook_id), expect_json=False)

    # Helpers -------------------------------------------------------------------------------------
    @staticmethod
    def _iter_pages(fetch: Callable[[int], Page[T]], start_page: int) -> Iterator[Page[T]]:
        page_number: int | None = start_page
        while page_number is not None:
            page = fetch(page_number)
            yield page
            page_number = page.next_page


def _path(collection: str, object_id: str, *rest: str) -> str:
    if not isinstance(object_id, str) or not object_id.strip():
        raise ValueError(f"A MijnKlantportaal id is required for /{collection}.")
    return "/".join([collection, quote(object_id, safe=""), *rest])


def _field_messages(details: dict) -> list[str]:
    messages = []
    for value in details.values():
        if isinstance(value, list):
            messages.extend(str(item) for item in value)
        else:
            messages.append(str(value))
    return messages

"""What a delivery's body says it is about: read leniently, never trusted for anything but which
object to re-read. A body that is not the JSON we expect yields an empty description.

Qonto (documented): ``{"id": <event id>, "subscription_id", "type": "v1/client-invoices" |
"v1/clients", "data": {"id": <object id>, ...}}``.

MijnKlantportaal does not document its delivery body. Accepted: ``{"type", "data": {"id"}}`` with a
top-level ``id`` (or ``eventId``) as the event id, or a top-level ``invoiceId``/``customerId``, or a
bare top-level ``id`` (the object's, when there is no ``data``). Each webhook record has one event
type, so the record whose secret the delivery carries names its type when the body does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from invoices.models import Provider

MAX_ID_LENGTH = 64

QONTO_INVOICES = "v1/client-invoices"
QONTO_CLIENTS = "v1/clients"
MKP_INVOICE_TYPES = ("invoice-created", "invoice-paid", "invoice-chargeback", "invoice-deleted")
MKP_CUSTOMER_TYPES = ("customer-created", "customer-deleted")
MKP_CHARGEBACK = "invoice-chargeback"

INVOICE, CUSTOMER = "invoice", "customer"


@dataclass(frozen=True)
class Event:
    event_id: str = ""
    event_type: str = ""
    object_id: str = ""
    subscription_id: str = ""

    @property
    def subject(self) -> str:
        """``INVOICE``, ``CUSTOMER`` or "" (a type we do not act on)."""
        if self.event_type in (QONTO_INVOICES, *MKP_INVOICE_TYPES):
            return INVOICE
        if self.event_type in (QONTO_CLIENTS, *MKP_CUSTOMER_TYPES):
            return CUSTOMER
        return ""


def _text(value: object, limit: int = MAX_ID_LENGTH) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    text = str(value).strip()
    # Printable only: no NUL (which PostgreSQL's text refuses), no line breaks in a log line.
    return text if 0 < len(text) <= limit and text.isprintable() else ""


def _first(mapping: dict, *names: str) -> str:
    return next((text for name in names if (text := _text(mapping.get(name)))), "")


def describe(provider: str, body: bytes) -> Event:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Event()
    if not isinstance(payload, dict):
        return Event()
    data = payload.get("data") if isinstance(payload.get("data"), dict) else None
    event_type = _text(payload.get("type") or payload.get("event"))
    if provider == Provider.QONTO:
        return Event(
            event_id=_text(payload.get("id"), 255),
            event_type=event_type,
            object_id=_text(data.get("id")) if data else "",
            subscription_id=_text(payload.get("subscription_id")),
        )
    if data is not None:
        return Event(
            event_id=_text(payload.get("eventId") or payload.get("id"), 255),
            event_type=event_type,
            object_id=_first(data, "id", "invoiceId", "customerId"),
        )
    return Event(
        event_id=_text(payload.get("eventId"), 255),
        event_type=event_type,
        object_id=_first(payload, "invoiceId", "customerId", "id"),
    )

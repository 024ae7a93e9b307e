"""Qonto payloads to our typed shapes and back: the one place Qonto's formats are read and written.

Pure functions, no HTTP. Qonto's payloads drift (undeclared fields, ``null`` where an object is
documented, ``attachment_id`` missing), so everything we do not need is ignored, optional objects may
be absent or null, and the whole payload is kept in ``raw``. What we do need and cannot trust (an
id, a status, inconsistent amounts, an impossible date, a value longer than its column) raises
:class:`ProviderRecordError` naming the record and the field, and a list page keeps such a record
apart in ``Page.problems``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from integrations.errors import ProviderBadResponse, ProviderValidationError
from integrations.records import ID_LENGTH, Record
from integrations.types import (
    STATUS_CANCELED,
    STATUS_DRAFT,
    STATUS_OPEN,
    STATUS_PAID,
    Page,
    PdfFile,
    RemoteCustomer,
    RemoteInvoice,
    RemoteSubscription,
)

PROVIDER = "qonto"
LABEL = "Qonto"
PARIS = ZoneInfo("Europe/Paris")

#: Qonto status -> ours. An unknown status is kept lower-cased (see ``map_status``).
STATUSES = {
    "draft": STATUS_DRAFT,
    "unpaid": STATUS_OPEN,
    "paid": STATUS_PAID,
    "canceled": STATUS_CANCELED,
}
#: Ours (or Qonto's own names) -> the value of ``filter[status]``.
STATUS_FILTERS = {
    STATUS_DRAFT: "draft",
    STATUS_OPEN: "unpaid",
    "unpaid": "unpaid",
    STATUS_PAID: "paid",
    STATUS_CANCELED: "canceled",
}

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PAGE_NUMBER = re.compile(r"[0-9]{1,9}")


def _bad(message: str) -> ProviderBadResponse:
    return ProviderBadResponse(message, provider=PROVIDER)


# Scalars --------------------------------------------------------------------------------------
def parse_date(value: str | None) -> date | None:
    """``YYYY-MM-DD`` -> date; None or empty -> None; anything else (``2024-04-31``) -> ValueError."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError(f"not a YYYY-MM-DD date: {value!r}")
    return date.fromisoformat(value)


def parse_datetime(value: str | None) -> datetime | None:
    """ISO 8601 with an offset or ``Z``, fractional seconds allowed -> aware datetime in UTC.

    None or empty -> None. A datetime without an offset is refused: guessing the zone would move
    a payment to another day.
    """
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"not an ISO 8601 datetime: {value!r}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"datetime without a time zone: {value!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:30:00-01:00 is after the last moment Python has
        raise ValueError(f"datetime out of range: {value!r}") from None


def format_paid_on(paid_on: date) -> str:
    """The ``paid_at`` of mark_as_paid: ``YYYY-MM-DD``."""
    if isinstance(paid_on, datetime):
        raise TypeError("paid_at is a date: convert the datetime to a date in the right time zone first")
    return paid_on.isoformat()


def format_filter_datetime(moment: datetime) -> str:
    """``filter[updated_at_from]`` and friends: UTC, ``%Y-%m-%dT%H:%M:%SZ`` (as in Qonto's sync guide)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a filter datetime must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def latest_allowed_paid_on(now: datetime) -> date:
    """The latest ``paid_at`` Qonto accepts at ``now``: today in Europe/Paris.

    Qonto keeps a date only and refuses one "in the future", its own date: a French bank's today,
    in Paris. So a payment made today is accepted at any hour of the Paris day, also between
    midnight in Paris and midnight UTC.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return paid_on(now)


def paid_on(moment: datetime) -> date:
    """The date Qonto keeps for a payment moment: its date in Europe/Paris."""
    return moment.astimezone(PARIS).date()


def map_status(value: Any) -> str:
    """Qonto status -> ours. An unknown value is kept, lower-cased, for the domain to decide: refusing
    it would stop the sync of every invoice over one new label."""
    status = str(value).strip().lower()
    return STATUSES.get(status, status)


def format_status_filter(statuses: Iterable[str]) -> str:
    """Our statuses (``open``) or Qonto's (``unpaid``) -> the comma-separated ``filter[status]``."""
    values: list[str] = []
    for status in statuses:
        try:
            value = STATUS_FILTERS[status]
        except KeyError:
            raise ValueError(f"unknown invoice status for a Qonto filter: {status!r}") from None
        if value not in values:
            values.append(value)
    return ",".join(values)


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not a number: {value!r}")
    try:
        # A JSON number arrives as float; its repr is the shortest exact text, so no binary noise.
        return Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def _from_cents(value: Any) -> Decimal:
    cents = _decimal(value)
    if not cents.is_finite() or cents != cents.to_integral_value():
        raise ValueError(f"not a whole number: {value!r}")
    return cents.scaleb(-2)


def _money(record: Record, data: dict, field: str) -> Decimal | None:
    """``{field: {"value": "12.52"}}`` as Decimal, checked against ``{field}_cents`` when present."""
    obj = data.get(field)
    amount = record.amount(field, obj.get("value") if isinstance(obj, dict) else obj, _decimal)
    cents_field = f"{field}_cents"
    from_cents = record.amount(cents_field, data.get(cents_field), _from_cents)
    if from_cents is None:
        return amount
    if amount is not None and amount != from_cents:
        raise record.error(
            cents_field, data.get(cents_field), f"{field} is {amount} but {cents_field} says {from_cents}"
        )
    return from_cents


def _object(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _record(data: Any, key: str, what: str) -> tuple[Record, dict]:
    """The record, bare or wrapped in ``{key: {...}}``, and a reader of its fields."""
    if isinstance(data, dict) and isinstance(data.get(key), dict):
        data = data[key]
    if not isinstance(data, dict) or key in data:
        record = Record(provider=PROVIDER, label=LABEL, what=what, data=data, id_value=None)
        raise record.error("", data, "it is not a JSON object")
    return Record(provider=PROVIDER, label=LABEL, what=what, data=data, id_value=data.get("id")), data


def _person_name(record: Record, obj: dict, prefix: str = "") -> str:
    name = record.text(f"{prefix}name", obj.get("name"))
    if name:
        return name
    parts = (record.text(f"{prefix}{part}", obj.get(part)) for part in ("first_name", "last_name"))
    return record.text(f"{prefix}name", " ".join(part for part in parts if part))


# Invoices -------------------------------------------------------------------------------------
def invoice_from_payload(data: Any) -> RemoteInvoice:
    """A client invoice, bare or wrapped in ``{"client_invoice": {...}}``."""
    record, invoice = _record(data, "client_invoice", "client invoice")
    remote_id = record.identifier("id", invoice.get("id"), required=True)
    status = record.text("status", invoice.get("status"))
    if not status.strip():
        raise record.error("status", invoice.get("status"), "status is missing")
    record.number = record.text("number", invoice.get("number")) or record.text(
        "invoice_number", invoice.get("invoice_number")
    )
    client = _object(invoice.get("client"))
    total = _object(invoice.get("total_amount"))
    currency = invoice.get("currency") or total.get("currency") or "EUR"
    mapped = RemoteInvoice(
        remote_id=remote_id,
        number=record.number,
        status=map_status(status),
        customer_remote_id=record.identifier("client.id", client.get("id"))
        or record.identifier("client_id", invoice.get("client_id")),
        customer_name=_person_name(record, client, "client."),
        issue_date=record.parsed("issue_date", invoice.get("issue_date"), parse_date),
        due_date=record.parsed("due_date", invoice.get("due_date"), parse_date),
        amount=_money(record, invoice, "total_amount"),
        vat_amount=_money(record, invoice, "vat_amount"),
        currency=record.currency("currency", currency),
        paid_at=record.moment("paid_at", invoice.get("paid_at"), parse_datetime),
        remote_created_at=record.moment("created_at", invoice.get("created_at"), parse_datetime),
        remote_updated_at=record.moment("updated_at", invoice.get("updated_at"), parse_datetime),
        payment_link=record.url("invoice_url", invoice.get("invoice_url")),
        attachment_id=record.identifier("attachment_id", invoice.get("attachment_id")),
        raw=invoice,
    )
    record.check_raw()
    return mapped


def customer_from_payload(data: Any) -> RemoteCustomer:
    """A client, bare or wrapped in ``{"client": {...}}``."""
    record, client = _record(data, "client", "client")
    mapped = RemoteCustomer(
        remote_id=record.identifier("id", client.get("id"), required=True),
        name=_person_name(record, client),
        email=record.text("email", client.get("email")),
        remote_created_at=record.moment("created_at", client.get("created_at"), parse_datetime),
        remote_updated_at=record.moment("updated_at", client.get("updated_at"), parse_datetime),
        raw=client,
    )
    record.check_raw()
    return mapped


# Lists, imports, attachments -----------------------------------------------------------------
def _page_number(value: Any) -> int:
    """A page number of ``meta``: a whole number or its digits; null and missing are 0."""
    if value is None:
        return 0
    if isinstance(value, str) and _PAGE_NUMBER.fullmatch(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _bad(f"Qonto sent pagination data that is not a page number: {value!r}.")


def next_page_from_meta(data: dict, page: int) -> int | None:
    """``meta.next_page`` (None when null, missing or 0), checked against the page we asked for."""
    meta = _object(data.get("meta"))
    current = meta.get("current_page")
    if current is not None and _page_number(current) != page:
        raise _bad(f"Qonto answered page {current} when we asked for page {page}.")
    next_page = _page_number(meta.get("next_page"))
    if not next_page:
        return None
    if next_page <= page:
        raise _bad(f"Qonto pointed from page {page} back to page {next_page}.")
    return next_page


def _page(data: Any, key: str, page: int, parse) -> Page:
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise _bad(f"Qonto sent a list without {key!r}.")
    # Drift: Qonto has sent null entries in lists; they carry nothing to mirror.
    records = [item for item in items if item is not None]
    return Page.mapped(records, parse, number=page, next_page=next_page_from_meta(data, page))


def invoices_page_from_payload(data: Any, page: int) -> Page[RemoteInvoice]:
    return _page(data, "client_invoices", page, invoice_from_payload)


def customers_page_from_payload(data: Any, page: int) -> Page[RemoteCustomer]:
    return _page(data, "clients", page, customer_from_payload)


def subscription_from_payload(data: Any) -> RemoteSubscription:
    """A webhook subscription, bare or wrapped in ``{"webhook_subscription": {...}}``."""
    record, subscription = _record(data, "webhook_subscription", "webhook subscription")
    types = subscription.get("types")
    if not isinstance(types, list) or not types:
        raise record.error("types", types, "types is not a list of event types")
    return RemoteSubscription(
        remote_id=record.identifier("id", subscription.get("id"), required=True),
        event_types=tuple(record.text("types", value, limit=64) for value in types),
        url=record.url("callback_url", subscription.get("callback_url")),
        secret=record.text("secret", subscription.get("secret")),
    )


def subscriptions_page_from_payload(data: Any, page: int) -> Page[RemoteSubscription]:
    """Qonto's reference names the list ``subscriptions``, its TypeScript client reads
    ``webhook_subscriptions``: either is accepted."""
    key = "subscriptions" if isinstance(data, dict) and "subscriptions" in data else "webhook_subscriptions"
    return _page(data, key, page, subscription_from_payload)


def imported_invoices_from_payload(data: Any) -> list[tuple[str, str]]:
    """Bulk import answer -> ``[(file_name, invoice_id), ...]`` in Qonto's order."""
    rows = data.get("client_invoices") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise _bad("Qonto did not list the imported invoices.")
    result = []
    for row in rows:
        row = _object(row)
        invoice_id, file_name = row.get("invoice_id"), _text(row.get("file_name"))
        if not isinstance(invoice_id, str) or not invoice_id.strip() or len(invoice_id) > ID_LENGTH:
            raise _bad(f"Qonto imported {file_name or 'a file'} without giving its invoice id.")
        result.append((file_name, invoice_id))
    return result


def attachment_url_from_payload(data: Any) -> str:
    """``{"attachment": {"url": ...}}`` -> the signed URL (valid 30 minutes)."""
    attachment = _object(data.get("attachment")) if isinstance(data, dict) else {}
    url = attachment.get("url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise _bad("Qonto sent an attachment without a download link.")
    return url


# Errors -------------------------------------------------------------------------------------
def _describe_error(error: Any) -> str:
    if not isinstance(error, dict):
        return _text(error)
    detail = _text(error.get("detail")) or _text(error.get("title")) or _text(error.get("code"))
    source = _object(error.get("source"))
    # "/data/attributes/currency" -> "currency"; a query parameter is named as is.
    name = _text(source.get("pointer")).rstrip("/").rsplit("/", 1)[-1] or _text(source.get("parameter"))
    if name and name not in detail:
        return f"{name}: {detail}" if detail else name
    return detail


def error_from_payload(body: Any) -> tuple[str, str, Any]:
    """An error body -> (plain message, trace id, details).

    JSON:API ``{"errors": [{"code", "detail", "source": {"pointer" | "parameter"}}], "trace_id"}``,
    and the flat ``{"code", "message"}`` some endpoints send. Anything else gives an empty message.
    """
    if not isinstance(body, dict):
        return "", "", None
    trace_id = _text(body.get("trace_id"))
    errors = body.get("errors")
    if isinstance(errors, dict):
        errors = [errors]
    if isinstance(errors, list) and errors:
        parts = [part for part in map(_describe_error, errors) if part]
        return "; ".join(dict.fromkeys(parts)), trace_id, errors
    message = _text(body.get("message")) or _text(body.get("detail")) or _text(body.get("error_description"))
    code = _text(body.get("code")) or _text(body.get("error"))
    if message or code:
        return (
            message or code,
            trace_id,
            {key: body[key] for key in ("code", "message") if key in body} or None,
        )
    return "", trace_id, None


# Bulk import -------------------------------------------------------------------------------
MAX_IMPORT_FILES = 5
MAX_IMPORT_FILE_BYTES = 5 * 1024 * 1024
MAX_IMPORT_TOTAL_BYTES = 15 * 1024 * 1024
_SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


def _megabytes(size: int) -> str:
    return f"{math.ceil(size * 10 / (1024 * 1024)) / 10:g} MB"


def import_parts(files: list[PdfFile]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """The multipart of ``POST /v2/client_invoices/bulk``: the field ``client_invoices`` once per file.

    Qonto imports all the files or none, so every limit is checked here, before anything is sent.
    """

    def refuse(message: str) -> ProviderValidationError:
        return ProviderValidationError(message, provider=PROVIDER)

    if not files:
        raise refuse("Choose at least one invoice file to import into Qonto.")
    if len(files) > MAX_IMPORT_FILES:
        raise refuse(f"Qonto imports at most {MAX_IMPORT_FILES} files at once; {len(files)} were chosen.")
    parts = []
    for file in files:
        name = file.name.strip()
        if not name:
            raise refuse("An invoice file to import into Qonto has no name.")
        if not file.content:
            raise refuse(f"{name} is empty.")
        if len(file.content) > MAX_IMPORT_FILE_BYTES:
            raise refuse(
                f"{name} is {_megabytes(len(file.content))}; Qonto accepts files of at most "
                f"{_megabytes(MAX_IMPORT_FILE_BYTES)}."
            )
        content_type = next((kind for magic, kind in _SIGNATURES if file.content.startswith(magic)), None)
        if content_type is None:
            raise refuse(f"{name} is not a PDF, JPEG or PNG file; Qonto imports only those.")
        parts.append(("client_invoices", (name, file.content, content_type)))
    total = sum(len(file.content) for file in files)
    if total > MAX_IMPORT_TOTAL_BYTES:
        raise refuse(
            f"Together the files are {_megabytes(total)}; Qonto accepts at most "
            f"{_megabytes(MAX_IMPORT_TOTAL_BYTES)} per import. Import them in smaller groups."
        )
    return parts

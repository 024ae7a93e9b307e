"""Qonto payloads to our typed shapes and back: the one place Qonto's formats are read and written.

Pure functions, no HTTP. Qonto's payloads drift (undeclared fields, ``null`` where an object is
documented, ``attachment_id`` missing), so everything we do not need is ignored, optional objects may
be absent or null, and the whole payload is kept in ``raw``. What we do need and cannot trust (an
id, a status, inconsistent amounts, an impossible date) raises :class:`ProviderBadResponse` naming
the invoice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from integrations.errors import ProviderBadResponse, ProviderValidationError
from integrations.types import (
    STATUS_CANCELED,
    STATUS_DRAFT,
    STATUS_OPEN,
    STATUS_PAID,
    Page,
    PdfFile,
    RemoteCustomer,
    RemoteInvoice,
)

PROVIDER = "qonto"
PARIS = ZoneInfo("Europe/Paris")
T = TypeVar("T")

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

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


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
    return parsed.astimezone(UTC)


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
    """The latest ``paid_at`` Qonto accepts at ``now``.

    Qonto refuses a ``paid_at`` in the future without saying whose "today" it means. Between
    midnight in Paris and midnight UTC (one or two hours a day) the two disagree, so take the earlier.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return min(now.astimezone(UTC).date(), now.astimezone(PARIS).date())


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


def _decimal(value: Any, what: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{what} is not a number: {value!r}")
    try:
        # A JSON number arrives as float; its repr is the shortest exact text, so no binary noise.
        amount = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise ValueError(f"{what} is not a number: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"{what} is not a number: {value!r}")
    return amount


def _money(data: dict, field: str) -> Decimal | None:
    """``{field: {"value": "12.52"}}`` as Decimal, checked against ``{field}_cents`` when present."""
    obj = data.get(field)
    amount = _decimal(obj.get("value") if isinstance(obj, dict) else obj, field)
    cents = _decimal(data.get(f"{field}_cents"), f"{field}_cents")
    if cents is None:
        return amount
    if cents != cents.to_integral_value():
        raise ValueError(f"{field}_cents is not a whole number: {cents}")
    from_cents = cents.scaleb(-2)
    if amount is None:
        return from_cents
    if amount != from_cents:
        raise ValueError(f"{field} is {amount} but {field}_cents says {from_cents}")
    return amount


def _date_at(obj: dict, name: str) -> date | None:
    return parse_date(obj.get(name))


def _datetime_at(obj: dict, name: str) -> datetime | None:
    return parse_datetime(obj.get(name))


def _checked(subject: str, obj: dict, name: str, parse: Callable[[dict, str], T]) -> T:
    """``parse(obj, name)``, a refusal naming the invoice or client and the field."""
    try:
        return parse(obj, name)
    except ValueError as exc:
        raise _bad(f"Qonto sent {subject} with an invalid {name}: {exc}.") from exc


def _object(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _unwrap(data: Any, key: str, what: str) -> dict:
    if isinstance(data, dict) and isinstance(data.get(key), dict):
        return data[key]
    if isinstance(data, dict) and key not in data:
        return data
    raise _bad(f"Qonto sent a {what} that is not a JSON object.")


def _person_name(obj: dict) -> str:
    name = _text(obj.get("name"))
    if name:
        return name
    return " ".join(part for part in (_text(obj.get("first_name")), _text(obj.get("last_name"))) if part)


# Invoices -------------------------------------------------------------------------------------
def invoice_from_payload(data: Any) -> RemoteInvoice:
    """A client invoice, bare or wrapped in ``{"client_invoice": {...}}``."""
    invoice = _unwrap(data, "client_invoice", "client invoice")
    remote_id = _text(invoice.get("id"))
    if not remote_id:
        raise _bad("Qonto sent a client invoice without an id.")
    number = _text(invoice.get("number")) or _text(invoice.get("invoice_number"))
    label = f"invoice {number} ({remote_id})" if number else f"invoice {remote_id}"
    if not _text(invoice.get("status")):
        raise _bad(f"Qonto sent {label} without a status.")

    client = _object(invoice.get("client"))
    total = _object(invoice.get("total_amount"))
    return RemoteInvoice(
        remote_id=remote_id,
        number=number,
        status=map_status(invoice["status"]),
        customer_remote_id=_text(client.get("id")) or _text(invoice.get("client_id")),
        customer_name=_person_name(client),
        issue_date=_checked(label, invoice, "issue_date", _date_at),
        due_date=_checked(label, invoice, "due_date", _date_at),
        amount=_checked(label, invoice, "total_amount", _money),
        vat_amount=_checked(label, invoice, "vat_amount", _money),
        currency=(_text(invoice.get("currency")) or _text(total.get("currency")) or "EUR").upper(),
        paid_at=_checked(label, invoice, "paid_at", _datetime_at),
        remote_created_at=_checked(label, invoice, "created_at", _datetime_at),
        remote_updated_at=_checked(label, invoice, "updated_at", _datetime_at),
        payment_link=_text(invoice.get("invoice_url")),
        attachment_id=_text(invoice.get("attachment_id")),
        raw=invoice,
    )


def customer_from_payload(data: Any) -> RemoteCustomer:
    """A client, bare or wrapped in ``{"client": {...}}``."""
    client = _unwrap(data, "client", "client")
    remote_id = _text(client.get("id"))
    if not remote_id:
        raise _bad("Qonto sent a client without an id.")
    label = f"client {remote_id}"
    return RemoteCustomer(
        remote_id=remote_id,
        name=_person_name(client),
        email=_text(client.get("email")),
        remote_created_at=_checked(label, client, "created_at", _datetime_at),
        remote_updated_at=_checked(label, client, "updated_at", _datetime_at),
        raw=client,
    )


# Lists, imports, attachments -----------------------------------------------------------------
def next_page_from_meta(data: dict, page: int) -> int | None:
    """``meta.next_page`` (None when null, missing or 0), checked against the page we asked for."""
    meta = _object(data.get("meta"))
    try:
        current = meta.get("current_page")
        if current is not None and int(current) != page:
            raise _bad(f"Qonto answered page {current} when we asked for page {page}.")
        next_page = int(meta.get("next_page") or 0)
    except (TypeError, ValueError) as exc:
        raise _bad("Qonto sent pagination data that is not a page number.") from exc
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
    return Page(
        items=[parse(item) for item in items if item is not None],
        number=page,
        next_page=next_page_from_meta(data, page),
    )


def invoices_page_from_payload(data: Any, page: int) -> Page[RemoteInvoice]:
    return _page(data, "client_invoices", page, invoice_from_payload)


def customers_page_from_payload(data: Any, page: int) -> Page[RemoteCustomer]:
    return _page(data, "clients", page, customer_from_payload)


def imported_invoices_from_payload(data: Any) -> list[tuple[str, str]]:
    """Bulk import answer -> ``[(file_name, invoice_id), ...]`` in Qonto's order."""
    rows = data.get("client_invoices") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise _bad("Qonto did not list the imported invoices.")
    result = []
    for row in rows:
        row = _object(row)
        invoice_id, file_name = _text(row.get("invoice_id")), _text(row.get("file_name"))
        if not invoice_id:
            raise _bad(f"Qonto imported {file_name or 'a file'} without giving its invoice id.")
        result.append((file_name, invoice_id))
    return result


def attachment_url_from_payload(data: Any) -> str:
    """``{"attachment": {"url": ...}}`` -> the signed URL (valid 30 minutes)."""
    attachment = _object(data.get("attachment")) if isinstance(data, dict) else {}
    url = _text(attachment.get("url"))
    if not url:
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

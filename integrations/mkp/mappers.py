"""MijnKlantportaal formats, both ways. The only module that knows how MKP writes dates, amounts and pages.

Pure functions: payload in, typed value out (and back for the fields we send).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from integrations.errors import ProviderBadResponse
from integrations.types import STATUS_OPEN, STATUS_PAID, Page, RemoteCustomer, RemoteInvoice

T = TypeVar("T")

PROVIDER = "mkp"
#: MKP reads the naive ``paidAt`` we send as local time in the Netherlands.
PROVIDER_TIME_ZONE = ZoneInfo("Europe/Amsterdam")
CENT = Decimal("0.01")

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# Formats we send ---------------------------------------------------------------------------------
def format_date(d: date) -> str:
    """``YYYY-mm-dd``. A datetime is refused: its calendar day depends on a time zone."""
    if isinstance(d, datetime) or not isinstance(d, date):
        raise TypeError(f"Expected a date, got {type(d).__name__}.")
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


def format_amount(amount: Decimal) -> str:
    """Two decimals with a dot (``12.95``). Refuses floats, negatives, NaN and fractions of a cent."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"Expected a Decimal amount, got {type(amount).__name__}.")
    if not amount.is_finite():
        raise ValueError(f"Amount {amount} is not a number.")
    if amount < 0:
        raise ValueError(f"Amount {amount} is negative.")
    cents = amount.quantize(CENT)
    if cents != amount:
        raise ValueError(f"Amount {amount} has more than two decimals.")
    if cents.is_zero():
        cents = Decimal("0.00")  # never "-0.00"
    return f"{cents:.2f}"


def format_paid_at(dt: datetime) -> str:
    """``YYYY-mm-dd HH:MM:SS`` in Amsterdam local time, from an aware datetime."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("The payment moment must be an aware datetime.")
    return dt.astimezone(PROVIDER_TIME_ZONE).strftime("%Y-%m-%d %H:%M:%S")


# Formats we read ---------------------------------------------------------------------------------
def parse_date(value: str) -> date:
    """``YYYY-mm-dd``; an impossible date (``2024-04-31``) raises ValueError."""
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise ValueError(f"Not a YYYY-mm-dd date: {value!r}.")
    return date.fromisoformat(value)


def parse_datetime(value: str) -> datetime:
    """An ATOM datetime (``2024-05-28T21:00:00+02:00``), returned aware, in UTC."""
    if not isinstance(value, str) or "T" not in value:
        raise ValueError(f"Not an ATOM datetime: {value!r}.")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"ATOM datetime without an offset: {value!r}.")
    return parsed.astimezone(UTC)


def parse_amount(value: Any) -> Decimal:
    """A decimal string (``"12.95"``) as a Decimal. Numbers are read through their text form."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"Not an amount: {value!r}.")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError(f"Not an amount: {value!r}.") from exc
    if not amount.is_finite():
        raise ValueError(f"Not an amount: {value!r}.")
    return amount


def page_number_from_url(url: str | None) -> int | None:
    """The ``page`` query parameter of a ``*_page_url``; tolerates the doc's stray comma (``page=2,``)."""
    if not url:
        return None
    values = parse_qs(urlsplit(url).query).get("page")
    if not values:
        return None
    text = values[0].strip().rstrip(",").strip()
    if not text.isdigit():
        return None
    number = int(text)
    return number if number >= 1 else None


# Payloads ----------------------------------------------------------------------------------------
def invoice_from_payload(data: Any) -> RemoteInvoice:
    remote_id = _require_id(data, "invoice")
    paid_at = _optional(data, "paidAt", parse_datetime, remote_id)
    return RemoteInvoice(
        remote_id=remote_id,
        number=_text(data.get("invoiceNumber")),
        status=STATUS_PAID if paid_at is not None else STATUS_OPEN,
        customer_remote_id=_text(data.get("customerId")),
        issue_date=_optional(data, "issuedAt", parse_date, remote_id),
        due_date=_optional(data, "dueAt", parse_date, remote_id),
        amount=_optional(data, "amount", parse_amount, remote_id),
        currency=_text(data.get("currency")) or "EUR",
        paid_at=paid_at,
        remote_created_at=_optional(data, "createdAt", parse_datetime, remote_id),
        payment_link=_link(data, "onlinePaymentLink"),
        raw=data,
    )


def customer_from_payload(data: Any) -> RemoteCustomer:
    remote_id = _require_id(data, "customer")
    return RemoteCustomer(
        remote_id=remote_id,
        name=_text(data.get("companyName")),
        email=_text(data.get("primaryEmail")),
        remote_created_at=_optional(data, "createdAt", parse_datetime, remote_id),
        raw=data,
    )


def page_from_payload(data: Any, parse_item: Callable[[Any], T], *, requested_page: int) -> Page[T]:
    """A Laravel ``simplePaginate`` envelope: ``data``, ``current_page``, ``next_page_url``.

    An envelope that would stop a scan early (a ``next_page_url`` we cannot read) or loop it (another
    page than the one asked for, a next page that is not later) is refused: a scan that ends early
    would make every later invoice look deleted.
    """
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise _bad("The list answer has no 'data' list.")
    current = data.get("current_page")
    if current is not None and current != requested_page:
        raise _bad(f"Asked for page {requested_page}, got page {current!r}.")
    next_url = data.get("next_page_url")
    next_page = page_number_from_url(next_url) if next_url else None
    if next_url and (next_page is None or next_page <= requested_page):
        raise _bad(f"The list answer's next_page_url does not point to a later page: {next_url!r}.")
    items = [parse_item(item) for item in data["data"]]
    return Page(items=items, number=requested_page, next_page=next_page)


def pdf_link_from_payload(data: Any) -> tuple[str, datetime]:
    """``{"link": ..., "expiresAt": ...}`` → (download URL, expiry)."""
    if not isinstance(data, dict):
        raise _bad("The PDF answer is not an object.")
    link = data.get("link")
    if not isinstance(link, str) or not link.startswith(("https://", "http://")):
        raise _bad("The PDF answer has no download link.")
    try:
        expires_at = parse_datetime(data.get("expiresAt"))
    except ValueError as exc:
        raise _bad(f"The PDF answer has an unreadable expiresAt: {data.get('expiresAt')!r}.") from exc
    return link, expires_at


# Helpers -----------------------------------------------------------------------------------------
def _bad(message: str) -> ProviderBadResponse:
    return ProviderBadResponse(message, provider=PROVIDER)


def _require_id(data: Any, kind: str) -> str:
    if not isinstance(data, dict):
        raise _bad(f"The {kind} is not a JSON object.")
    remote_id = data.get("id")
    if not isinstance(remote_id, str) or not remote_id.strip():
        raise _bad(f"The {kind} has no id.")
    return remote_id


def _optional(data: dict, key: str, parse: Callable[[Any], T], remote_id: str) -> T | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise _bad(f"Object {remote_id} has an unreadable {key}: {value!r}.") from exc


def _text(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


def _link(data: dict, name: str) -> str:
    links = data.get("links")
    link = links.get(name) if isinstance(links, dict) else None
    href = link.get("href") if isinstance(link, dict) else None
    return href if isinstance(href, str) else ""

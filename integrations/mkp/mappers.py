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
from integrations.records import Record
from integrations.types import STATUS_OPEN, STATUS_PAID, Page, RemoteCustomer, RemoteInvoice, RemoteWebhook

T = TypeVar("T")

PROVIDER = "mkp"
LABEL = "MijnKlantportaal"
#: MKP reads the naive ``paidAt`` we send as local time in the Netherlands.
PROVIDER_TIME_ZONE = ZoneInfo("Europe/Amsterdam")
CENT = Decimal("0.01")

_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PAGE_RE = re.compile(r"[0-9]{1,9}")


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
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise ValueError(f"Not a YYYY-mm-dd date: {value!r}.")
    return date.fromisoformat(value)


def parse_datetime(value: str) -> datetime:
    """An ATOM datetime (``2024-05-28T21:00:00+02:00``), returned aware, in UTC."""
    if not isinstance(value, str) or "T" not in value:
        raise ValueError(f"Not an ATOM datetime: {value!r}.")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"ATOM datetime without an offset: {value!r}.")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before the first moment Python has
        raise ValueError(f"ATOM datetime out of range: {value!r}.") from None


def parse_amount(value: Any) -> Decimal:
    """A decimal string (``"12.95"``) as a Decimal. Numbers are read through their text form."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"Not an amount: {value!r}.")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else repr(value))
    except InvalidOperation as exc:
        raise ValueError(f"Not an amount: {value!r}.") from exc
    if not amount.is_finite():
        raise ValueError(f"Not an amount: {value!r}.")
    return amount


def page_number_from_url(url: str | None) -> int | None:
    """The ``page`` query parameter of a ``*_page_url``; tolerates the doc's stray comma (``page=2,``).
    None when there is no readable page number (a broken URL included)."""
    if not url:
        return None
    try:
        values = parse_qs(urlsplit(url).query).get("page")
    except ValueError:  # "http://[broken"
        return None
    if not values:
        return None
    text = values[0].strip().rstrip(",").strip()
    if not _PAGE_RE.fullmatch(text):
        return None
    number = int(text)
    return number if number >= 1 else None


# Payloads ----------------------------------------------------------------------------------------
def invoice_from_payload(data: Any) -> RemoteInvoice:
    record = _record(data, "invoice")
    record.number = record.text("invoiceNumber", data.get("invoiceNumber"))
    paid_at = record.moment("paidAt", data.get("paidAt"), parse_datetime)
    invoice = RemoteInvoice(
        remote_id=record.identifier("id", data.get("id"), required=True),
        number=record.number,
        status=STATUS_PAID if paid_at is not None else STATUS_OPEN,
        customer_remote_id=record.identifier("customerId", data.get("customerId")),
        issue_date=record.parsed("issuedAt", data.get("issuedAt"), parse_date),
        due_date=record.parsed("dueAt", data.get("dueAt"), parse_date),
        amount=record.amount("amount", data.get("amount"), parse_amount),
        currency=record.currency("currency", data.get("currency") or "EUR"),
        paid_at=paid_at,
        remote_created_at=record.moment("createdAt", data.get("createdAt"), parse_datetime),
        payment_link=record.url("links.onlinePaymentLink.href", _link(data, "onlinePaymentLink")),
        raw=data,
    )
    record.check_raw()
    return invoice


def customer_from_payload(data: Any) -> RemoteCustomer:
    record = _record(data, "customer")
    customer = RemoteCustomer(
        remote_id=record.identifier("id", data.get("id"), required=True),
        name=record.text("companyName", data.get("companyName")),
        email=record.text("primaryEmail", data.get("primaryEmail")),
        remote_created_at=record.moment("createdAt", data.get("createdAt"), parse_datetime),
        raw=data,
    )
    record.check_raw()
    return customer


def page_from_payload(data: Any, parse_item: Callable[[Any], T], *, requested_page: int) -> Page[T]:
    """A Laravel ``simplePaginate`` envelope: ``data``, ``current_page``, ``next_page_url``.

    Each record is mapped on its own: one the mirror cannot hold goes to ``problems``, the others
    to ``items``. An envelope that would stop a scan early (a ``next_page_url`` we cannot read) or
    loop it (another page than the one asked for, a next page that is not later) is refused: a
    scan that ends early would make every later invoice look deleted.
    """
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise _bad("The list answer has no 'data' list.")
    current = data.get("current_page")
    if current is not None and (isinstance(current, bool) or current != requested_page):
        raise _bad(f"Asked for page {requested_page}, got page {current!r}.")
    next_url = data.get("next_page_url")
    if next_url is not None and not isinstance(next_url, str):
        raise _bad(f"The list answer's next_page_url is not an address: {next_url!r}.")
    next_page = page_number_from_url(next_url)
    if next_url and (next_page is None or next_page <= requested_page):
        raise _bad(f"The list answer's next_page_url does not point to a later page: {next_url!r}.")
    return Page.mapped(data["data"], parse_item, number=requested_page, next_page=next_page)


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


def webhook_from_payload(data: Any) -> RemoteWebhook:
    """``{"id": "wbh_...", "type", "url", "secret", "createdAt"}``."""
    record = _record(data, "webhook")
    webhook = RemoteWebhook(
        remote_id=record.identifier("id", data.get("id"), required=True),
        event_type=record.text("type", data.get("type"), limit=64),
        url=record.text("url", data.get("url"), limit=512),
        secret=record.text("secret", data.get("secret")),
    )
    return webhook


# Helpers -----------------------------------------------------------------------------------------
def _bad(message: str) -> ProviderBadResponse:
    return ProviderBadResponse(message, provider=PROVIDER)


def _record(data: Any, what: str) -> Record:
    if not isinstance(data, dict):
        record = Record(provider=PROVIDER, label=LABEL, what=what, data=data, id_value=None)
        raise record.error("", data, "it is not a JSON object")
    return Record(provider=PROVIDER, label=LABEL, what=what, data=data, id_value=data.get("id"))


def _link(data: dict, name: str) -> Any:
    links = data.get("links")
    link = links.get(name) if isinstance(links, dict) else None
    return link.get("href") if isinstance(link, dict) else None

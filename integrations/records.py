"""What one provider record must be for the mirror to hold it: the checks both mappers share.

A mapper reads the fields of one record through a :class:`Record`. Each method returns a value
the database can store (strings within their column, money as Decimal within ``numeric(14, 2)``,
aware datetimes within the range every time zone can show) or raises
:class:`~integrations.errors.ProviderRecordError` naming the field, the value, the record and its
payload. How a provider writes a date or an amount stays in its mapper: the parser is passed in.

The lengths are those of the columns in ``invoices/models/mirror.py`` (a test keeps them equal).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import orjson

from integrations.errors import ProviderRecordError

T = TypeVar("T")

ID_LENGTH = 64  # remote ids: Invoice.remote_id, customer_remote_id, attachment_id; Customer.remote_id
TEXT_LENGTH = 255  # Invoice.number, customer_name; Customer.name, email
URL_LENGTH = 500  # Invoice.payment_link
KEY_LENGTH = 255  # SyncProblem.remote_id: the id as sent, when it fits
AMOUNT_DIGITS, AMOUNT_PLACES = 14, 2  # Invoice.amount, vat_amount
#: Any stored moment can be shown in any time zone (a day inside Python's datetime range).
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)

_CENT = Decimal(1).scaleb(-AMOUNT_PLACES)
_CURRENCY = re.compile(r"[A-Za-z]{3}")
#: How orjson writes a NUL character, which PostgreSQL holds neither in text nor in jsonb.
_NUL = b"\\u0000"


def record_key(value: Any, data: Any) -> str:
    """The key a record is quarantined under: its id as sent when that is usable text; otherwise a
    digest of the id (an object, a number: the same at every sighting), or of the whole record
    when it has no id at all."""
    if isinstance(value, str) and value.strip() and len(value) <= KEY_LENGTH:
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        value = data
    try:
        text = json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError):  # keys of mixed types, a structure too deep
        text = repr(value)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Record:
    """One record of ``provider`` being mapped; ``what`` names it in messages (``invoice``)."""

    def __init__(self, *, provider: str, label: str, what: str, data: Any, id_value: Any) -> None:
        self.provider = provider
        self.label = label
        self.what = what
        self.data = data
        self.remote_id = record_key(id_value, data)
        #: The record's number once read, to name it in messages as staff know it.
        self.number = ""

    def error(self, field: str, value: Any, problem: str) -> ProviderRecordError:
        digest = self.remote_id.startswith("sha256:")
        if self.number:
            subject = f"{self.what} {self.number} ({'no usable id' if digest else self.remote_id})"
        else:
            subject = f"{self.what} without a usable id" if digest else f"{self.what} {self.remote_id}"
        return ProviderRecordError(
            f"{self.label} sent {subject}: {problem}.",
            field=field,
            value=value,
            remote_id=self.remote_id,
            raw=self.data,
            provider=self.provider,
        )

    # Text -------------------------------------------------------------------------------------
    def text(self, field: str, value: Any, *, limit: int = TEXT_LENGTH) -> str:
        """A string as sent (or a whole number, read as its digits) of at most ``limit``
        characters; None is empty. Anything else (an object, a list, true) is refused, not stored as
        its repr."""
        if value is None:
            return ""
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() <= 64:
            value = str(value)
        if not isinstance(value, str):
            raise self.error(field, value, f"{field} is not text")
        if len(value) > limit:
            raise self.error(field, value, f"{field} has {len(value)} characters, the mirror holds {limit}")
        if "\x00" in value:
            raise self.error(field, value, f"{field} contains a NUL character")
        return value

    def identifier(self, field: str, value: Any, *, required: bool = False) -> str:
        text = self.text(field, value, limit=ID_LENGTH)
        if required and not text.strip():
            raise self.error(field, value, f"{field} is missing")
        return text

    def url(self, field: str, value: Any) -> str:
        """An http(s) address of at most :data:`URL_LENGTH` characters, or empty."""
        url = self.text(field, value, limit=URL_LENGTH)
        if url and not url.lower().startswith(("https://", "http://")):
            raise self.error(field, value, f"{field} is not an http(s) address")
        return url

    def currency(self, field: str, value: Any) -> str:
        code = self.text(field, value, limit=3)
        if not _CURRENCY.fullmatch(code):
            raise self.error(field, value, f"{field} is not a three-letter currency code")
        return code.upper()

    # Parsed values ----------------------------------------------------------------------------
    def parsed(self, field: str, value: Any, parse: Callable[[Any], T]) -> T | None:
        """``parse(value)`` (a provider's date format, say), None for null or empty; whatever the
        parser cannot read is refused, naming the field."""
        if value is None or value == "":
            return None
        try:
            return parse(value)
        except (ValueError, TypeError) as exc:
            raise self.error(field, value, f"{field} is unreadable ({str(exc).rstrip('.')})") from exc
        except ArithmeticError as exc:  # decimal.Overflow, OverflowError: beyond what can be computed
            raise self.error(field, value, f"{field} is out of range") from exc

    def moment(self, field: str, value: Any, parse: Callable[[Any], datetime]) -> datetime | None:
        """An aware datetime (the parser sees to that) within :data:`EARLIEST` .. :data:`LATEST`."""
        moment = self.parsed(field, value, parse)
        if moment is not None and not EARLIEST <= moment <= LATEST:
            raise self.error(field, value, f"{field} is out of range")
        return moment

    def amount(self, field: str, value: Any, parse: Callable[[Any], Decimal]) -> Decimal | None:
        """Money that ``numeric(14, 2)`` holds: finite, under 10^12, whole cents."""
        amount = self.parsed(field, value, parse)
        if amount is None:
            return None
        if not amount.is_finite():
            raise self.error(field, value, f"{field} is not a number")
        if not amount.is_zero() and amount.adjusted() >= AMOUNT_DIGITS - AMOUNT_PLACES:
            raise self.error(field, value, f"{field} is too large for the mirror")
        if amount.as_tuple().exponent < -AMOUNT_PLACES and amount != amount.quantize(_CENT):
            raise self.error(field, value, f"{field} has more than {AMOUNT_PLACES} decimals")
        return amount

    # The payload ------------------------------------------------------------------------------
    def check_raw(self) -> None:
        """The payload is stored as it came: it must be JSON the database holds (no NUL character,
        no integer beyond 64 bits)."""
        try:
            encoded = orjson.dumps(self.data)
        except TypeError as exc:
            raise self.error("raw", None, f"the payload cannot be stored ({exc})") from exc
        if _NUL in encoded and _has_nul(self.data):  # the text "\\u0000" is harmless
            raise self.error("raw", None, "the payload contains a NUL character")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False

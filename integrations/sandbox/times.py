"""Clocks and the date formats of both providers.

MijnKlantportaal writes ATOM timestamps in Europe/Amsterdam and reads ``YYYY-mm-dd H:i:s`` in
that zone. Qonto writes ISO 8601 with the Europe/Paris offset and judges "today" in Paris.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
PARIS = ZoneInfo("Europe/Paris")

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MKP_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def utcnow() -> datetime:
    return datetime.now(UTC)


def atom(value: datetime | None) -> str | None:
    """PHP's DATE_ATOM in Amsterdam time: ``2024-05-28T21:00:00+02:00``."""
    return None if value is None else value.astimezone(AMSTERDAM).isoformat(timespec="seconds")


def paris_iso(value: datetime | None, *, milliseconds: bool = False) -> str | None:
    if value is None:
        return None
    return value.astimezone(PARIS).isoformat(timespec="milliseconds" if milliseconds else "seconds")


def paris_today() -> date:
    return utcnow().astimezone(PARIS).date()


def parse_date(value: str) -> date | None:
    """A real calendar date written ``YYYY-mm-dd``; None for anything else (2024-04-31 included)."""
    if not _DATE.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def parse_mkp_datetime(value: str) -> datetime | None:
    """``YYYY-mm-dd HH:MM:SS`` read as Amsterdam wall time; None when malformed or impossible."""
    if not _MKP_DATETIME.match(value):
        return None
    try:
        naive = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return naive.replace(tzinfo=AMSTERDAM)


def parse_iso_datetime(value: str) -> datetime | None:
    """ISO 8601 date or datetime (``Z`` accepted); a value without offset is UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed

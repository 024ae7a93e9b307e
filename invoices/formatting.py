"""How the admin writes money and moments: one format for every page.

Money: the currency, thousands separators and two decimals ("EUR 1,397.19"), right-aligned by the
page's CSS. Moments: in the staff member's time zone. A Qonto payment keeps only its date (Qonto
stores midnight, Paris time, of the day given), so it is shown as a date, never with a time.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import get_language

from invoices.models import Invoice, Provider

#: The zone whose midnight Qonto stores for a payment date.
QONTO_ZONE = ZoneInfo("Europe/Paris")

EMPTY = "—"


def money(amount: Decimal | None, currency: str) -> str:
    """``EUR 1,397.19``; an unknown amount is an empty cell."""
    if amount is None:
        return ""
    return f"{currency} {amount:,.2f}"


def moment(value: datetime | None) -> str:
    """``18 Nov 2026 14:05`` in the current time zone."""
    return date_format(timezone.localtime(value), "j M Y H:i") if value else EMPTY


def day(value: date | None) -> str:
    """``18 Nov 2026``, like Django's own date columns."""
    return _day(value, get_language()) if value else EMPTY


@functools.lru_cache(maxsize=4096)
def _day(value: date, language: str | None) -> str:
    # A page of invoices shows few distinct dates, each twice a row (due, issued): formatted once.
    return date_format(value, "j M Y")


def paid_on(invoice: Invoice) -> str:
    """When the invoice was paid: a date for Qonto (which keeps only the date), a moment otherwise."""
    if invoice.paid_at is None:
        return EMPTY
    if invoice.provider == Provider.QONTO:
        return day(invoice.paid_at.astimezone(QONTO_ZONE).date())
    return moment(invoice.paid_at)

"""How the admin writes money and moments: one format for every page.

Money: the currency, thousands separators and two decimals ("EUR 1,397.19"), right-aligned by the
page's CSS. Moments: in the staff member's time zone, "7 Dec 2026 16:22"; dates "7 Dec 2026". A
Qonto payment keeps only its date (Qonto stores midnight, Paris time, of the day given), so it is
shown as a date, never with a time. Django's own date and time fields use the same two formats
(``config/formats``), so a page reads the same whether a value comes from here or from a field.
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

#: What an empty cell or field reads (the admin site's ``empty_value_display`` too).
EMPTY = "—"
MOMENT_FORMAT = "j M Y H:i"
DAY_FORMAT = "j M Y"


def money(amount: Decimal | None, currency: str) -> str:
    """``EUR 1,397.19``; an unknown amount is an empty cell."""
    if amount is None:
        return ""
    return f"{currency} {amount:,.2f}"


def moment(value: datetime | None) -> str:
    """``18 Nov 2026 14:05`` in the current time zone."""
    return date_format(timezone.localtime(value), MOMENT_FORMAT) if value else EMPTY


def day(value: date | None) -> str:
    """``18 Nov 2026``, like Django's own date columns."""
    return _day(value, get_language()) if value else EMPTY


@functools.lru_cache(maxsize=4096)
def _day(value: date, language: str | None) -> str:
    # A page of invoices shows few distinct dates, each twice a row (due, issued): formatted once.
    return date_format(value, DAY_FORMAT)


def paid_on(invoice: Invoice) -> str:
    """When the invoice was paid: a date for Qonto (which keeps only the date), a moment otherwise."""
    if invoice.paid_at is None:
        return EMPTY
    return payment(provider=invoice.provider, paid_at=invoice.paid_at)


def payment(*, provider: str, paid_at: datetime) -> str:
    """A payment moment at ``provider``: a date for Qonto, a moment otherwise."""
    if provider == Provider.QONTO:
        return day(paid_at.astimezone(QONTO_ZONE).date())
    return moment(paid_at)

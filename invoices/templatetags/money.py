"""One way to show an amount: the currency, thousands separators, two decimals ("EUR 1,397.19")."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str = "EUR") -> str:
    if amount is None:
        return ""
    return f"{currency} {Decimal(amount):,.2f}"

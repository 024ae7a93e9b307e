"""The admin's one money format in templates: ``{{ amount|money }}`` or ``{{ amount|money:currency }}``."""

from __future__ import annotations

from decimal import Decimal

from django import template

from invoices import formatting

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str = "EUR") -> str:
    return formatting.money(amount, currency)

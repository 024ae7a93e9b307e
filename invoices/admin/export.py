"""The CSV export of a selection of invoices, streamed, with every text cell made inert."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from invoices.models import Invoice

HEADER = [
    "provider",
    "number",
    "customer",
    "currency",
    "amount",
    "vat",
    "issue_date",
    "due_date",
    "status",
    "paid_at",
    "remote_id",
    "sync_state",
    "removed_at",
]
# A spreadsheet reads a cell that starts with one of these as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(text: str) -> str:
    """Text that came from staff or a provider, safe to open in Excel or LibreOffice."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _money(value) -> str:
    return "" if value is None else f"{value:.2f}"


def _moment(value) -> str:
    return timezone.localtime(value).isoformat() if value else ""


def _row(inv: Invoice) -> list[str]:
    # Amounts and dates are ours to format (plain decimals, ISO); every other cell is text.
    return [
        inert(inv.provider),
        inert(inv.number),
        inert(inv.customer.name if inv.customer else inv.customer_name),
        inert(inv.currency),
        _money(inv.amount),
        _money(inv.vat_amount),
        inv.issue_date.isoformat() if inv.issue_date else "",
        inv.due_date.isoformat() if inv.due_date else "",
        inert(inv.status),
        _moment(inv.paid_at),
        inert(inv.remote_id or ""),
        inert(inv.sync_state),
        _moment(inv.removed_at),
    ]


class _Echo:
    def write(self, value: str) -> str:
        return value


def invoices_csv_response(queryset: QuerySet[Invoice]) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def rows() -> Iterator[str]:
        yield writer.writerow(HEADER)
        ordered = queryset.select_related("customer").order_by("provider", "issue_date", "pk")
        for invoice in ordered.iterator(2000):
            yield writer.writerow(_row(invoice))

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="invoices-{timezone.localdate():%Y%m%d}.csv"'
    return response

"""The invoice list at a million rows: a paginator that counts and sums its rows in one bounded
query (PostgreSQL's estimate past ``selectors.LIST_EXACT_UP_TO`` rows) instead of counting the
whole table on every page; row links written from the list's address, reversed once rather than
once a row."""

from __future__ import annotations

import functools

from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.urls import get_script_prefix, reverse
from django.utils.functional import cached_property

from invoices import selectors
from invoices.formatting import money


class SummarizingPaginator(Paginator):
    @cached_property
    def summary(self) -> selectors.ListSummary:
        return selectors.invoice_list_summary(self.object_list)

    @cached_property
    def count(self) -> int:
        return self.summary.count

    @property
    def totals(self) -> list[str]:
        """``["EUR 1,397.19", "USD 12.00"]``: the rows' amounts added up per currency."""
        return [money(total, currency) for currency, total in self.summary.totals or []]


@functools.cache
def _list_url(script_prefix: str) -> str:
    return reverse("admin:invoices_invoice_changelist")


def list_url() -> str:
    """The invoice list's address (``/admin/invoices/invoice/``), reversed once per script prefix."""
    return _list_url(get_script_prefix())


def pdf_url(pk: int) -> str:
    """An invoice's PDF page: ``<pk>/pdf/`` under the list (``InvoiceAdmin.get_urls``)."""
    return f"{list_url()}{pk}/pdf/"


class InvoiceChangeList(ChangeList):
    def url_for_result(self, result) -> str:
        """The invoice's page: ``<pk>/change/`` under the list, as Django's admin routes it."""
        return f"{list_url()}{quote(result.pk)}/change/"

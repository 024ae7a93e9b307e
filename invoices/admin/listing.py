"""The invoice list at a million rows: a paginator that counts and sums its rows in one bounded
query (PostgreSQL's estimate past ``selectors.LIST_EXACT_UP_TO`` rows) instead of counting the
whole table on every page."""

from __future__ import annotations

from django.core.paginator import Paginator
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

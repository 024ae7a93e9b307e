"""Reads for the admin: filters, warnings, batch results."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet, Subquery
from django.utils import timezone

from invoices.models import ActionBatch, Customer, Invoice, InvoiceStatus, Provider, SyncRun, SyncState
from invoices.providers import is_configured


def overdue_q() -> Q:
    return Q(status=InvoiceStatus.OPEN, due_date__lt=timezone.localdate(), removed_at__isnull=True)


def admin_warnings() -> list[str]:
    """What staff must know before trusting the list: missing credentials, a sync that stalls."""
    warnings = []
    stale_after = timedelta(minutes=settings.SYNC_STALE_AFTER_MINUTES)
    for provider in Provider:
        if not is_configured(provider):
            warnings.append(
                f"{provider.label} has no credentials configured: nothing is synced or sent there."
            )
            continue
        last_ok = (
            SyncRun.objects.filter(provider=provider, status=SyncRun.Status.SUCCEEDED)
            .order_by("-finished_at")
            .values_list("finished_at", flat=True)
            .first()
        )
        last_failed = (
            SyncRun.objects.filter(provider=provider, status=SyncRun.Status.FAILED)
            .order_by("-started_at")
            .first()
        )
        if last_ok is None or last_ok < timezone.now() - stale_after:
            since = f"since {timezone.localtime(last_ok):%Y-%m-%d %H:%M}" if last_ok else "yet"
            reason = f" Last error: {last_failed.error}" if last_failed else ""
            warnings.append(f"{provider.label} has not synced successfully {since}.{reason}")
    return warnings


def batch_rows(batch: ActionBatch) -> list[dict]:
    """Per invoice of a bulk action: what happened so far, in words."""
    rows = []
    for item in batch.items.select_related("invoice__customer").order_by("invoice__number", "pk"):
        invoice = item.invoice
        if not item.queued:
            outcome, css = f"skipped: {item.note}", "skipped"
        elif invoice.sync_state == SyncState.FAILED:
            outcome, css = f"failed: {invoice.last_error}", "failed"
        elif invoice.sync_state == SyncState.SYNCED:
            outcome, css = ("paid" if invoice.status == InvoiceStatus.PAID else "done"), "done"
        elif invoice.last_error:
            outcome, css = f"waiting to retry: {invoice.last_error}", "pending"
        else:
            outcome, css = "in progress", "pending"
        rows.append({"invoice": invoice, "outcome": outcome, "css": css})
    return rows


# The invoice list at any size --------------------------------------------------------------------
#: Up to this many rows the list counts and sums its rows exactly; past it, PostgreSQL's estimate.
LIST_EXACT_UP_TO = 10_000
#: A search that names more customers than this looks them up in a subquery instead of a list.
SEARCH_CUSTOMERS_LISTED = 500
CENT = Decimal("0.01")


def customer_search_q(term: str) -> Q:
    """Customers by part of their name (a trigram index on PostgreSQL), or by their whole e-mail."""
    q = Q(name__icontains=term)
    if "@" in term:
        q |= Q(email__iexact=term)
    return q


def invoice_search(queryset: QuerySet[Invoice], term: str) -> QuerySet[Invoice]:
    """Invoices whose number starts with ``term`` (as typed, or in capitals), whose customer's name
    holds it, or whose provider id is ``term``. Every branch is served by an index on PostgreSQL.

    The matching customers are read first (one query), so the invoices are found through the
    customer index rather than by joining every invoice to its customer."""
    term = term.strip().strip("\"'").strip()
    if not term:
        return queryset
    q = Q(number__startswith=term) | Q(number__startswith=term.upper()) | Q(customer_name__icontains=term)
    for provider in Provider:
        q |= Q(provider=provider, remote_id=term)
    customers = Customer.objects.filter(customer_search_q(term)).values_list("pk", flat=True)
    listed = list(customers[: SEARCH_CUSTOMERS_LISTED + 1])
    if len(listed) > SEARCH_CUSTOMERS_LISTED:
        q |= Q(customer_id__in=Subquery(customers))
    elif listed:
        q |= Q(customer_id__in=listed)
    return queryset.filter(q)


@dataclass(frozen=True)
class ListSummary:
    """How many rows a list holds and what they add up to, per currency.

    Past :data:`LIST_EXACT_UP_TO` rows the rows are not added up (``totals`` is None: summing a
    million rows on every page is what made the list slow), and on PostgreSQL the count is the
    planner's estimate (``estimated``)."""

    count: int
    estimated: bool = False
    totals: list[tuple[str, Decimal]] | None = None


def invoice_list_summary(queryset: QuerySet[Invoice], *, exact_up_to: int | None = None) -> ListSummary:
    """Count and totals of ``queryset`` in one query over at most ``exact_up_to + 1`` rows.

    On PostgreSQL the planner's row estimate is read first, at every size, so the list makes the
    same number of queries with ten invoices as with a million."""
    exact_up_to = LIST_EXACT_UP_TO if exact_up_to is None else exact_up_to
    unordered = queryset.order_by()
    estimate = _planner_estimate(unordered) if connection.vendor == "postgresql" else None
    sql, params = unordered.values("currency", "amount")[: exact_up_to + 1].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT currency, COUNT(*), CAST(SUM(amount) AS TEXT)"  # noqa: S608 - Django's own SQL
            f" FROM ({sql}) AS capped GROUP BY currency ORDER BY currency",
            params,
        )
        rows = cursor.fetchall()
    count = sum(n for _currency, n, _total in rows)
    if count <= exact_up_to:
        totals = [(currency, Decimal(total or 0).quantize(CENT)) for currency, _n, total in rows]
        return ListSummary(count=count, totals=totals)
    if estimate is None:  # SQLite, a development database: counted exactly
        return ListSummary(count=unordered.count())
    return ListSummary(count=max(estimate, count), estimated=True)


def _planner_estimate(queryset: QuerySet) -> int:
    """The rows PostgreSQL expects ``queryset`` to return (from the table's statistics: no scan)."""
    sql, params = queryset.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])

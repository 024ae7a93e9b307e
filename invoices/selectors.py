"""Reads for the admin: filters, warnings, batch results. The dashboard's figures are in
``invoices.dashboard``; what counts as outstanding, overdue and in which aging bucket is said here,
once, for the dashboard and the list's filters alike."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, QuerySet, Subquery
from django.utils import timezone

from invoices import formatting
from invoices.models import ActionBatch, Customer, Invoice, InvoiceStatus, Provider, SyncRun, SyncState
from invoices.providers import is_configured
from invoices.webhooks.health import webhooks_silent_warnings


def is_row_id(text: str) -> bool:
    """Whether ``text`` from a URL is a primary key: ASCII digits that fit a 64-bit column."""
    return re.fullmatch(r"[0-9]{1,18}", text) is not None


def outstanding_q() -> Q:
    """Owed by a customer: open, at the provider (a draft never sent is owed by nobody), not removed."""
    return Q(status=InvoiceStatus.OPEN, remote_id__isnull=False, removed_at__isnull=True)


def overdue_q(*, today: date | None = None) -> Q:
    return outstanding_q() & Q(due_date__lt=today or timezone.localdate())


# Aging of what is outstanding, by days past the due date: (key, label, first day, last day).
AGING_BUCKETS: list[tuple[str, str, int | None, int | None]] = [
    ("current", "Not yet due", None, 0),
    ("1-30", "1-30 days overdue", 1, 30),
    ("31-60", "31-60 days overdue", 31, 60),
    ("61-90", "61-90 days overdue", 61, 90),
    ("90+", "Over 90 days overdue", 91, None),
]


def aging_q(key: str, *, today: date | None = None) -> Q:
    """The outstanding invoices of one aging bucket; "current" includes those without a due date."""
    return outstanding_q() & aging_days_q(key, today=today)


def aging_days_q(key: str, *, today: date | None = None) -> Q:
    """The due dates of one aging bucket, among invoices already known to be outstanding."""
    today = today or timezone.localdate()
    _, _, first, last = next(bucket for bucket in AGING_BUCKETS if bucket[0] == key)
    if first is None:
        return Q(due_date__isnull=True) | Q(due_date__gte=today - timedelta(days=last))
    days = Q(due_date__lte=today - timedelta(days=first))
    if last is not None:
        days &= Q(due_date__gte=today - timedelta(days=last))
    return days


def configured_providers() -> list[Provider]:
    """The providers that have credentials, in their order: the ones a sync can run for."""
    return [provider for provider in Provider if is_configured(provider)]


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
            since = f"since {formatting.moment(last_ok)}" if last_ok else "yet"
            reason = f" Last error: {last_failed.error}" if last_failed else ""
            warnings.append(f"{provider.label} has not synced successfully {since}.{reason}")
    return warnings + webhooks_silent_warnings()


@dataclass(frozen=True)
class BatchProgress:
    """How far a bulk action got: every invoice is done, failed, skipped or still in progress."""

    total: int
    done: int
    failed: int
    skipped: int

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped

    @property
    def complete(self) -> bool:
        return self.finished >= self.total

    @property
    def text(self) -> str:
        """ "412 of 1,000 done, 3 failed, 2 skipped" (failures and skips counted as done)."""
        parts = [f"{self.finished:,} of {self.total:,} done"]
        if self.failed:
            parts.append(f"{self.failed:,} failed")
        if self.skipped:
            parts.append(f"{self.skipped:,} skipped")
        return ", ".join(parts)

    def as_json(self) -> dict:
        return {
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "finished": self.finished,
            "complete": self.complete,
            "text": self.text,
        }


def _outcome_conditions(batch: ActionBatch) -> tuple[Q, Q]:
    """(done, failed) among the queued items: a refresh records its outcome on the item, a push on
    the invoice row."""
    if batch.kind == ActionBatch.Kind.REFRESH:
        return Q(finished_at__isnull=False, failed=False), Q(failed=True)
    return Q(invoice__sync_state=SyncState.SYNCED), Q(invoice__sync_state__in=UNSENT_SINCE)


#: What a queued invoice of a push batch can only be once its push failed: failed, or since then
#: corrected (a local draft again) or discarded. None of them moves on in that batch.
UNSENT_SINCE = (SyncState.FAILED, SyncState.LOCAL_DRAFT, SyncState.DISCARDED)


def batch_progress(batch: ActionBatch) -> BatchProgress:
    """The figures of a bulk action, in one query."""
    done, failed = _outcome_conditions(batch)
    figures = batch.items.aggregate(
        total=Count("pk"),
        skipped=Count("pk", filter=Q(queued=False)),
        done=Count("pk", filter=Q(queued=True) & done),
        failed=Count("pk", filter=Q(queued=True) & failed),
    )
    return BatchProgress(**figures)


def batch_rows(batch: ActionBatch) -> list[dict]:
    """Per invoice of a bulk action: what happened so far, in words; failures first."""
    items = batch.items.select_related("invoice__customer").order_by("invoice__number", "pk")
    return sorted((_row(batch, item) for item in items), key=lambda row: row["css"] != "failed")


#: How many rows of a bulk action one poll of its page reads at most.
BATCH_ROWS_PER_POLL = 200


def batch_rows_after(batch: ActionBatch, *, after: int) -> tuple[list[dict], int | None]:
    """Up to :data:`BATCH_ROWS_PER_POLL` rows of a bulk action, in the order of their item ids after
    ``after``, and the id to read on from (None when these were the last)."""
    items = list(
        batch.items.select_related("invoice").filter(pk__gt=after).order_by("pk")[: BATCH_ROWS_PER_POLL + 1]
    )
    more = len(items) > BATCH_ROWS_PER_POLL
    items = items[:BATCH_ROWS_PER_POLL]
    return [_row(batch, item) for item in items], (items[-1].pk if more else None)


def _row(batch: ActionBatch, item) -> dict:
    outcome, css = _row_outcome(batch, item)
    return {"item": item.pk, "invoice": item.invoice, "outcome": outcome, "css": css}


def _row_outcome(batch: ActionBatch, item) -> tuple[str, str]:
    invoice = item.invoice
    if not item.queued:
        return f"skipped: {item.note}", "skipped"
    if batch.kind == ActionBatch.Kind.REFRESH:
        if item.finished_at is None:
            return "in progress", "pending"
        if item.failed:
            return f"failed: {item.note}", "failed"
        return (item.note or "refreshed"), "done"
    if invoice.sync_state == SyncState.FAILED:
        return f"failed: {invoice.last_error}", "failed"
    if invoice.sync_state in UNSENT_SINCE:
        return f"failed, and {invoice.get_sync_state_display().lower()} since", "failed"
    if invoice.sync_state == SyncState.SYNCED:
        return ("paid" if invoice.status == InvoiceStatus.PAID else "done"), "done"
    if invoice.last_error:
        return f"waiting to retry: {invoice.last_error}", "pending"
    return "in progress", "pending"


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

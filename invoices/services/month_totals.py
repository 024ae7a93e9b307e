"""The monthly totals behind the dashboard's chart: a snapshot recomputed off the request path.

What was invoiced per month (by issue date) and paid per month (by payment moment) grows with a
year's volume of invoices; the dashboard reads these totals from ``MonthTotal`` instead, one small
query whatever the number of invoices. The snapshot is recomputed as a whole (two grouped queries,
outside any transaction, then its rows replaced in one short transaction):

- by the periodic task "Dashboard: recompute the monthly totals" (every 5 minutes, in
  ``invoices.schedules``; staff can change its timing in the admin);
- queued after a sync run that created, changed or removed invoices (``month_totals_queue``), at
  most one queued at a time, so a burst of runs queues one recomputation;
- by the first dashboard view when there is no snapshot yet (a fresh install).

Nothing is written on the sync's or the payment's path: they only queue the task. Payments and
imports show in the chart at the next recomputation; the figures staff act on (outstanding,
overdue, aging, paid this month, top customers) are read live by the dashboard.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Q, Sum, Value
from django.db.models.functions import TruncMonth
from django.utils import timezone

from invoices.models import Invoice, InvoiceStatus, Lease, MonthTotal, Provider
from invoices.sync import leases

MONTHS = 13  # the chart's 12 months and the one before
RECENT_DAYS = 90  # the dashboard's "invoiced in the last 90 days" (days sales outstanding)
EUR = "EUR"
ZERO = Decimal("0.00")
PROVIDERS = [provider.value for provider in Provider]
ROW = Value(1)  # count rows, not ids, so the covering indexes answer on their own
LOCK = "month-totals"  # serialises two replacements (a row lock on its lease row)
QUEUED = "month-totals:queued"  # held while a recomputation is queued and not yet started
QUEUED_FOR = timedelta(minutes=5)  # a lost task stops holding back the next one after this


def month_start(day: date, months_back: int = 0) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def _as_date(value: date | datetime) -> date:
    return timezone.localtime(value).date() if isinstance(value, datetime) else value


def month_totals_compute(*, today: date | None = None) -> list[MonthTotal]:
    """The totals of the last ``MONTHS`` months as unsaved rows (two grouped queries): one row per
    provider, currency and month with something in it, and a row for every provider and month in
    EUR even when nothing was invoiced or paid, so that an empty month is a row too."""
    now = timezone.now()
    today = today or timezone.localdate(now)
    first = month_start(today, MONTHS - 1)
    recent_since = today - timedelta(days=RECENT_DAYS)
    rows: dict[tuple[str, str, date], MonthTotal] = {}

    def row(provider: str, currency: str, month: date) -> MonthTotal:
        key = (provider, currency, month)
        if key not in rows:
            rows[key] = MonthTotal(
                provider=provider, currency=currency, month=month, recent_since=recent_since, computed_at=now
            )
        return rows[key]

    for back in range(MONTHS):
        for provider in PROVIDERS:
            row(provider, EUR, month_start(today, back))
    recent = Q(issue_date__gte=recent_since)
    for group in (
        Invoice.objects.filter(
            provider__in=PROVIDERS,
            status__in=[InvoiceStatus.OPEN, InvoiceStatus.PAID],
            remote_id__isnull=False,
            removed_at__isnull=True,
            issue_date__gte=first,
        )
        .annotate(month=TruncMonth("issue_date"))
        .values("provider", "currency", "month")
        .annotate(
            n=Count(ROW),
            total=Sum("amount"),
            n_recent=Count(ROW, filter=recent),
            recent=Sum("amount", filter=recent),
        )
        .order_by()
    ):
        total = row(group["provider"], group["currency"], _as_date(group["month"]))
        total.invoiced_count, total.invoiced_amount = group["n"], group["total"] or ZERO
        total.recent_count, total.recent_amount = group["n_recent"], group["recent"] or ZERO
    since = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    for group in (
        Invoice.objects.filter(
            provider__in=PROVIDERS, status=InvoiceStatus.PAID, removed_at__isnull=True, paid_at__gte=since
        )
        .annotate(month=TruncMonth("paid_at"))
        .values("provider", "currency", "month")
        .annotate(n=Count(ROW), total=Sum("amount"))
        .order_by()
    ):
        total = row(group["provider"], group["currency"], _as_date(group["month"]))
        total.paid_count, total.paid_amount = group["n"], group["total"] or ZERO
    return list(rows.values())


def month_totals_refresh(*, today: date | None = None) -> list[MonthTotal]:
    """Recompute the snapshot (two grouped queries, outside any transaction), then replace the
    stored one in a short transaction, unless a recomputation started later stored its own first
    (it saw at least as much). Returns the rows stored (none when skipped)."""
    totals = month_totals_compute(today=today)
    Lease.objects.bulk_create([Lease(name=LOCK, expires_at=timezone.now())], ignore_conflicts=True)
    with transaction.atomic():
        Lease.objects.select_for_update().filter(name=LOCK).first()  # one replacement at a time
        if MonthTotal.objects.filter(computed_at__gt=totals[0].computed_at).exists():
            return []
        MonthTotal.objects.all().delete()
        MonthTotal.objects.bulk_create(totals)
    return totals


def month_totals_snapshot() -> list[MonthTotal]:
    """The stored snapshot (one query); computed and stored first when there is none yet."""
    return list(MonthTotal.objects.all()) or month_totals_refresh() or list(MonthTotal.objects.all())


def month_totals_queue() -> bool:
    """Queue a recomputation after the current transaction commits, unless one is queued already
    and has not started yet. Returns whether this call queued it."""
    from invoices.tasks import refresh_month_totals

    holder = leases.new_holder()
    if not leases.acquire(QUEUED, holder=holder, ttl=QUEUED_FOR):
        return False
    transaction.on_commit(lambda: refresh_month_totals.delay(holder))
    return True


def month_totals_started(*, queued_by: str) -> None:
    """A queued recomputation starts: changes committed from now on queue the next one."""
    if queued_by:
        leases.release(QUEUED, holder=queued_by)

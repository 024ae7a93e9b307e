"""Every figure of the receivables dashboard, computed off the request path and stored as one
snapshot (``DashboardSnapshot``): the page reads it in one query whatever the number of invoices.

What is outstanding, overdue and in each aging bucket, what was paid this month, what was invoiced
in the last 90 days, the customers with the most overdue and the chart's months all grow with what
is owed or invoiced; they are computed together (five grouped queries, outside any transaction),
then the stored snapshot is replaced in one short transaction. It is recomputed:

- after commit, whenever invoices changed in a way that moves the figures
  (``dashboard_snapshot_queue``): a sync run that created, changed or removed invoices, a create or
  payment confirmed by the provider, a refresh from the provider (the invoice page, a bulk refresh,
  a webhook). At most one recomputation is queued at a time, so a burst of changes queues one; a
  broker or database that cannot be reached then is logged and left to the next minute's task;
- every minute by the periodic task "Dashboard: recompute the figures" (``invoices.schedules``), the
  safety net;
- by the dashboard itself when the snapshot is missing, older than
  ``DASHBOARD_SNAPSHOT_MAX_AGE_SECONDS`` or of another day (``dashboard_snapshot_read``), so the page
  is never wrong for long even with no worker running.

Only EUR invoices count in the EUR figures; what is outstanding in another currency is kept apart.
Invoices removed at the provider count nowhere. Amounts are stored as strings, read back as Decimal.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Case, CharField, Count, F, Max, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import TruncMonth
from django.utils import timezone

from invoices.models import Customer, DashboardSnapshot, Invoice, InvoiceStatus, Lease, Provider
from invoices.selectors import AGING_BUCKETS, aging_days_q, outstanding_q, overdue_q
from invoices.sync import leases

logger = logging.getLogger(__name__)

MONTHS = 12  # the chart's months
RECENT_DAYS = 90  # the dashboard's "invoiced in the last 90 days" (days sales outstanding)
TOP_CUSTOMERS = 10
EUR = "EUR"
ZERO = Decimal("0.00")
# Every provider, named: a provider no longer offered is left out of the figures.
PROVIDERS = [provider.value for provider in Provider]
ROW = Value(1)  # count rows, not ids, so the covering indexes answer on their own
LOCK = "dashboard-snapshot"  # serialises two replacements (a row lock on its lease row)
QUEUED = "dashboard-snapshot:queued"  # held while a recomputation is queued and not yet started
QUEUED_FOR = timedelta(minutes=5)  # a lost task stops holding back the next one after this


def month_start(day: date, months_back: int = 0) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def _as_date(value: date | datetime) -> date:
    return timezone.localtime(value).date() if isinstance(value, datetime) else value


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def _amount(value: Decimal | None) -> str:
    return str(value or ZERO)


def dashboard_snapshot_compute(*, now: datetime | None = None) -> dict:
    """Every figure of the dashboard at ``now`` as a JSON document (five grouped queries)."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    return {
        "today": today.isoformat(),
        "dso_since": (today - timedelta(days=RECENT_DAYS)).isoformat(),
        "outstanding": _outstanding(today),
        "paid_this_month": _paid_this_month(today),
        **_months(today),
        "top_customers": _top_customers(today),
    }


def _outstanding(today: date) -> list[dict]:
    """What is outstanding per provider, currency and aging bucket (by due date only, so that the
    outstanding index answers on its own); overdue is every bucket but "not yet due"."""
    bucket = Case(
        *(When(aging_days_q(key, today=today), then=Value(key)) for key, _, _, _ in AGING_BUCKETS),
        output_field=CharField(),
    )
    return [
        {
            "provider": row["provider"],
            "currency": row["currency"],
            "bucket": row["bucket"],
            "count": row["n"],
            "amount": _amount(row["total"]),
        }
        for row in Invoice.objects.filter(outstanding_q(), provider__in=PROVIDERS)
        .annotate(bucket=bucket)
        .values("provider", "currency", "bucket")
        .annotate(n=Count(ROW), total=Sum("amount"))
        .order_by("provider", "currency", "bucket")
    ]


def _paid_this_month(today: date) -> list[dict]:
    """What was paid this month (EUR), from the payment-date index over this month's payments."""
    return [
        {"provider": row["provider"], "count": row["n"], "amount": _amount(row["total"])}
        for row in Invoice.objects.filter(
            provider__in=PROVIDERS,
            status=InvoiceStatus.PAID,
            removed_at__isnull=True,
            currency=EUR,
            paid_at__gte=_midnight(month_start(today)),
            paid_at__lt=_midnight(month_start(today, -1)),
        )
        .values("provider")
        .annotate(n=Count(ROW), total=Sum("amount"))
        .order_by("provider")
    ]


def _months(today: date) -> dict[str, list[dict]]:
    """The chart's months (EUR invoiced by issue month, paid by payment month; every month listed,
    empty or not) and what each provider invoiced in the last ``RECENT_DAYS`` days (two queries)."""
    first = month_start(today, MONTHS - 1)
    recent = Q(issue_date__gte=today - timedelta(days=RECENT_DAYS))
    months = {month_start(today, back): [ZERO, ZERO] for back in reversed(range(MONTHS))}
    invoiced_recent = {provider: [0, ZERO] for provider in PROVIDERS}
    for group in (
        Invoice.objects.filter(
            provider__in=PROVIDERS,
            status__in=[InvoiceStatus.OPEN, InvoiceStatus.PAID],
            remote_id__isnull=False,
            removed_at__isnull=True,
            currency=EUR,
            issue_date__gte=first,
        )
        .annotate(month=TruncMonth("issue_date"))
        .values("provider", "month")
        .annotate(
            total=Sum("amount"), n_recent=Count(ROW, filter=recent), recent=Sum("amount", filter=recent)
        )
        .order_by()
    ):
        months[_as_date(group["month"])][0] += group["total"] or ZERO
        invoiced_recent[group["provider"]][0] += group["n_recent"]
        invoiced_recent[group["provider"]][1] += group["recent"] or ZERO
    for group in (
        Invoice.objects.filter(
            provider__in=PROVIDERS,
            status=InvoiceStatus.PAID,
            removed_at__isnull=True,
            currency=EUR,
            paid_at__gte=_midnight(first),
        )
        .annotate(month=TruncMonth("paid_at"))
        .values("month")
        .annotate(total=Sum("amount"))
        .order_by()
    ):
        month = _as_date(group["month"])
        if month in months:  # a payment dated in the future is no month of the chart
            months[month][1] += group["total"] or ZERO
    return {
        "months": [
            {"month": month.isoformat(), "invoiced": _amount(invoiced), "paid": _amount(paid)}
            for month, (invoiced, paid) in months.items()
        ],
        "invoiced_recent": [
            {"provider": provider, "count": count, "amount": _amount(amount)}
            for provider, (count, amount) in invoiced_recent.items()
        ],
    }


def _top_customers(today: date) -> list[dict]:
    """The customers owing the most overdue EUR (one query), from the outstanding index. An invoice
    linked to no customer is counted under the name written on it, per provider."""
    unlinked = Q(customer_id__isnull=True)
    rows = (
        Invoice.objects.filter(overdue_q(today=today), provider__in=PROVIDERS, currency=EUR)
        .annotate(
            unlinked_name=Case(When(unlinked, then=F("customer_name")), default=Value("")),
            unlinked_provider=Case(When(unlinked, then=F("provider")), default=Value("")),
        )
        .values("customer_id", "unlinked_name", "unlinked_provider")
        .annotate(
            invoice_name=Max("customer_name"),
            provider=Max("provider"),
            n=Count(ROW),
            total=Sum("amount"),
        )
        # The customer's name for the ten rows kept only (PostgreSQL evaluates it after the limit):
        # grouping needs the outstanding index alone, no join.
        .annotate(
            name=Subquery(Customer.objects.filter(pk=OuterRef("customer_id")).order_by().values("name")[:1])
        )
        .order_by(F("total").desc(nulls_last=True), "customer_id", "unlinked_name", "unlinked_provider")[
            :TOP_CUSTOMERS
        ]
    )
    return [
        {
            "customer_id": row["customer_id"],
            "name": row["name"] or row["invoice_name"] or "",
            "unlinked_name": row["unlinked_name"],
            "provider": row["provider"],
            "count": row["n"],
            "amount": _amount(row["total"]),
        }
        for row in rows
    ]


def dashboard_snapshot_refresh() -> DashboardSnapshot | None:
    """Recompute the snapshot (outside any transaction), then replace the stored one in a short
    transaction, unless a recomputation started later stored its own first (it saw at least as
    much). Returns the snapshot stored (None when skipped)."""
    computed_at = timezone.now()
    figures = dashboard_snapshot_compute(now=computed_at)
    Lease.objects.bulk_create([Lease(name=LOCK, expires_at=computed_at)], ignore_conflicts=True)
    with transaction.atomic():
        Lease.objects.select_for_update().filter(name=LOCK).first()  # one replacement at a time
        stored = DashboardSnapshot.objects.order_by("pk").first()
        if stored is None:
            return DashboardSnapshot.objects.create(computed_at=computed_at, figures=figures)
        if stored.computed_at > computed_at:
            return None
        stored.computed_at, stored.figures = computed_at, figures
        stored.save(update_fields=["computed_at", "figures"])
        return stored


def _fresh(snapshot: DashboardSnapshot) -> bool:
    now = timezone.now()
    max_age = timedelta(seconds=settings.DASHBOARD_SNAPSHOT_MAX_AGE_SECONDS)
    return (
        snapshot.computed_at >= now - max_age
        and snapshot.figures["today"] == timezone.localdate(now).isoformat()
    )


def dashboard_snapshot_read() -> DashboardSnapshot:
    """The stored snapshot (one query); computed live and stored first when there is none, when
    it is older than ``DASHBOARD_SNAPSHOT_MAX_AGE_SECONDS`` or when it was computed on another day."""
    snapshot = DashboardSnapshot.objects.order_by("pk").first()
    if snapshot is not None and _fresh(snapshot):
        return snapshot
    try:
        return dashboard_snapshot_refresh() or DashboardSnapshot.objects.order_by("pk").first()
    except DatabaseError:
        if snapshot is None:
            raise
        # The page shows the older figures with their time rather than failing.
        logger.warning("could not recompute the dashboard; showing the snapshot of %s", snapshot.computed_at)
        return snapshot


def dashboard_snapshot_queue() -> None:
    """Once the current transaction commits, queue a recomputation, unless one is queued already
    and has not started yet (it will see this change: it reads after it starts)."""
    transaction.on_commit(_queue_once, robust=True)


def _queue_once() -> bool:
    """Returns whether this call queued the recomputation. Never raises: the change is committed,
    and the minute's task recomputes anyway."""
    from invoices.tasks import refresh_dashboard_snapshot

    holder = leases.new_holder()
    try:
        if not leases.acquire(QUEUED, holder=holder, ttl=QUEUED_FOR):
            return False
        refresh_dashboard_snapshot.delay(holder)
    except Exception as exc:  # a broker or database that cannot be reached, whatever its client raises
        logger.warning("could not queue the dashboard's recomputation: %s", exc)
        with contextlib.suppress(DatabaseError):
            leases.release(QUEUED, holder=holder)
        return False
    return True


def dashboard_snapshot_started(*, queued_by: str) -> None:
    """A queued recomputation starts: changes committed from now on queue the next one."""
    if queued_by:
        leases.release(QUEUED, holder=queued_by)

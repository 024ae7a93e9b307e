"""Reads for the receivables dashboard on the admin index.

Every block is one grouped query with conditional aggregates, whatever the number of invoices;
per-provider figures and the totals come from the same rows. Each figure carries the query of the
invoice list that shows the same invoices, so a click lists what was counted.

The figures staff act on (outstanding, overdue, aging, paid this month, the customers with the most
overdue, sync health) are read live. The chart's months and what was invoiced in the last 90 days
(days sales outstanding) come from the snapshot of monthly totals
(``invoices.services.month_totals``), recomputed every few minutes and after a sync run that
changed invoices; the page says when it was taken.

Only EUR invoices count in the EUR figures; what is outstanding in another currency is listed
apart. Invoices removed at the provider count nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Case, CharField, Count, F, Max, OuterRef, Q, Subquery, Sum, Value, When
from django.urls import reverse
from django.utils import timezone

from invoices.models import Customer, Invoice, InvoiceStatus, Provider, SyncProblem, SyncRun, SyncState
from invoices.selectors import AGING_BUCKETS, aging_days_q, outstanding_q, overdue_q
from invoices.services.month_totals import RECENT_DAYS as DSO_DAYS
from invoices.services.month_totals import month_start as _month_start
from invoices.services.month_totals import month_totals_snapshot
from invoices.webhooks.health import webhooks_last_verified

EUR = "EUR"
ZERO = Decimal("0.00")
MONTHS = 12
TOP_CUSTOMERS = 10
# Every provider, named: a provider no longer offered is left out of the figures.
PROVIDERS = [provider.value for provider in Provider]
# What is counted: a row (COUNT(1)), not its id, so that the covering indexes answer on their own.
ROW = Value(1)


@dataclass
class Figure:
    """A count and an amount, and the list (invoices or sync problems) that shows them."""

    count: int = 0
    amount: Decimal = ZERO
    params: dict[str, str] = field(default_factory=dict)
    model: str = "invoice"

    @property
    def url(self) -> str:
        return f"{reverse(f'admin:invoices_{self.model}_changelist')}?{urlencode(self.params)}"

    def add(self, count: int, amount: Decimal | None) -> None:
        self.count += count
        self.amount += amount or ZERO


@dataclass
class Row:
    label: str
    cells: list[Figure]  # one per provider, then the total
    days: list[Decimal | None] | None = None  # the days sales outstanding row shows days instead

    @property
    def entries(self) -> list[tuple[Figure, Decimal | None]]:
        return list(zip(self.cells, self.days or [None] * len(self.cells), strict=True))


@dataclass
class Month:
    start: date
    invoiced: Decimal = ZERO
    paid: Decimal = ZERO


@dataclass
class SyncHealth:
    provider: str
    label: str
    last_success: datetime | None
    stale: bool
    failed_pushes: Figure
    open_problems: Figure
    last_webhook: datetime | None = None


@dataclass
class Dashboard:
    today: date
    columns: list[str]  # the providers' names, then "Total"
    rows: list[Row]
    dso_since: date
    months: list[Month]  # from the snapshot of monthly totals, as it was at chart_as_of
    chart_as_of: datetime
    top_customers: list[tuple[str, str, Figure]]  # name, provider, overdue
    other_currencies: list[tuple[str, str, Figure]]  # currency, provider, outstanding
    sync: list[SyncHealth]


def _params(provider: str | None, **params: str) -> dict[str, str]:
    return ({"provider__exact": provider} if provider else {}) | params


def _columns(**params: str) -> list[Figure]:
    """A figure per provider and one for the total, each with its list's query."""
    return [Figure(params=_params(p, **params)) for p in PROVIDERS] + [Figure(params=params)]


def _add(cells: list[Figure], provider: str, count: int, amount: Decimal | None) -> None:
    cells[PROVIDERS.index(provider)].add(count, amount)
    cells[-1].add(count, amount)


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def _days_outstanding(outstanding: Decimal, invoiced: Decimal) -> Decimal | None:
    if invoiced <= 0:
        return None
    return (outstanding / invoiced * DSO_DAYS).quantize(Decimal("1"), rounding=ROUND_HALF_UP)


def receivables_dashboard() -> Dashboard:
    today = timezone.localdate()
    eur = {"currency": EUR}

    # Block 1: what is outstanding, overdue and in each aging bucket (one query): the outstanding
    # rows counted and added up per aging bucket (by due date only, so the outstanding index answers
    # on its own); overdue is every bucket but "not yet due".
    outstanding = _columns(outstanding="all", **eur)
    overdue = _columns(overdue="yes", **eur)
    aging = {key: _columns(outstanding=key, **eur) for key, _, _, _ in AGING_BUCKETS}
    not_yet_due = AGING_BUCKETS[0][0]
    bucket = Case(
        *(When(aging_days_q(key, today=today), then=Value(key)) for key, _, _, _ in AGING_BUCKETS),
        output_field=CharField(),
    )
    others: dict[tuple[str, str], Figure] = {}
    for row in (
        Invoice.objects.filter(outstanding_q(), provider__in=PROVIDERS)
        .annotate(bucket=bucket)
        .values("provider", "currency", "bucket")
        .annotate(n=Count(ROW), total=Sum("amount"))
        .order_by()
    ):
        provider, currency = row["provider"], row["currency"]
        if currency != EUR:
            key = (currency, provider)
            others.setdefault(key, Figure(params=_params(provider, outstanding="all", currency=currency)))
            others[key].add(row["n"], row["total"])
            continue
        for cells in (
            outstanding,
            aging[row["bucket"]],
            *([overdue] if row["bucket"] != not_yet_due else []),
        ):
            _add(cells, provider, row["n"], row["total"])
    other_currencies = [(c, Provider(p).label, figure) for (c, p), figure in sorted(others.items())]

    # Block 2: what was paid this month (one query, live), read from the payment-date index over
    # this month's payments only.
    month_start = _month_start(today)
    paid_this_month = _columns(
        status__exact=InvoiceStatus.PAID.value,
        paid_at__year=str(today.year),
        paid_at__month=str(today.month),
        removed="no",
        **eur,
    )
    for row in (
        Invoice.objects.filter(
            provider__in=PROVIDERS,
            status=InvoiceStatus.PAID,
            removed_at__isnull=True,
            currency=EUR,
            paid_at__gte=_midnight(month_start),
            paid_at__lt=_midnight(_month_start(today, -1)),
        )
        .values("provider")
        .annotate(n=Count(ROW), total=Sum("amount"))
        .order_by()
    ):
        _add(paid_this_month, row["provider"], row["n"], row["total"])

    # Block 3: the chart's months and what was invoiced in the last DSO_DAYS days, from the
    # snapshot of monthly totals (one query; recomputed every few minutes off the request path).
    snapshot = [total for total in month_totals_snapshot() if total.currency == EUR]
    as_of = max(total.computed_at for total in snapshot)
    as_of_day = timezone.localdate(as_of)
    months = {_month_start(as_of_day, back): Month(_month_start(as_of_day, back)) for back in range(MONTHS)}
    dso_since = snapshot[0].recent_since
    invoiced = _columns(
        issue_date__gte=dso_since.isoformat(),
        status__in=f"{InvoiceStatus.OPEN.value},{InvoiceStatus.PAID.value}",
        remote_id__isnull="False",
        removed="no",
        **eur,
    )
    for total in snapshot:
        if (month := months.get(total.month)) is not None:
            month.invoiced += total.invoiced_amount
            month.paid += total.paid_amount
        if total.provider in PROVIDERS:
            _add(invoiced, total.provider, total.recent_count, total.recent_amount)

    dso = [_days_outstanding(o.amount, i.amount) for o, i in zip(outstanding, invoiced, strict=True)]
    rows = [
        Row("Outstanding", outstanding),
        Row("Overdue", overdue),
        *(Row(label, aging[key]) for key, label, _, _ in AGING_BUCKETS),
        Row("Paid this month", paid_this_month),
        Row(f"Invoiced in the last {DSO_DAYS} days", invoiced),
        Row("Days sales outstanding", outstanding, days=dso),
    ]
    return Dashboard(
        today=today,
        columns=[*(p.label for p in Provider), "Total"],
        rows=rows,
        dso_since=dso_since,
        months=sorted(months.values(), key=lambda m: m.start),
        chart_as_of=as_of,
        top_customers=_top_customers(today),
        other_currencies=other_currencies,
        sync=_sync_health(),
    )


def _top_customers(today: date) -> list[tuple[str, str, Figure]]:
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
    customers = []
    for row in rows:
        if row["customer_id"] is None:
            name = f"{row['unlinked_name'] or '(no name)'} (no customer linked)"
            which = {
                "customer__isnull": "True",
                "customer_name__exact": row["unlinked_name"],
                "provider__exact": row["unlinked_provider"],
            }
        else:
            name = row["name"] or row["invoice_name"] or f"Customer #{row['customer_id']}"
            which = {"customer__id__exact": str(row["customer_id"])}
        figure = Figure(params={"overdue": "yes", "currency": EUR, **which})
        figure.add(row["n"], row["total"])
        customers.append((name, Provider(row["provider"]).label, figure))
    return customers


def _sync_health() -> list[SyncHealth]:
    """Per provider: the last successful sync (one query each), failed pushes, open quarantined
    records and the last verified webhook delivery (one query each for all providers)."""
    failed = {
        row["provider"]: row["n"]
        for row in Invoice.objects.filter(sync_state=SyncState.FAILED)
        .values("provider")
        .annotate(n=Count(ROW))
        .order_by()
    }
    problems = {
        row["provider"]: row["n"]
        for row in SyncProblem.objects.filter(resolved_at__isnull=True)
        .values("provider")
        .annotate(n=Count(ROW))
        .order_by()
    }
    stale_before = timezone.now() - timedelta(minutes=settings.SYNC_STALE_AFTER_MINUTES)
    last_webhooks = webhooks_last_verified()
    health = []
    for provider in Provider:
        last = (
            SyncRun.objects.filter(provider=provider, status=SyncRun.Status.SUCCEEDED)
            .order_by("-started_at")
            .values_list("finished_at", flat=True)
            .first()
        )
        health.append(
            SyncHealth(
                provider=provider.value,
                label=provider.label,
                last_success=last,
                stale=last is None or last < stale_before,
                failed_pushes=Figure(
                    count=failed.get(provider.value, 0),
                    params=_params(provider.value, sync_state__exact=SyncState.FAILED.value),
                ),
                open_problems=Figure(
                    count=problems.get(provider.value, 0),
                    params=_params(provider.value, open="yes"),
                    model="syncproblem",
                ),
                last_webhook=last_webhooks.get(provider.value),
            )
        )
    return health

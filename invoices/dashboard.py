"""The receivables dashboard on the admin index, read from the snapshot of its figures.

Every figure but the sync health comes from ``invoices.services.dashboard_snapshot``: one stored
document, read in one query whatever the number of invoices, recomputed after the changes that
move it and every minute (computed here first when it is missing or too old); the page says when
it was taken. The sync health is read live (a few constant queries). Each figure carries the query
of the invoice list that shows the same invoices, so a click lists what was counted.

Only EUR invoices count in the EUR figures; what is outstanding in another currency is listed
apart. Invoices removed at the provider count nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, Value
from django.urls import reverse
from django.utils import timezone

from invoices.models import Invoice, InvoiceStatus, Provider, SyncProblem, SyncRun, SyncState
from invoices.selectors import AGING_BUCKETS
from invoices.services.dashboard_snapshot import EUR, PROVIDERS, ZERO, dashboard_snapshot_read
from invoices.services.dashboard_snapshot import RECENT_DAYS as DSO_DAYS
from invoices.webhooks.health import webhooks_last_verified

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
    months: list[Month]
    as_of: datetime  # when the snapshot of the figures (all but the sync health) was computed
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


def _days_outstanding(outstanding: Decimal, invoiced: Decimal) -> Decimal | None:
    if invoiced <= 0:
        return None
    return (outstanding / invoiced * DSO_DAYS).quantize(Decimal("1"), rounding=ROUND_HALF_UP)


def receivables_dashboard() -> Dashboard:
    snapshot = dashboard_snapshot_read()
    document = snapshot.figures
    today = date.fromisoformat(document["today"])
    eur = {"currency": EUR}

    # What is outstanding, overdue and in each aging bucket; overdue is every bucket but "not yet due".
    outstanding = _columns(outstanding="all", **eur)
    overdue = _columns(overdue="yes", **eur)
    aging = {key: _columns(outstanding=key, **eur) for key, _, _, _ in AGING_BUCKETS}
    not_yet_due = AGING_BUCKETS[0][0]
    others: dict[tuple[str, str], Figure] = {}
    for row in document["outstanding"]:
        provider, currency, count, amount = (
            row["provider"],
            row["currency"],
            row["count"],
            Decimal(row["amount"]),
        )
        if provider not in PROVIDERS:
            continue
        if currency != EUR:
            key = (currency, provider)
            others.setdefault(key, Figure(params=_params(provider, outstanding="all", currency=currency)))
            others[key].add(count, amount)
            continue
        for cells in (
            outstanding,
            aging[row["bucket"]],
            *([overdue] if row["bucket"] != not_yet_due else []),
        ):
            _add(cells, provider, count, amount)
    other_currencies = [(c, Provider(p).label, figure) for (c, p), figure in sorted(others.items())]

    paid_this_month = _columns(
        status__exact=InvoiceStatus.PAID.value,
        paid_at__year=str(today.year),
        paid_at__month=str(today.month),
        removed="no",
        **eur,
    )
    dso_since = date.fromisoformat(document["dso_since"])
    invoiced = _columns(
        issue_date__gte=dso_since.isoformat(),
        status__in=f"{InvoiceStatus.OPEN.value},{InvoiceStatus.PAID.value}",
        remote_id__isnull="False",
        removed="no",
        **eur,
    )
    for cells, key in ((paid_this_month, "paid_this_month"), (invoiced, "invoiced_recent")):
        for row in document[key]:
            if row["provider"] in PROVIDERS:
                _add(cells, row["provider"], row["count"], Decimal(row["amount"]))
    months = [
        Month(date.fromisoformat(row["month"]), Decimal(row["invoiced"]), Decimal(row["paid"]))
        for row in document["months"]
    ]

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
        months=months,
        as_of=snapshot.computed_at,
        top_customers=_top_customers(document["top_customers"]),
        other_currencies=other_currencies,
        sync=_sync_health(),
    )


def _top_customers(rows: list[dict]) -> list[tuple[str, str, Figure]]:
    """The customers with the most overdue, each with the list of just its overdue invoices."""
    customers = []
    for row in rows:
        if row["customer_id"] is None:
            name = f"{row['unlinked_name'] or '(no name)'} (no customer linked)"
            which = {
                "customer__isnull": "True",
                "customer_name__exact": row["unlinked_name"],
                "provider__exact": row["provider"],
            }
        else:
            name = row["name"] or f"Customer #{row['customer_id']}"
            which = {"customer__id__exact": str(row["customer_id"])}
        figure = Figure(params={"overdue": "yes", "currency": EUR, **which})
        figure.add(row["count"], Decimal(row["amount"]))
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

"""The receivables dashboard on the admin index: its figures against the invoices behind them, the
lists its links open, who sees it, and a query count that does not grow with the invoices."""

import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from invoices import selectors
from invoices.models import (
    DashboardSnapshot,
    Invoice,
    InvoiceStatus,
    Provider,
    SyncProblem,
    SyncRun,
    SyncState,
)
from invoices.roles import ADMIN, CLERK, VIEWER
from invoices.services.dashboard_snapshot import dashboard_snapshot_compute
from invoices.tasks import refresh_dashboard_snapshot
from tests.factories import CustomerFactory, InvoiceFactory

pytestmark = pytest.mark.django_db

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=AMSTERDAM)
TODAY = NOW.date()
INDEX = "/admin/"


@pytest.fixture(autouse=True)
def _fixed_now(settings):
    settings.MKP_API_KEY = "mkp-key"  # MijnKlantportaal configured, Qonto not
    with time_machine.travel(NOW, tick=False):
        yield


def days(n: int) -> date:
    return TODAY + timedelta(days=n)


def at(*args) -> datetime:
    return datetime(*args, tzinfo=AMSTERDAM)


@pytest.fixture
def book():
    """Invoices of both providers in every aging bucket, and the ones that must count nowhere."""
    acme, cotton = CustomerFactory(name="Acme BV"), CustomerFactory(name="Cotton BV")
    brick = CustomerFactory(name="Brick SAS", provider=Provider.QONTO)
    mkp = {"provider": Provider.MKP, "customer": acme}
    qonto = {"provider": Provider.QONTO, "customer": brick}
    InvoiceFactory(**mkp, due_date=days(5), amount=Decimal("100.00"))
    InvoiceFactory(**mkp, due_date=None, amount=Decimal("50.00"))
    InvoiceFactory(**mkp, due_date=days(-1), amount=Decimal("200.00"))
    InvoiceFactory(**mkp, due_date=days(-30), amount=Decimal("300.00"))
    InvoiceFactory(**mkp | {"customer": cotton}, due_date=days(-31), amount=Decimal("400.00"))
    InvoiceFactory(**mkp, due_date=days(-90), issue_date=days(-120), amount=Decimal("500.00"))
    InvoiceFactory(**mkp, due_date=days(-91), issue_date=days(-150), amount=Decimal("600.00"))
    InvoiceFactory(**qonto, due_date=TODAY, amount=Decimal("1000.00"))
    InvoiceFactory(**qonto, due_date=days(-200), issue_date=days(-250), amount=Decimal("2500.50"))
    paid = {"status": InvoiceStatus.PAID, "issue_date": days(-40)}
    InvoiceFactory(**mkp, **paid, paid_at=at(2026, 11, 2, 10, 0), amount=Decimal("150.00"))
    InvoiceFactory(**qonto, **paid, paid_at=at(2026, 11, 1, 0, 30), amount=Decimal("250.00"))
    InvoiceFactory(**mkp, **paid, paid_at=at(2026, 10, 31, 23, 30), amount=Decimal("75.00"))
    # Counted nowhere: removed at the provider, not in EUR, never sent, canceled, failed to send.
    InvoiceFactory(**mkp, due_date=days(-10), amount=Decimal("9999.00"), removed_at=timezone.now())
    InvoiceFactory(
        **mkp, **paid, paid_at=at(2026, 11, 3, 9, 0), amount=Decimal("9999.00"), removed_at=timezone.now()
    )
    InvoiceFactory(**qonto, due_date=days(-10), amount=Decimal("700.00"), currency="USD")
    InvoiceFactory(
        **mkp, due_date=days(-10), amount=Decimal("333.00"), remote_id=None, sync_state=SyncState.LOCAL_DRAFT
    )
    InvoiceFactory(**mkp, due_date=days(-10), amount=Decimal("888.00"), status=InvoiceStatus.CANCELED)
    InvoiceFactory(
        **qonto, due_date=days(-10), amount=Decimal("10.00"), remote_id=None, sync_state=SyncState.FAILED
    )
    # Sync: MijnKlantportaal synced five minutes ago, Qonto never; one open quarantined record.
    SyncRun.objects.create(
        provider=Provider.MKP,
        kind="quick",
        status=SyncRun.Status.SUCCEEDED,
        started_at=timezone.now() - timedelta(minutes=6),
        finished_at=timezone.now() - timedelta(minutes=5),
    )
    SyncProblem.objects.create(
        provider=Provider.MKP, kind="invoice", remote_id="inv_bad", message="unreadable"
    )
    SyncProblem.objects.create(
        provider=Provider.MKP, kind="invoice", remote_id="inv_old", message="x", resolved_at=timezone.now()
    )


def staff(django_user_model, username: str, *, group: str | None = None, perms: tuple = ()):
    user = django_user_model.objects.create_user(username=username, password="x", is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


@pytest.fixture
def viewer_client(client, django_user_model):
    client.force_login(staff(django_user_model, "victor", group=VIEWER))
    return client


def figures(response) -> dict[str, list]:
    return {row.label: row for row in response.context["dashboard"].rows}


def cells(row) -> list[tuple[int, Decimal]]:
    return [(figure.count, figure.amount) for figure in row.cells]


def test_figures_per_provider_and_in_total(viewer_client, book):
    response = viewer_client.get(INDEX)
    assert response.status_code == 200
    rows = figures(response)
    assert response.context["dashboard"].columns == ["MijnKlantportaal", "Qonto", "Total"]
    d = Decimal
    assert cells(rows["Outstanding"]) == [(7, d("2150.00")), (2, d("3500.50")), (9, d("5650.50"))]
    assert cells(rows["Overdue"]) == [(5, d("2000.00")), (1, d("2500.50")), (6, d("4500.50"))]
    assert cells(rows["Not yet due"]) == [(2, d("150.00")), (1, d("1000.00")), (3, d("1150.00"))]
    assert cells(rows["1-30 days overdue"]) == [(2, d("500.00")), (0, d("0")), (2, d("500.00"))]
    assert cells(rows["31-60 days overdue"]) == [(1, d("400.00")), (0, d("0")), (1, d("400.00"))]
    assert cells(rows["61-90 days overdue"]) == [(1, d("500.00")), (0, d("0")), (1, d("500.00"))]
    assert cells(rows["Over 90 days overdue"]) == [(1, d("600.00")), (1, d("2500.50")), (2, d("3100.50"))]
    # 00:30 on 1 November in Amsterdam is this month; 23:30 on 31 October is not.
    assert cells(rows["Paid this month"]) == [(1, d("150.00")), (1, d("250.00")), (2, d("400.00"))]
    assert cells(rows["Invoiced in the last 90 days"]) == [
        (7, d("1275.00")),
        (2, d("1250.00")),
        (9, d("2525.00")),
    ]
    # Outstanding / invoiced in the last 90 days * 90: 2150 / 1275 * 90 = 151.8; 3500.50 / 1250 * 90
    # = 252.0; 5650.50 / 2525 * 90 = 201.4.
    assert rows["Days sales outstanding"].days == [d("152"), d("252"), d("201")]

    html = response.content.decode()
    for text in (
        "EUR 5,650.50",
        "EUR 2,500.50",
        "9 invoices",
        "152 days",
        "Days sales outstanding</strong> =",
    ):
        assert text in html
    other = response.context["dashboard"].other_currencies
    assert [(c, p, f.count, f.amount) for c, p, f in other] == [("USD", "Qonto", 1, d("700.00"))]
    assert "USD 700.00 at Qonto (1 invoice)" in html


def test_top_customers_by_overdue_amount(viewer_client, book):
    response = viewer_client.get(INDEX)
    top = [
        (name, provider, f.count, f.amount)
        for name, provider, f in response.context["dashboard"].top_customers
    ]
    assert top == [
        ("Brick SAS", "Qonto", 1, Decimal("2500.50")),
        ("Acme BV", "MijnKlantportaal", 4, Decimal("1600.00")),
        ("Cotton BV", "MijnKlantportaal", 1, Decimal("400.00")),
    ]


def test_unlinked_invoices_are_grouped_by_the_name_on_them(viewer_client):
    unlinked = {"customer": None, "due_date": days(-5)}
    InvoiceFactory(**unlinked, customer_name="Dune BV", amount=Decimal("300.00"))
    InvoiceFactory(**unlinked, customer_name="Dune BV", amount=Decimal("200.00"))
    InvoiceFactory(**unlinked, customer_name="Dune BV", provider=Provider.QONTO, amount=Decimal("50.00"))
    InvoiceFactory(**unlinked, customer_name="Elm SA", amount=Decimal("400.00"))
    InvoiceFactory(customer=CustomerFactory(name="Dune BV"), due_date=days(-5), amount=Decimal("10.00"))
    with CaptureQueriesContext(connection) as captured:
        top = viewer_client.get(INDEX).context["dashboard"].top_customers
    assert len([q for q in captured if "customer_name" in q["sql"] and "GROUP BY" in q["sql"]]) == 1
    assert [(name, provider, f.count, f.amount) for name, provider, f in top] == [
        ("Dune BV (no customer linked)", "MijnKlantportaal", 2, Decimal("500.00")),
        ("Elm SA (no customer linked)", "MijnKlantportaal", 1, Decimal("400.00")),
        ("Dune BV (no customer linked)", "Qonto", 1, Decimal("50.00")),
        ("Dune BV", "MijnKlantportaal", 1, Decimal("10.00")),
    ]
    for _, _, figure in top:  # each row opens the list of just its invoices
        listed = viewer_client.get(figure.url).context["cl"].result_list
        assert (len(listed), sum(i.amount for i in listed)) == (figure.count, figure.amount), figure.url


def test_every_figure_links_to_a_list_of_the_same_invoices(viewer_client, book):
    dashboard = viewer_client.get(INDEX).context["dashboard"]
    links = [figure for row in dashboard.rows for figure in row.cells]
    links += [figure for _, _, figure in dashboard.top_customers + dashboard.other_currencies]
    links += [h.failed_pushes for h in dashboard.sync] + [h.open_problems for h in dashboard.sync]
    html = viewer_client.get(INDEX).content.decode()
    for figure in links:
        assert figure.url.replace("&", "&amp;") in html
        response = viewer_client.get(figure.url)
        assert response.status_code == 200, figure.url  # not Django's redirect for an unknown filter
        assert len(response.context["cl"].result_list) == figure.count, figure.url
    assert {figure.count for figure in links} >= {0, 1, 2, 5, 6, 7, 9}


def test_lists_follow_the_aging_filter(viewer_client, book):
    url = reverse("admin:invoices_invoice_changelist")
    response = viewer_client.get(url, {"outstanding": "61-90"})
    assert [i.amount for i in response.context["cl"].result_list] == [Decimal("500.00")]
    assert "Over 90 days overdue" in response.content.decode()  # offered in the filter sidebar


def test_chart_of_twelve_months(viewer_client, book):
    response = viewer_client.get(INDEX)
    months = response.context["dashboard"].months
    assert months[0].start == date(2025, 12, 1)
    assert months[-1].start == date(2026, 11, 1)
    assert len(months) == 12
    by_month = {m.start: (m.invoiced, m.paid) for m in months}
    assert by_month[date(2026, 11, 1)] == (Decimal("2050.00"), Decimal("400.00"))
    assert by_month[date(2026, 10, 1)] == (Decimal("475.00"), Decimal("75.00"))
    assert by_month[date(2026, 3, 1)] == (Decimal("2500.50"), Decimal("0.00"))
    html = response.content.decode()
    svg = re.search(r"<svg class=\"chart\".*?</svg>", html, re.S).group(0)
    assert len(re.findall(r'<g class="month" data-month="\d{4}-\d\d">', svg)) == 12
    assert "Nov 2026: invoiced EUR 2,050.00" in svg
    assert "Oct 2026: paid EUR 75.00" in svg
    assert ">EUR 0.00</text>" in svg  # the amount axis is labelled
    assert "<script" not in html.split('id="receivables-chart"')[1].split("</section>")[0]
    assert not re.search(r'(src|href)="https?://', svg)
    # The highest bar (March, EUR 2,500.50) is the tallest, and no bar leaves the plot.
    chart = response.context["chart"]
    heights = {m.start: Decimal(m.invoiced.height) for m in chart.months}
    assert max(heights, key=heights.get) == date(2026, 3, 1)
    assert all(Decimal(m.invoiced.y) >= 0 and Decimal(m.paid.y) >= 0 for m in chart.months)


def test_sync_health_and_warnings(viewer_client, book):
    response = viewer_client.get(INDEX)
    health = {h.provider: h for h in response.context["dashboard"].sync}
    assert health["mkp"].last_success == timezone.now() - timedelta(minutes=5)
    assert not health["mkp"].stale
    assert health["qonto"].last_success is None and health["qonto"].stale
    assert (health["mkp"].failed_pushes.count, health["qonto"].failed_pushes.count) == (0, 1)
    assert (health["mkp"].open_problems.count, health["qonto"].open_problems.count) == (1, 0)
    html = response.content.decode()
    assert "(5\xa0minutes ago)" in html
    warnings = selectors.admin_warnings()
    assert warnings == ["Qonto has no credentials configured: nothing is synced or sent there."]
    assert all(warning in html for warning in warnings)


def test_the_admin_is_branded_as_the_back_office(viewer_client):
    html = viewer_client.get(INDEX).content.decode()
    assert "<title>Dashboard | Invoice back-office</title>" in html
    assert '<a href="/admin/">Invoice back-office</a>' in html
    assert "Django administration" not in html and "Django site admin" not in html


def test_who_sees_the_figures(client, django_user_model, book):
    client.force_login(staff(django_user_model, "nora", perms=("invoices.view_customer",)))
    response = client.get(INDEX)
    assert response.status_code == 200
    assert "dashboard" not in response.context
    html = response.content.decode()
    assert "receivables-figures" not in html and "EUR" not in html
    assert reverse("admin:invoices_customer_changelist") in html  # Django's own index


@pytest.mark.parametrize(("group", "sees_celery"), [(VIEWER, False), (CLERK, False), (ADMIN, True)])
def test_celery_tables_only_for_the_back_office_admin(client, django_user_model, group, sees_celery):
    client.force_login(staff(django_user_model, "someone", group=group))
    html = client.get(INDEX).content.decode()
    assert "receivables-figures" in html  # every role sees the figures
    assert reverse("admin:invoices_invoice_changelist") in html  # and the app list below them
    assert ("/admin/django_celery_beat/" in html) is sees_celery
    assert ("Periodic tasks" in html) is sees_celery


def test_query_count_does_not_grow_with_the_invoices(viewer_client):
    def queries(total: int) -> int:
        for i in range(total):
            InvoiceFactory(
                provider=Provider.QONTO if i % 3 else Provider.MKP,
                due_date=days(-(i % 120)),
                status=InvoiceStatus.PAID if i % 4 == 0 else InvoiceStatus.OPEN,
                paid_at=timezone.now() - timedelta(days=i % 300) if i % 4 == 0 else None,
            )
        refresh_dashboard_snapshot()  # as the schedule does: the page reads the snapshot
        with CaptureQueriesContext(connection) as captured:
            assert viewer_client.get(INDEX).status_code == 200
        return len(captured)

    few = queries(10)
    many = queries(190)
    assert few == many
    assert few <= 20, few


def test_the_first_view_without_a_snapshot_computes_and_stores_it(viewer_client, book):
    assert not DashboardSnapshot.objects.exists()
    first = viewer_client.get(INDEX).context["dashboard"]
    assert DashboardSnapshot.objects.count() == 1
    assert first.as_of == timezone.now()
    with CaptureQueriesContext(connection) as captured:
        again = viewer_client.get(INDEX).context["dashboard"]
    assert again.rows == first.rows and again.months == first.months
    assert again.top_customers == first.top_customers
    assert sum("invoices_dashboardsnapshot" in q["sql"] for q in captured) == 1, "read, not recomputed"
    assert not [q for q in captured if "GROUP BY" in q["sql"] and "SUM" in q["sql"]], "no figure computed"


def test_a_stale_snapshot_is_recomputed_by_the_page(viewer_client, book, settings):
    settings.DASHBOARD_SNAPSHOT_MAX_AGE_SECONDS = 600
    with time_machine.travel(NOW - timedelta(seconds=599), tick=False):
        refresh_dashboard_snapshot()
    # A payment the snapshot has not seen yet (no worker is running).
    invoice = Invoice.objects.get(amount=Decimal("2500.50"))
    invoice.status, invoice.paid_at = InvoiceStatus.PAID, timezone.now() - timedelta(hours=1)
    invoice.save()
    fresh_enough = viewer_client.get(INDEX).context["dashboard"]
    assert fresh_enough.as_of == NOW - timedelta(seconds=599)
    assert cells(figures_of(fresh_enough)["Outstanding"])[1] == (2, Decimal("3500.50"))
    with time_machine.travel(NOW + timedelta(seconds=2), tick=False):
        recomputed = viewer_client.get(INDEX).context["dashboard"]
        assert recomputed.as_of == timezone.now()
    assert cells(figures_of(recomputed)["Outstanding"])[1] == (1, Decimal("1000.00"))
    assert DashboardSnapshot.objects.get().computed_at == NOW + timedelta(seconds=2), "and stored"


def test_a_snapshot_of_yesterday_is_recomputed_by_the_page(viewer_client, book):
    with time_machine.travel(datetime(2026, 11, 17, 23, 59, 30, tzinfo=AMSTERDAM), tick=False):
        refresh_dashboard_snapshot()
    after_midnight = datetime(2026, 11, 18, 0, 0, 5, tzinfo=AMSTERDAM)
    with time_machine.travel(after_midnight, tick=False):
        dashboard = viewer_client.get(INDEX).context["dashboard"]
    assert (dashboard.today, dashboard.as_of) == (TODAY, after_midnight), "yesterday's aging is not today's"


def figures_of(dashboard) -> dict:
    return {row.label: row for row in dashboard.rows}


def _expected_months(today: date) -> dict[date, tuple[Decimal, Decimal]]:
    """The chart's months worked out invoice by invoice, in Python, from the rows themselves."""
    first = date(today.year - 1, today.month + 1, 1) if today.month < 12 else date(today.year, 1, 1)
    months: dict[date, list[Decimal]] = {}
    for invoice in Invoice.objects.filter(currency="EUR", removed_at=None):
        if invoice.status in (InvoiceStatus.OPEN, InvoiceStatus.PAID) and invoice.remote_id:
            month = invoice.issue_date.replace(day=1)
            if month >= first:
                months.setdefault(month, [Decimal(0), Decimal(0)])[0] += invoice.amount
        if invoice.status == InvoiceStatus.PAID and invoice.paid_at:
            month = timezone.localtime(invoice.paid_at).date().replace(day=1)
            if month >= first:
                months.setdefault(month, [Decimal(0), Decimal(0)])[1] += invoice.amount
    return {month: tuple(values) for month, values in months.items()}


def test_the_snapshot_task_stores_the_same_figures_as_a_live_computation(viewer_client, book):
    InvoiceFactory(
        provider=Provider.QONTO,
        status=InvoiceStatus.PAID,
        issue_date=date(2025, 10, 20),  # before the 12 months kept: not counted as invoiced,
        paid_at=at(2025, 12, 1, 0, 30),  # but paid in the first minutes of the oldest month kept
        amount=Decimal("42.00"),
    )
    assert refresh_dashboard_snapshot()
    stored = DashboardSnapshot.objects.get()
    assert stored.computed_at == timezone.now()
    assert stored.figures == dashboard_snapshot_compute()
    months = {
        date.fromisoformat(m["month"]): (Decimal(m["invoiced"]), Decimal(m["paid"]))
        for m in stored.figures["months"]
    }
    assert len(months) == 12
    assert {month: value for month, value in months.items() if any(value)} == _expected_months(TODAY)
    assert months[date(2025, 12, 1)] == (Decimal("0.00"), Decimal("42.00"))
    # The page shows what was stored, amounts as Decimal.
    dashboard = viewer_client.get(INDEX).context["dashboard"]
    assert {m.start: (m.invoiced, m.paid) for m in dashboard.months} == months
    assert all(isinstance(f.amount, Decimal) for row in dashboard.rows for f in row.cells)


def test_the_dashboard_says_when_its_figures_were_computed(viewer_client, book):
    with time_machine.travel(NOW - timedelta(minutes=4, seconds=30), tick=False):
        refresh_dashboard_snapshot()
    response = viewer_client.get(INDEX)
    assert response.context["dashboard"].as_of == NOW - timedelta(minutes=4, seconds=30)
    html = response.content.decode()
    assert "Figures as of 11:55:30" in html
    with time_machine.travel(NOW.astimezone(ZoneInfo("UTC")), tick=False), timezone.override("Asia/Tokyo"):
        assert "Figures as of 19:55:30" in viewer_client.get(INDEX).content.decode()  # the viewer's zone


def test_a_payment_shows_after_the_recomputation_and_sync_health_at_once(viewer_client, book):
    refresh_dashboard_snapshot()
    before = viewer_client.get(INDEX).context["dashboard"]
    # The sync mirrors a payment of the Qonto invoice 200 days overdue (EUR 2,500.50), made today.
    invoice = Invoice.objects.get(amount=Decimal("2500.50"))
    invoice.status, invoice.paid_at = InvoiceStatus.PAID, timezone.now() - timedelta(hours=1)
    invoice.sync_state = SyncState.FAILED
    invoice.save()
    unchanged = viewer_client.get(INDEX).context["dashboard"]
    assert unchanged.rows == before.rows, "the snapshot's, until it is recomputed"
    health = {h.provider: h for h in unchanged.sync}
    assert health["qonto"].failed_pushes.count == 2, "the sync health is live"
    refresh_dashboard_snapshot()
    after = viewer_client.get(INDEX).context["dashboard"]
    rows_before, rows_after = figures_of(before), figures_of(after)
    d = Decimal
    assert cells(rows_after["Outstanding"])[1] == (1, d("1000.00"))
    assert cells(rows_after["Overdue"])[2] == (5, d("2000.00"))
    assert cells(rows_after["Over 90 days overdue"])[2] == (1, d("600.00"))
    assert cells(rows_after["Paid this month"])[2] == (3, d("2900.50"))
    assert [name for name, _, _ in after.top_customers] == ["Acme BV", "Cotton BV"]
    november = date(2026, 11, 1)
    assert {m.start: m.paid for m in after.months}[november] == d("2900.50")
    assert {m.start: m.paid for m in before.months}[november] == d("400.00")
    assert cells(rows_before["Paid this month"])[2] == (2, d("400.00"))

"""A clerk's day in the admin, in a real browser against the live server and the sandbox: the
dashboard and a payment, uploads for both providers, a bulk payment of 200 invoices watched to the
end, the CSV of a filter, and the invoice list on a 1366x768 screen.

Each step is checked against what the providers hold (the sandbox) or against the local rows, not
against the code that draws the page.
"""

import csv
import io
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from invoices.models import ActionBatch, Invoice, InvoiceStatus, Lease, Provider, SyncState
from invoices.push import push_invoices
from invoices.roles import CLERK
from invoices.services.dashboard_snapshot import QUEUED as DASHBOARD_QUEUED
from invoices.sync import MODE_FULL, sync_provider
from invoices.tasks import refresh_dashboard_snapshot
from tests.e2e.test_admin_flows import (
    GO,
    assert_styled,
    field,
    fill_mkp_form,
    log_in,
    mirror_everything,
    open_invoice_list,
    pdf_file,
)
from tests.e2e.test_roles import member
from tests.invoices.helpers import mirrored_mkp_customer, remote_state, seed

pytestmark = pytest.mark.e2e

BULK = 200
# The columns a clerk must see without scrolling sideways, by their headers.
KEY_COLUMNS = ("number", "customer", "amount", "due", "status", "sync")


@pytest.fixture
def clerk(django_user_model):
    return member(django_user_model, "clara", CLERK)


# What the providers hold --------------------------------------------------------------------------
def provider_open(sandbox, today: date) -> dict[str, list[dict]]:
    """The open invoices at each provider, keyed by our provider value, with an ``overdue`` flag."""
    mkp = [r for r in remote_state(sandbox, "mkp") if not r["paid"]]
    qonto = [r for r in remote_state(sandbox, "qonto") if r["status"] == "unpaid"]
    for row in mkp:
        row["due"] = row["dueAt"]
    for row in qonto:
        row["due"] = row["due_date"]
    for row in (*mkp, *qonto):
        row["overdue"] = bool(row["due"]) and date.fromisoformat(row["due"]) < today
    return {Provider.MKP: mkp, Provider.QONTO: qonto}


def money(amount: Decimal) -> str:
    return f"EUR {amount:,.2f}"


def invoices_text(count: int) -> str:
    return f"{count} invoice{'' if count == 1 else 's'}"


# The dashboard -----------------------------------------------------------------------------------
def figure_cell(page, row: str, column: str):
    """The cell of a dashboard figure: ``row`` is the row's slug (``outstanding``), ``column`` a
    provider's name or ``Total``."""
    headers = page.locator("#receivables-figures thead th").all_text_contents()
    return page.locator(f"#receivables-figures tr[data-figure={row}] td").nth(headers.index(column) - 1)


def expect_figure(page, row: str, column: str, rows: list[dict]) -> None:
    cell = figure_cell(page, row, column)
    expect(cell.locator(".count")).to_have_text(invoices_text(len(rows)))
    amount = sum((Decimal(r["amount"]) for r in rows), Decimal("0.00"))
    expect(cell.locator("a")).to_have_text(money(amount) + invoices_text(len(rows)))


def run_queued_dashboard_recomputation() -> None:
    """No worker runs beside the browser: the recomputation of the dashboard's figures queued on
    commit is run here, as the worker would (the test runs the queued pushes the same way)."""
    mark = Lease.objects.get(name=DASHBOARD_QUEUED)
    assert mark.expires_at > timezone.now(), "a recomputation of the dashboard's figures is queued"
    refresh_dashboard_snapshot(mark.holder)


def expect_dashboard(page, held: dict[str, list[dict]]) -> None:
    everything = [*held[Provider.MKP], *held[Provider.QONTO]]
    for column, rows in (
        ("MijnKlantportaal", held[Provider.MKP]),
        ("Qonto", held[Provider.QONTO]),
        ("Total", everything),
    ):
        expect_figure(page, "outstanding", column, rows)
        expect_figure(page, "overdue", column, [r for r in rows if r["overdue"]])


def test_the_dashboard_matches_the_data_and_follows_a_payment(page, clerk, sandbox, shot):
    mirror_everything(sandbox)
    run_queued_dashboard_recomputation()  # queued by the syncs that mirrored the invoices
    today = timezone.localdate()
    held = provider_open(sandbox, today)
    assert held[Provider.MKP] and held[Provider.QONTO], "the seed should leave open invoices at both"
    assert any(r["overdue"] for r in held[Provider.MKP]), "the seed should leave an overdue invoice"
    paid_this_month = Invoice.objects.filter(
        status=InvoiceStatus.PAID, paid_at__year=today.year, paid_at__month=today.month
    ).count()

    log_in(page, clerk)
    expect(page.get_by_role("heading", name=re.compile(r"^Receivables on "))).to_be_visible()
    expect_dashboard(page, held)
    expect(figure_cell(page, "paid-this-month", "Total").locator(".count")).to_have_text(
        invoices_text(paid_this_month)
    )
    assert_styled(page)
    shot(page, "01-dashboard.png")

    # The overdue figure of MijnKlantportaal lists exactly what it counts.
    overdue = sorted(r["number"] for r in held[Provider.MKP] if r["overdue"])
    figure_cell(page, "overdue", "MijnKlantportaal").locator("a").click()
    expect(page).to_have_url(re.compile(r"/admin/invoices/invoice/\?.*overdue=yes"))
    numbers = page.locator("#result_list tbody th.field-number_display .invoice-number")
    expect(numbers).to_have_count(len(overdue))
    assert sorted(numbers.all_inner_texts()) == overdue
    expect(page.locator("#result_list tbody .status-overdue")).to_have_count(len(overdue))
    shot(page, "02-overdue-list.png")

    # A customer pays one of them: the clerk marks it paid from its page, at the moment proposed.
    number = overdue[0]
    invoice = Invoice.objects.get(provider=Provider.MKP, number=number)
    page.locator("#result_list").get_by_role("link", name=number, exact=True).click()
    page.get_by_role("link", name="Mark as paid").click()
    expect(page.get_by_text(f"Mark invoice {number} as paid.")).to_be_visible()
    expect(page.locator("#id_paid_at_0")).not_to_have_value("")
    page.get_by_role("button", name="Mark as paid").click()
    expect(page.locator(".messagelist .success")).to_contain_text(f"{number}: confirmed by MijnKlantportaal")
    expect(page.locator(".field-status .readonly")).to_have_text("Paid")
    shot(page, "03-invoice-paid.png")
    run_queued_dashboard_recomputation()  # queued on commit by the payment the provider confirmed

    # Back on the dashboard: one invoice fewer outstanding and overdue, by its amount.
    page.locator(".breadcrumbs").get_by_role("link", name="Home").click()
    held[Provider.MKP] = [r for r in held[Provider.MKP] if r["number"] != number]
    assert provider_open(sandbox, today) == held  # the provider agrees
    expect_dashboard(page, held)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    if timezone.localtime(invoice.paid_at).month == today.month:
        paid_this_month += 1
    expect(figure_cell(page, "paid-this-month", "Total").locator(".count")).to_have_text(
        invoices_text(paid_this_month)
    )
    shot(page, "04-dashboard-after-payment.png")


# Uploads -----------------------------------------------------------------------------------------
def test_upload_a_pdf_for_each_provider(page, clerk, sandbox, shot):
    customer = mirrored_mkp_customer(sandbox)
    log_in(page, clerk)
    open_invoice_list(page)
    page.get_by_role("link", name="Add invoice").click()
    fill_mkp_form(page, customer, number="2026-700", amount="1397.19")
    shot(page, "05-upload-mkp.png")
    page.get_by_role("button", name="Create at MijnKlantportaal").click()
    expect(page.locator(".messagelist .success")).to_have_text("2026-700: confirmed by MijnKlantportaal.")
    expect(page.locator(".field-sync_state .readonly")).to_have_text("In sync")
    (remote,) = remote_state(sandbox, "mkp")
    assert (remote["number"], remote["amount"]) == ("2026-700", "1397.19")

    # Qonto: three files in one upload, one of them chosen twice under another name.
    page.goto("/admin/invoices/invoice/add/?provider=qonto")
    twice = pdf_file("Q-702", "2500.00")
    field(page, "PDF files").set_input_files(
        [
            pdf_file("Q-701", "101.50"),
            twice,
            pdf_file("Q-703", "0.00"),
            {**twice, "name": "Q-702 (copy).pdf"},
        ]
    )
    page.get_by_role("button", name="Import into Qonto").click()

    rows = page.locator("#upload-results tbody tr")
    expect(rows).to_have_count(4)
    issued = "1 Nov 2026"  # the admin's date format
    for index, (number, amount) in enumerate((("Q-701", "101.50"), ("Q-702", "2,500.00"), ("Q-703", "0.00"))):
        cells = rows.nth(index).locator("td")
        expect(cells.nth(0)).to_have_text(f"{number}.pdf")
        expect(cells.nth(1)).to_have_text(number)  # what Qonto read from the file
        expect(cells.nth(2)).to_have_text(f"EUR {amount}")
        expect(cells.nth(3)).to_have_text(issued)
        expect(cells.nth(5)).to_contain_text("confirmed by Qonto.")
    expect(rows.nth(2).locator(".zero-amount-warning")).to_contain_text("Qonto read EUR 0.00 from this file")
    expect(rows.locator(".zero-amount-warning")).to_have_count(1)
    duplicate = rows.nth(3).locator("td")
    expect(duplicate.nth(0)).to_have_text("Q-702 (copy).pdf")
    expect(duplicate.nth(5)).to_have_text(
        "Q-702 (copy).pdf is the same file as Q-702.pdf in this upload: it was imported once."
    )
    assert_styled(page)
    shot(page, "06-upload-qonto-results.png")

    qonto = Invoice.objects.filter(provider=Provider.QONTO).order_by("number")
    assert [(i.number, i.amount, i.sync_state) for i in qonto] == [
        ("Q-701", Decimal("101.50"), SyncState.SYNCED),
        ("Q-702", Decimal("2500.00"), SyncState.SYNCED),
        ("Q-703", Decimal("0.00"), SyncState.SYNCED),
    ]
    assert sorted(r["number"] for r in remote_state(sandbox, "qonto")) == ["Q-701", "Q-702", "Q-703"]
    # One stored PDF per invoice, none for the second copy.
    stored = list((Path(settings.MEDIA_ROOT) / "invoices" / "qonto").rglob("*.pdf"))
    assert len(stored) == 3


# Bulk payment ------------------------------------------------------------------------------------
def mirror_exactly_open(sandbox, count: int) -> list[dict]:
    """Seed Qonto with more than ``count`` unpaid invoices, cancel the surplus there, and mirror it:
    ``count`` invoices are left to pay. (Qonto, as its limit allows 950 requests in 10 seconds;
    MijnKlantportaal's 60 a minute would spread 200 payments over four minutes.)"""
    seed(sandbox, invoices=640)
    unpaid = [r for r in remote_state(sandbox, "qonto") if r["status"] == "unpaid"]
    assert len(unpaid) > count
    for row in unpaid[count:]:
        requests.post(
            f"{sandbox.admin_url}/state/qonto/{row['id']}", json={"status": "canceled"}, timeout=10
        ).raise_for_status()
    assert sync_provider(provider=Provider.QONTO, mode=MODE_FULL).status == "succeeded"
    return unpaid[:count]


def test_bulk_mark_paid_of_200_through_the_confirmation_page(page, clerk, sandbox, queued, shot):
    to_pay = mirror_exactly_open(sandbox, BULK)
    log_in(page, clerk)
    page.goto("/admin/invoices/invoice/?status__exact=open&provider__exact=qonto")
    expect(page.locator("#result_list tbody tr")).to_have_count(100)  # a page of the list
    page.locator("#action-toggle").check()
    page.get_by_role("button", name=f"Select all {BULK} invoices").click()
    expect(page.get_by_text(f"All {BULK} selected")).to_be_visible()
    page.locator("select[name=action]").select_option(label=GO)
    shot(page, "07-bulk-selected.png", full_page=False)
    page.get_by_role("button", name="Go").click()

    expect(page.get_by_text(f"Mark these {BULK} invoices as paid.")).to_be_visible()
    expect(page.locator("#selected-invoices li")).to_have_count(BULK)
    yesterday = timezone.localdate() - timedelta(days=1)
    page.locator("#id_paid_at_0").fill(yesterday.isoformat())
    page.locator("#id_paid_at_1").fill("09:00:00")
    shot(page, "08-bulk-confirm.png", full_page=False)
    page.get_by_role("button", name="Mark as paid").click()

    batch = ActionBatch.objects.get()
    expect(page).to_have_url(re.compile(rf"/admin/invoices/actionbatch/{batch.pk}/change/$"))
    text, bar = page.locator("#batch-progress-text"), page.locator("#batch-progress")
    expect(text).to_have_text(f"0 of {BULK} done")
    ids = sorted(pk for call in queued for pk in call)
    assert len(ids) == BULK

    # The worker's part, in steps: the page follows by itself.
    push_invoices(ids[:80])
    expect(text).to_have_text(f"80 of {BULK} done")
    expect(bar).to_have_attribute("max", str(BULK))
    assert page.evaluate("document.getElementById('batch-progress').value") == 80
    expect(page.locator("#batch-done")).to_have_count(0)
    shot(page, "09-bulk-progress.png", full_page=False)
    push_invoices(ids[80:])
    expect(page.locator("#batch-done")).to_have_text(f"Done: {BULK} succeeded, 0 failed, 0 skipped.")
    expect(text).to_have_text(f"{BULK} of {BULK} done")
    expect(page.locator("#batch-results tbody tr.outcome-done")).to_have_count(BULK)
    assert_styled(page)
    shot(page, "10-bulk-done.png", full_page=False)

    assert (
        Invoice.objects.filter(pk__in=ids, status=InvoiceStatus.PAID, sync_state=SyncState.SYNCED).count()
        == BULK
    )
    assert not Invoice.objects.filter(provider=Provider.QONTO, status=InvoiceStatus.OPEN).exists()
    remote = {r["id"]: r for r in remote_state(sandbox, "qonto")}
    assert {remote[r["id"]]["status"] for r in to_pay} == {"paid"}
    # Qonto keeps the date only.
    assert {remote[r["id"]]["paid_at"][:10] for r in to_pay} == {yesterday.isoformat()}


# The list ----------------------------------------------------------------------------------------
def test_export_the_csv_of_a_filter(page, clerk, sandbox, shot):
    mirror_everything(sandbox, invoices=60)
    today = timezone.localdate()
    expected = sorted(r["number"] for r in provider_open(sandbox, today)[Provider.MKP] if r["overdue"])
    assert expected, "the seed should leave overdue MijnKlantportaal invoices"
    log_in(page, clerk)
    open_invoice_list(page)
    filters = page.locator("#changelist-filter")
    filters.get_by_role("link", name="MijnKlantportaal", exact=True).click()
    filters.get_by_role("link", name="Overdue", exact=True).click()
    expect(page).to_have_url(re.compile(r"overdue=yes"))
    expect(page).to_have_url(re.compile(r"provider__exact=mkp"))
    expect(page.locator("#result_list tbody tr")).to_have_count(len(expected))
    page.locator("#action-toggle").check()
    page.locator("select[name=action]").select_option(label="Export selected as CSV")
    shot(page, "11-export-filter.png")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Go").click()
    download = download_info.value
    assert download.suggested_filename == f"invoices-{today:%Y%m%d}.csv"

    rows = list(csv.DictReader(io.StringIO(download.path().read_text(encoding="utf-8"))))
    assert sorted(r["number"] for r in rows) == expected
    for row in rows:
        assert (row["provider"], row["status"], row["currency"]) == ("mkp", "open", "EUR")
        assert date.fromisoformat(row["due_date"]) < today
        invoice = Invoice.objects.get(provider=Provider.MKP, number=row["number"])
        assert Decimal(row["amount"]) == invoice.amount


def test_key_columns_fit_a_1366_screen(page, clerk, sandbox, shot):
    mirror_everything(sandbox)
    page.set_viewport_size({"width": 1366, "height": 768})
    log_in(page, clerk)
    open_invoice_list(page)
    assert_styled(page)
    shot(page, "12-list-1366.png", full_page=False)
    # What the window shows of the table: the viewport, narrowed by the table's own scroll box.
    visible_right = page.evaluate(
        """() => {
            const box = document.querySelector('#changelist .results') || document.querySelector('#result_list');
            return Math.min(window.innerWidth, box.getBoundingClientRect().left + box.clientWidth);
        }"""
    )
    overdue = page.locator("#result_list tbody .status-overdue").first
    expect(overdue).to_have_text("overdue")
    assert overdue.evaluate("el => getComputedStyle(el).color") == "rgb(186, 33, 33)"
    headers = page.locator("#result_list thead th")
    cells = {
        f"{column} header": headers.filter(has_text=re.compile(rf"^\s*{column}\s*$", re.IGNORECASE))
        for column in KEY_COLUMNS
    }
    cells["overdue status"] = overdue
    hidden = {}
    for name, cell in cells.items():
        expect(cell).to_have_count(1)
        box = cell.bounding_box()
        if box is None or box["x"] < 0 or box["x"] + box["width"] > visible_right:
            hidden[name] = box and round(box["x"] + box["width"])
    assert hidden == {}, f"beyond the {visible_right} px the window shows of the list: {hidden}"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

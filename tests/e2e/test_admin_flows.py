"""The main admin flows as staff do them: in a real browser, against the live server and the sandbox.

Each test checks what the person sees and what it left behind: the local rows and the providers'
state in the sandbox.
"""

import re
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from invoices.models import ActionBatch, Invoice, InvoiceStatus, Provider, SyncState
from invoices.push import push_invoices
from invoices.sync import MODE_CUSTOMERS, MODE_FULL, sync_provider
from tests.e2e.conftest import PASSWORD
from tests.invoices.helpers import mirrored_mkp_customer, pdf_bytes, remote_state, seed

pytestmark = pytest.mark.e2e

GO = "Mark selected invoices as paid…"


# Steps ------------------------------------------------------------------------------------------
def log_in(page, user) -> None:
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()


def open_invoice_list(page) -> None:
    """From the admin's front page, as staff get there: its list of everything in the admin."""
    page.goto("/admin/")
    page.get_by_role("link", name="Invoices", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"/admin/invoices/invoice/$"))
    expect(page.get_by_role("heading", name="Select invoice to view")).to_be_visible()


def assert_styled(page) -> None:
    """The admin's stylesheets arrived (the header is coloured, no static file failed)."""
    assert page.broken_static == []
    header = page.evaluate("getComputedStyle(document.querySelector('#header')).backgroundColor")
    assert header not in ("rgba(0, 0, 0, 0)", "transparent", "rgb(255, 255, 255)"), header


def field(page, label: str):
    """The input a form row's label points at (Django's labels end in a colon)."""
    return page.get_by_label(f"{label}:", exact=True)


def pdf_file(number: str, amount: str = "12.95") -> dict:
    return {"name": f"{number}.pdf", "mimeType": "application/pdf", "buffer": pdf_bytes(number, amount)}


def type_impossible_date(field) -> None:
    """Type 31 April 2024 into a date input key by key, as a person does, in the order of day and
    month that this browser's date input uses."""
    field.fill("")
    field.focus()
    field.page.keyboard.type("01022024")
    month_first = field.input_value() == "2024-01-02"
    field.fill("")
    field.focus()
    field.page.keyboard.type("04312024" if month_first else "31042024")
    assert field.evaluate("el => el.validity.badInput"), "the browser should hold an impossible date"


def fill_mkp_form(page, customer, *, number="2026-100", amount="12.95") -> None:
    field(page, "PDF").set_input_files(pdf_file(number))
    field(page, "Customer").select_option(label=str(customer))
    field(page, "Invoice number").fill(number)
    field(page, "Issue date").fill("2026-11-01")
    field(page, "Due date").fill("2026-12-01")
    field(page, "Amount").fill(amount)
    field(page, "Send the customer a notification").check()


def mirror_everything(sandbox, *, invoices: int = 40) -> None:
    seed(sandbox, invoices=invoices, customers=4)
    for provider in (Provider.MKP, Provider.QONTO):
        assert sync_provider(provider=provider, mode=MODE_CUSTOMERS).status == "succeeded"
        assert sync_provider(provider=provider, mode=MODE_FULL).status == "succeeded"


def open_invoices(provider):
    return Invoice.objects.filter(provider=provider, status=InvoiceStatus.OPEN).order_by("pk")


def customer_of(invoice) -> str:
    """The customer as the invoice list names it: the mirrored customer, else the name on the invoice."""
    name = invoice.customer.name if invoice.customer else invoice.customer_name
    assert name, f"{invoice} has no customer to show"
    return name


def yesterday_at(hour: int, minute: int = 0) -> datetime:
    day = timezone.localdate() - timedelta(days=1)
    return timezone.make_aware(datetime.combine(day, time(hour, minute)))


# Flows ------------------------------------------------------------------------------------------
def test_upload_a_pdf_for_mijnklantportaal(page, staff, sandbox, shot):
    customer = mirrored_mkp_customer(sandbox)
    log_in(page, staff)
    open_invoice_list(page)
    assert_styled(page)
    page.get_by_role("link", name="Add invoice").click()
    expect(page.get_by_role("heading", name="Add invoice")).to_be_visible()
    expect(page.locator(".provider-tabs strong")).to_have_text("MijnKlantportaal")
    expect(field(page, "Issue date")).to_have_attribute("type", "date")

    fill_mkp_form(page, customer)
    assert_styled(page)
    shot(page, "upload.png")
    page.get_by_role("button", name="Create at MijnKlantportaal").click()

    expect(page.locator(".messagelist .success")).to_have_text("2026-100: confirmed by MijnKlantportaal.")
    invoice = Invoice.objects.get(number="2026-100")
    expect(page).to_have_url(re.compile(rf"/admin/invoices/invoice/{invoice.pk}/change/$"))
    expect(page.locator("#content h2").first).to_have_text("2026-100")
    expect(page.locator(".field-sync_state .readonly")).to_have_text("In sync")
    expect(page.locator(".field-remote_id .readonly")).to_have_text(invoice.remote_id)
    shot(page, "invoice-created.png")

    assert invoice.provider == Provider.MKP
    assert invoice.sync_state == SyncState.SYNCED
    assert invoice.customer == customer
    assert invoice.amount == Decimal("12.95")
    assert invoice.issue_date.isoformat() == "2026-11-01"
    assert invoice.due_date.isoformat() == "2026-12-01"
    assert invoice.send_notification is True
    assert invoice.created_by == staff
    assert invoice.pdf.read().startswith(b"%PDF")
    (remote,) = remote_state(sandbox, "mkp")
    assert remote["id"] == invoice.remote_id
    assert remote["number"] == "2026-100"
    assert remote["customerId"] == customer.remote_id
    assert remote["amount"] == "12.95"
    assert (remote["issuedAt"], remote["dueAt"]) == ("2026-11-01", "2026-12-01")
    assert remote["paid"] is False


def test_a_comma_amount_is_refused_and_the_form_kept(page, staff, sandbox, shot):
    customer = mirrored_mkp_customer(sandbox)
    log_in(page, staff)
    page.goto("/admin/invoices/invoice/add/")
    fill_mkp_form(page, customer, amount="12,95")
    page.get_by_role("button", name="Create at MijnKlantportaal").click()

    expect(page).to_have_url(re.compile(r"/admin/invoices/invoice/add/$"))
    expect(page.locator(".field-amount .errorlist")).to_have_text(
        "Use a dot for decimals: 12.95 instead of 12,95."
    )
    expect(page.get_by_text("choose the PDF again")).to_be_visible()
    # What was typed correctly is still there; only the file has to be chosen again.
    expect(field(page, "Invoice number")).to_have_value("2026-100")
    expect(field(page, "Amount")).to_have_value("12,95")
    expect(field(page, "Due date")).to_have_value("2026-12-01")
    assert_styled(page)
    shot(page, "upload-errors.png")

    assert not Invoice.objects.exists()
    assert remote_state(sandbox, "mkp") == []


def test_an_impossible_issue_date_is_stopped_in_the_browser(page, staff, sandbox):
    customer = mirrored_mkp_customer(sandbox)
    log_in(page, staff)
    page.goto("/admin/invoices/invoice/add/")
    fill_mkp_form(page, customer)
    type_impossible_date(field(page, "Issue date"))
    page.get_by_role("button", name="Create at MijnKlantportaal").click()
    page.wait_for_timeout(500)
    expect(page).to_have_url(re.compile(r"/admin/invoices/invoice/add/$"))
    assert field(page, "Issue date").evaluate("el => el.validity.valid") is False
    assert not Invoice.objects.exists()
    assert remote_state(sandbox, "mkp") == []


def test_an_impossible_due_date_is_not_dropped_silently(page, staff, sandbox):
    customer = mirrored_mkp_customer(sandbox)
    log_in(page, staff)
    page.goto("/admin/invoices/invoice/add/")
    fill_mkp_form(page, customer)
    type_impossible_date(field(page, "Due date"))
    page.get_by_role("button", name="Create at MijnKlantportaal").click()
    page.wait_for_load_state()
    # Whatever stops it (the browser or the server), no invoice may be created without its due date.
    assert not Invoice.objects.filter(due_date__isnull=True).exists()
    assert remote_state(sandbox, "mkp") == []


def test_qonto_tab_imports_several_pdfs_at_once(page, staff, sandbox, shot):
    log_in(page, staff)
    open_invoice_list(page)
    page.get_by_role("link", name="Add invoice").click()
    page.locator(".provider-tabs").get_by_role("link", name="Qonto").click()
    expect(page).to_have_url(re.compile(r"\?provider=qonto$"))
    expect(page.locator(".provider-tabs strong")).to_have_text("Qonto")
    field(page, "PDF files").set_input_files(
        [pdf_file("Q-1", "101.50"), pdf_file("Q-2", "102.50"), pdf_file("Q-3", "103.50")]
    )
    page.get_by_role("button", name="Import into Qonto").click()

    expect(page.get_by_role("heading", name="Result per file")).to_be_visible()
    rows = page.locator("#upload-results tbody tr")
    expect(rows).to_have_count(3)
    for number, amount in (("Q-1", "101.50"), ("Q-2", "102.50"), ("Q-3", "103.50")):
        # What Qonto read from the file, beside the file's name.
        row = rows.filter(has=page.get_by_role("link", name=number, exact=True))
        expect(row.locator("td").nth(0)).to_have_text(f"{number}.pdf")
        expect(row.locator("td").nth(2)).to_have_text(f"EUR {amount}")
        expect(row.locator("td").nth(5)).to_have_text("confirmed by Qonto.")
    # The form is empty again, ready for the next files.
    expect(field(page, "PDF files")).to_have_value("")
    assert_styled(page)
    shot(page, "qonto-results.png")

    invoices = Invoice.objects.filter(provider=Provider.QONTO).order_by("number")
    assert [(i.number, i.amount, i.sync_state) for i in invoices] == [
        ("Q-1", Decimal("101.50"), SyncState.SYNCED),
        ("Q-2", Decimal("102.50"), SyncState.SYNCED),
        ("Q-3", Decimal("103.50"), SyncState.SYNCED),
    ]
    remote = {r["number"]: r for r in remote_state(sandbox, "qonto")}
    assert sorted(remote) == ["Q-1", "Q-2", "Q-3"]
    assert {remote[i.number]["id"] for i in invoices} == {i.remote_id for i in invoices}
    assert remote["Q-2"]["amount"] == "102.50"


def test_bulk_mark_as_paid_from_the_list(page, staff, sandbox, queued, shot):
    mirror_everything(sandbox)
    chosen = list(open_invoices(Provider.MKP)[:2]) + list(open_invoices(Provider.QONTO)[:2])
    log_in(page, staff)
    open_invoice_list(page)
    page.locator("#changelist-filter").get_by_role("link", name="Unpaid", exact=True).click()
    expect(page).to_have_url(re.compile(r"[?&]paid=no"))
    unpaid = Invoice.objects.exclude(status__in=[InvoiceStatus.PAID, InvoiceStatus.CANCELED]).count()
    expect(page.locator("#result_list tbody tr")).to_have_count(unpaid)
    expect(page.locator("#result_list tbody")).not_to_contain_text("Paid")

    for invoice in chosen:
        row = page.locator("#result_list tbody tr").filter(
            has=page.get_by_role("link", name=invoice.number, exact=True)
        )
        expect(row).to_have_count(1)
        row.locator("input.action-select").check()
    expect(page.locator(".action-counter")).to_have_text(f"4 of {unpaid} selected")
    page.locator("select[name=action]").select_option(label=GO)
    assert_styled(page)
    shot(page, "changelist.png")
    page.get_by_role("button", name="Go").click()

    # The confirmation page asks when they were paid.
    expect(page.get_by_role("heading", name="Mark as paid")).to_be_visible()
    expect(page.get_by_text("Mark these 4 invoices as paid.")).to_be_visible()
    expect(page.get_by_text("Qonto keeps only the date, and refuses a date after today.")).to_be_visible()
    expect(page.locator("#selected-invoices li")).to_have_count(4)
    for invoice in chosen:
        expect(page.locator("#selected-invoices")).to_contain_text(
            f"{invoice.number} — {customer_of(invoice)}"
        )
    paid_date, paid_time = page.locator("#id_paid_at_0"), page.locator("#id_paid_at_1")
    expect(paid_date).to_have_attribute("type", "date")
    expect(paid_time).to_have_attribute("type", "time")
    moment = yesterday_at(9)
    paid_date.fill(moment.date().isoformat())
    paid_time.fill("09:00:00")
    assert_styled(page)
    shot(page, "mark-paid-confirm.png")
    page.get_by_role("button", name="Mark as paid").click()

    batch = ActionBatch.objects.get()
    expect(page).to_have_url(re.compile(rf"/admin/invoices/actionbatch/{batch.pk}/change/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Mark as paid: result per invoice")
    expect(page.locator(".messagelist .success")).to_have_text(
        "4 invoices will be marked paid at the provider in the background."
    )
    outcomes = page.locator("#batch-results tbody tr td:last-child")
    expect(outcomes).to_have_text(["in progress"] * 4)
    ids = sorted(pk for call in queued for pk in call)
    assert ids == sorted(i.pk for i in chosen)

    # The worker's part, then the result page (which also reloads itself) says what happened.
    push_invoices(ids)
    page.reload()
    expect(outcomes).to_have_text(["paid"] * 4)
    expect(page.locator("#batch-results tbody tr.outcome-done")).to_have_count(4)
    for invoice in chosen:
        row = page.locator("#batch-results tbody tr").filter(has_text=invoice.number)
        expect(row.locator("td").nth(2)).to_have_text(customer_of(invoice))
    assert_styled(page)
    shot(page, "batch-results.png")

    for invoice in Invoice.objects.filter(pk__in=ids):
        assert (invoice.status, invoice.sync_state) == (InvoiceStatus.PAID, SyncState.SYNCED)
        assert timezone.localtime(invoice.paid_at).date() == moment.date()
    mkp = {r["id"]: r for r in remote_state(sandbox, "mkp")}
    qonto = {r["id"]: r for r in remote_state(sandbox, "qonto")}
    for invoice in chosen[:2]:
        assert mkp[invoice.remote_id]["paid"] is True
        assert mkp[invoice.remote_id]["paidAt"].startswith(f"{moment.date().isoformat()}T09:00:00")
    for invoice in chosen[2:]:
        assert qonto[invoice.remote_id]["status"] == "paid"
        assert qonto[invoice.remote_id]["paid_at"].startswith(moment.date().isoformat())


def test_mark_one_invoice_paid_from_its_page(page, staff, sandbox, shot):
    seed(sandbox, invoices=20, customers=3)
    assert sync_provider(provider=Provider.MKP, mode=MODE_FULL).status == "succeeded"
    invoice = open_invoices(Provider.MKP).first()
    log_in(page, staff)
    open_invoice_list(page)
    page.locator("#searchbar").fill(invoice.number)
    page.get_by_role("button", name="Search").click()
    page.locator("#result_list").get_by_role("link", name=invoice.number, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/admin/invoices/invoice/{invoice.pk}/change/\?"))
    expect(page.locator(".field-status .readonly")).to_have_text("Open")

    page.get_by_role("link", name="Mark as paid").click()
    expect(page.get_by_text(f"Mark invoice {invoice.number} as paid.")).to_be_visible()
    moment = yesterday_at(14, 30)
    page.locator("#id_paid_at_0").fill(moment.date().isoformat())
    page.locator("#id_paid_at_1").fill("14:30:00")
    page.get_by_role("button", name="Mark as paid").click()

    expect(page).to_have_url(re.compile(rf"/admin/invoices/invoice/{invoice.pk}/change/$"))
    expect(page.locator(".messagelist .success")).to_have_text(
        f"{invoice.number}: confirmed by MijnKlantportaal (paid {moment.day} {moment:%b %Y} 14:30)."
    )
    expect(page.locator(".field-status .readonly")).to_have_text("Paid")
    expect(page.get_by_role("link", name="Mark as paid")).to_have_count(0)
    assert_styled(page)
    shot(page, "invoice-paid.png")

    invoice.refresh_from_db()
    assert (invoice.status, invoice.sync_state) == (InvoiceStatus.PAID, SyncState.SYNCED)
    assert invoice.paid_at == moment
    (remote,) = [r for r in remote_state(sandbox, "mkp") if r["id"] == invoice.remote_id]
    assert remote["paid"] is True
    assert remote["paidAt"].startswith(f"{moment:%Y-%m-%d}T14:30:00")


def test_the_payment_moment_starts_at_now(page, staff, sandbox):
    seed(sandbox, invoices=10, customers=2)
    assert sync_provider(provider=Provider.MKP, mode=MODE_FULL).status == "succeeded"
    invoice = open_invoices(Provider.MKP).first()
    log_in(page, staff)
    page.goto(f"/admin/invoices/invoice/{invoice.pk}/change/")
    page.get_by_role("link", name="Mark as paid").click()
    expect(page.locator("#id_paid_at_1")).not_to_have_value("")
    expect(page.locator("#id_paid_at_0")).to_have_value(timezone.localdate().isoformat(), timeout=2000)
    # Accepting the proposed moment is enough.
    page.get_by_role("button", name="Mark as paid").click()
    expect(page.locator(".messagelist .success")).to_contain_text("confirmed by MijnKlantportaal")

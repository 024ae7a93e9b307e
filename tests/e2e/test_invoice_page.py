"""The buttons of the invoice page, clicked in a real browser against the live server and the sandbox."""

import re
from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import expect

from invoices.models import ActionBatch, Invoice, InvoiceStatus, Provider
from invoices.push import push_invoices
from invoices.sync import MODE_FULL, sync_provider
from tests.e2e.test_admin_flows import assert_styled, log_in
from tests.invoices.helpers import seed

pytestmark = pytest.mark.e2e


def test_refresh_and_download_the_pdf_from_the_invoice_page(page, staff, sandbox, shot):
    seed(sandbox, invoices=10, customers=2)
    assert sync_provider(provider=Provider.MKP, mode=MODE_FULL).status == "succeeded"
    invoice = Invoice.objects.filter(provider=Provider.MKP, status=InvoiceStatus.OPEN).order_by("pk").first()
    # Someone marks it paid at MijnKlantportaal itself; our mirror does not know yet.
    paid_at = (timezone.now() - timedelta(days=1)).replace(microsecond=0)
    requests.post(
        f"{sandbox.admin_url}/state/mkp/{invoice.remote_id}", json={"paidAt": paid_at.isoformat()}, timeout=10
    ).raise_for_status()

    log_in(page, staff)
    page.goto(f"/admin/invoices/invoice/{invoice.pk}/change/")
    expect(page.locator(".field-status .readonly")).to_have_text("Open")
    page.get_by_role("button", name="Refresh from provider").click()

    expect(page).to_have_url(re.compile(rf"/admin/invoices/invoice/{invoice.pk}/change/$"))
    expect(page.locator(".messagelist .success")).to_have_text(
        f"Invoice {invoice.number} refreshed from MijnKlantportaal."
    )
    expect(page.locator(".field-status .readonly")).to_have_text("Paid")
    assert_styled(page)
    shot(page, "invoice-refreshed.png")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.paid_at == paid_at

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download PDF from provider").click()
    download = download_info.value
    assert download.suggested_filename == f"{invoice.number}.pdf"
    content = download.path().read_bytes()
    assert content.startswith(b"%PDF-")
    # The page stays where it was, the file arrived as a download.
    expect(page).to_have_url(re.compile(rf"/admin/invoices/invoice/{invoice.pk}/change/$"))
    invoice.refresh_from_db()
    assert invoice.pdf and invoice.pdf.read() == content


def test_bulk_mark_paid_shows_its_progress_in_place_until_done(page, staff, sandbox, queued, shot):
    seed(sandbox, invoices=40, customers=3)
    assert sync_provider(provider=Provider.MKP, mode=MODE_FULL).status == "succeeded"
    unpaid = Invoice.objects.filter(provider=Provider.MKP, status=InvoiceStatus.OPEN).count()
    assert unpaid >= 15
    log_in(page, staff)
    page.goto("/admin/invoices/invoice/?paid=no&provider__exact=mkp")
    page.locator("#action-toggle").check()
    page.locator("select[name=action]").select_option(label="Mark selected invoices as paid…")
    page.get_by_role("button", name="Go").click()
    yesterday = timezone.localdate() - timedelta(days=1)
    page.locator("#id_paid_at_0").fill(yesterday.isoformat())
    page.locator("#id_paid_at_1").fill("09:00:00")
    page.get_by_role("button", name="Mark as paid").click()

    batch = ActionBatch.objects.get()
    expect(page).to_have_url(re.compile(rf"/admin/invoices/actionbatch/{batch.pk}/change/$"))
    text, bar = page.locator("#batch-progress-text"), page.locator("#batch-progress")
    expect(text).to_have_text(f"0 of {unpaid} done")
    expect(bar).to_have_attribute("value", "0")
    expect(page.locator("#batch-working")).to_contain_text("also when you leave this page")
    shot(page, "batch-progress-start.png")

    # The worker's part, in two steps: the page follows without being reloaded by hand.
    ids = sorted(pk for call in queued for pk in call)
    assert len(ids) == unpaid
    push_invoices(ids[:5])
    expect(text).to_have_text(f"5 of {unpaid} done")
    assert page.evaluate("document.getElementById('batch-progress').value") == 5
    shot(page, "batch-progress-partway.png")
    push_invoices(ids[5:])
    expect(page.locator("#batch-done")).to_have_text(f"Done: {unpaid} succeeded, 0 failed, 0 skipped.")
    expect(text).to_have_text(f"{unpaid} of {unpaid} done")
    expect(page.locator("#batch-results tbody tr.outcome-done")).to_have_count(unpaid)
    assert_styled(page)
    shot(page, "batch-progress-done.png")
    page.get_by_role("link", name="Back to the invoice list").click()
    expect(page).to_have_url(re.compile(r"/admin/invoices/invoice/$"))

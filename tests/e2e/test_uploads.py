"""Correcting a failed upload in a real browser: the refusal, the correction form, the send."""

import re

import pytest
from playwright.sync_api import expect

from invoices.models import Customer, Invoice, InvoiceEvent, Provider, SyncState
from tests.e2e.test_admin_flows import assert_styled, field, fill_mkp_form, log_in, open_invoice_list
from tests.invoices.helpers import mirrored_mkp_customer, remote_state

pytestmark = pytest.mark.e2e


def test_correct_a_failed_upload_and_send_it(page, staff, sandbox, shot):
    known = mirrored_mkp_customer(sandbox)
    gone = Customer.objects.create(provider=Provider.MKP, remote_id="cst_gone", name="Gone BV")
    log_in(page, staff)
    open_invoice_list(page)
    page.get_by_role("link", name="Add invoice").click()
    fill_mkp_form(page, gone, number="2026-300")
    page.get_by_role("button", name="Create at MijnKlantportaal").click()

    # MijnKlantportaal does not know the customer: the upload is kept, and says how to go on.
    expect(page.locator(".messagelist .error")).to_contain_text("2026-300: not done.")
    expect(page.locator(".messagelist .error")).to_contain_text("Correct and send again")
    assert Invoice.objects.get(number="2026-300").sync_state == SyncState.FAILED
    shot(page, "upload-failed.png")

    page.get_by_role("link", name="Correct and send again").click()
    expect(page).to_have_url(re.compile(r"/correct/$"))
    expect(field(page, "Invoice number")).to_have_value("2026-300")
    expect(field(page, "Amount")).to_have_value("12.95")
    expect(page.locator(".last-error")).not_to_be_empty()
    field(page, "Customer").select_option(label=str(known))
    field(page, "Amount").fill("13.95")
    assert_styled(page)
    shot(page, "upload-correct-form.png")
    page.get_by_role("button", name="Save and send to MijnKlantportaal").click()

    expect(page.locator(".messagelist .success")).to_contain_text("2026-300: confirmed by MijnKlantportaal.")
    expect(page.locator(".correct-link")).to_have_count(0)
    expect(page.locator(".discard-link")).to_have_count(0)
    shot(page, "upload-corrected-and-sent.png")

    invoice = Invoice.objects.get(number="2026-300")
    assert invoice.sync_state == SyncState.SYNCED
    assert invoice.events.filter(kind=InvoiceEvent.Kind.CORRECTED, actor=staff).exists()
    (remote,) = remote_state(sandbox, "mkp")
    assert remote["id"] == invoice.remote_id
    assert remote["amount"] == "13.95"
    assert remote["customerId"] == known.remote_id

"""What each role sees and can do, in a real browser: a viewer has no payment controls, a clerk
refreshes an invoice and opens its PDF from the invoice page."""

import re

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from invoices.models import Invoice, InvoiceStatus, Provider
from invoices.roles import CLERK, VIEWER
from invoices.sync import MODE_FULL, sync_provider
from tests.e2e.conftest import PASSWORD
from tests.e2e.test_admin_flows import GO, assert_styled, log_in, open_invoice_list
from tests.invoices.helpers import seed

pytestmark = pytest.mark.e2e


def member(django_user_model, username: str, role: str):
    user = django_user_model.objects.create_user(username=username, password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def mirrored(sandbox):
    seed(sandbox, invoices=10, customers=2)
    assert sync_provider(provider=Provider.MKP, mode=MODE_FULL).status == "succeeded"
    return Invoice.objects.filter(provider=Provider.MKP, status=InvoiceStatus.OPEN).order_by("pk").first()


def open_invoice(page, invoice: Invoice) -> None:
    open_invoice_list(page)
    page.locator("#searchbar").fill(invoice.number)
    page.get_by_role("button", name="Search").click()
    page.locator("#result_list").get_by_role("link", name=invoice.number, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/admin/invoices/invoice/{invoice.pk}/change/\?"))


def test_a_viewer_sees_no_payment_controls(page, django_user_model, mirrored, shot):
    viewer = member(django_user_model, "victor", VIEWER)
    log_in(page, viewer)
    expect(page.get_by_role("link", name="Periodic tasks")).to_have_count(0)
    open_invoice_list(page)
    actions = page.locator("select[name=action] option")
    expect(actions.filter(has_text="Export selected as CSV")).to_have_count(1)
    expect(actions.filter(has_text=GO)).to_have_count(0)
    expect(page.get_by_role("link", name="Add invoice")).to_have_count(0)
    shot(page, "viewer-list.png")
    open_invoice(page, mirrored)
    expect(page.get_by_role("link", name="Open PDF", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Mark as paid")).to_have_count(0)
    expect(page.get_by_role("button", name="Refresh from provider")).to_have_count(0)
    assert_styled(page)
    shot(page, "viewer-invoice.png")


def test_a_clerk_refreshes_an_invoice_and_opens_its_pdf(page, django_user_model, mirrored, shot):
    clerk = member(django_user_model, "clara", CLERK)
    log_in(page, clerk)
    open_invoice(page, mirrored)
    expect(page.get_by_role("link", name="Mark as paid")).to_be_visible()

    page.get_by_role("button", name="Refresh from provider").click()
    expect(page.locator(".messagelist li")).to_have_text(
        f"Invoice {mirrored.number} refreshed from MijnKlantportaal."
    )
    shot(page, "clerk-refreshed.png")

    with (
        page.context.expect_event(
            "response", predicate=lambda r: r.url.endswith(f"/invoice/{mirrored.pk}/pdf/")
        ) as opened,
        page.expect_popup() as popup,
    ):
        page.get_by_role("link", name="Open PDF", exact=True).click()
    response = opened.value
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == f'inline; filename="{mirrored.number}.pdf"'
    expect(popup.value).to_have_url(response.url)  # in a tab of its own, the invoice page stays
    # The same address with the clerk's session gives the file itself.
    assert page.request.get(response.url).body().startswith(b"%PDF-")
    mirrored.refresh_from_db()
    assert mirrored.pdf.read().startswith(b"%PDF-")

"""What staff read when a provider, or our own budget for it, says wait."""

from integrations import errors
from invoices.messages import invoice_name, provider_error_message
from invoices.models import Invoice


def test_a_wait_for_our_own_budget_is_not_blamed_on_the_provider():
    ours = errors.ProviderRateLimited("budget spent", retry_after=12.4, provider="mkp")
    assert provider_error_message(ours) == (
        "The requests MijnKlantportaal allows us are used up for the moment; it goes on in 12 seconds."
    )


def test_a_429_of_the_provider_says_the_provider_asks():
    theirs = errors.ProviderRateLimited(
        "Too Many Attempts.", retry_after=3, provider="qonto", status_code=429
    )
    assert provider_error_message(theirs) == "Qonto asks us to slow down; try again in 3 seconds."


def test_a_refused_key_names_the_setting_to_check():
    mkp = errors.ProviderUnauthorized("Unauthenticated.", provider="mkp", status_code=401)
    assert provider_error_message(mkp) == (
        "MijnKlantportaal refused our API key. Ask an administrator to check MKP_API_KEY."
    )
    qonto = errors.ProviderUnauthorized("Unauthorized", provider="qonto", status_code=401)
    assert "Ask an administrator to check QONTO_LOGIN and QONTO_SECRET_KEY" in provider_error_message(qonto)
    assert "Unauthorized" not in provider_error_message(qonto)


def test_an_invoice_is_named_by_its_number_else_its_file():
    assert invoice_name(Invoice(pk=601, number="2026-0042", remote_id="inv_1")) == "Invoice 2026-0042"
    assert invoice_name(Invoice(pk=601, pdf_name="scan.pdf")) == "The invoice in scan.pdf"
    assert invoice_name(Invoice(pk=601, remote_id="qi-9")) == "Invoice qi-9"

"""What staff read when a provider, or our own budget for it, says wait."""

from integrations import errors
from invoices.messages import provider_error_message


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

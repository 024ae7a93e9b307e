"""Plain-language sentences for staff, from the typed provider errors."""

from __future__ import annotations

from integrations import errors
from invoices.lookup import LookupUnfinished

PROVIDER_NAMES = {"mkp": "MijnKlantportaal", "qonto": "Qonto"}
# What an administrator checks when a provider refuses our credentials.
CREDENTIALS = {
    "mkp": "refused our API key. Ask an administrator to check MKP_API_KEY.",
    "qonto": "refused our credentials. Ask an administrator to check QONTO_LOGIN and QONTO_SECRET_KEY "
    "(or the QONTO_ OAuth settings).",
}


def invoice_name(invoice) -> str:
    """How a sentence names an invoice: by its number, else by its file, else by its id at the
    provider ("Invoice 2026-0042", "The invoice in scan.pdf")."""
    if invoice.number:
        return f"Invoice {invoice.number}"
    if invoice.pdf_display_name:
        return f"The invoice in {invoice.pdf_display_name}"
    return f"Invoice {invoice.remote_id}" if invoice.remote_id else f"Invoice {invoice.pk} (no number yet)"


def provider_error_message(exc: errors.ProviderError) -> str:
    name = PROVIDER_NAMES.get(exc.provider, "The provider")
    if isinstance(exc, errors.ProviderUnauthorized):
        return f"{name} {CREDENTIALS.get(exc.provider, 'refused our credentials. Ask an administrator to check them.')}"
    if isinstance(exc, errors.ProviderLicenseLimit):
        return f"{name}: the monthly invoice limit of your licence is reached. ({exc})"
    if isinstance(exc, errors.ProviderValidationError):
        return f"{name} refused the data: {exc}"
    if isinstance(exc, errors.ProviderNotFound):
        return f"{name} does not know this invoice (any more)."
    if isinstance(exc, errors.ProviderRateLimited):
        wait = f"{round(exc.retry_after)} seconds"
        if exc.status_code is None:  # our own shared limiter, keeping under the provider's limit
            return f"The requests {name} allows us are used up for the moment; it goes on in {wait}."
        return f"{name} asks us to slow down; try again in {wait}."
    if isinstance(exc, errors.ProviderConfigurationError):
        return f"{name} is not set up correctly: {exc}"
    if isinstance(exc, errors.RateLimiterUnavailable):
        return f"{exc} Tell an administrator if this lasts."
    if isinstance(exc, LookupUnfinished):
        return str(exc)
    if exc.retryable:
        return f"{name} could not be reached or failed ({exc}). Try again in a moment."
    return f"{name}: {exc}"

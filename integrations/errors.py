"""Typed errors raised by every provider client.

Each error carries a plain-language ``message`` that is safe to show to staff (it never contains
credentials), the HTTP status when there was one, and the provider's own trace id if it sent one.
"""

from __future__ import annotations


class ProviderError(Exception):
    """Base class. ``retryable`` tells the task layer whether trying again later can help."""

    retryable = False
    #: True when the request may have reached the provider, so a write may have happened.
    outcome_unknown = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status_code: int | None = None,
        trace_id: str = "",
        details: list | dict | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.trace_id = trace_id
        self.details = details

    def __str__(self) -> str:
        text = self.message
        if self.trace_id:
            text = f"{text} (trace id {self.trace_id})"
        return text


class ProviderConfigurationError(ProviderError):
    """Credentials missing, an answer that is not the API (an HTML login page), a client paused after
    a 401. Calling again without changing the configuration cannot help."""


class ProviderUnauthorized(ProviderError):
    """401 or 403: the key or token is wrong, expired or lacks a scope."""


class ProviderNotFound(ProviderError):
    """404: the object does not exist (any more) at the provider."""


class ProviderValidationError(ProviderError):
    """400 or 422: the provider refused the data. Never retried."""


class ProviderLicenseLimit(ProviderError):
    """426 at MijnKlantportaal: the monthly number of invoices of the licence is reached."""


class ProviderRateLimited(ProviderError):
    """429 from the provider, or our own shared limiter saying the budget is spent.

    ``retry_after`` is the number of seconds to wait before the next attempt."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = max(float(retry_after), 0.0)


class ProviderServerError(ProviderError):
    """5xx: the provider failed. A write may or may not have been applied."""

    retryable = True
    outcome_unknown = True


class ProviderTimeout(ProviderError):
    """No answer in time. A write may or may not have been applied."""

    retryable = True
    outcome_unknown = True


class ProviderConnectionError(ProviderError):
    """The connection failed or was reset."""

    retryable = True
    outcome_unknown = True


class ProviderBadResponse(ProviderError):
    """The provider answered with something that is not the documented JSON."""

    retryable = True
    outcome_unknown = True


class ProviderRecordError(ProviderBadResponse):
    """One record (an invoice, a customer) that the mirror cannot hold: a field unreadable, out of
    range or longer than its column. In a list it spoils only itself: the page's other records
    are used and this one is quarantined.

    ``field`` names the field (``invoiceNumber``, ``total_amount_cents``), ``value`` is what the
    provider sent there, ``remote_id`` the record's id as sent (a digest when it has no usable
    id) and ``raw`` the whole record."""

    def __init__(self, message: str, *, field: str, value: object, remote_id: str, raw: object, **kwargs):
        super().__init__(message, **kwargs)
        self.field = field
        self.value = value
        self.remote_id = remote_id
        self.raw = raw


class ProviderIncompleteAnswer(ProviderBadResponse):
    """A write's answer does not account for everything sent (a Qonto import that does not name
    every file): resolved like a lost answer. ``answered`` holds what it did account for."""

    def __init__(self, message: str, *, answered: list | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.answered = answered or []


class RateLimiterUnavailable(ProviderError):
    """Our own shared store (``RATE_LIMIT_URL``: request budgets, the 401 breaker) cannot be reached.
    Nothing was sent to the provider; trying again once the store is back helps."""

    retryable = True

    @classmethod
    def because(cls, cause: Exception) -> RateLimiterUnavailable:
        return cls(
            "Our shared rate-limit store (RATE_LIMIT_URL) cannot be reached "
            f"({type(cause).__name__}), so nothing was sent to the provider."
        )


class WebhookSignatureError(Exception):
    """A webhook delivery whose signature does not prove it came from the provider. Its
    ``message`` is safe to store and show: it never contains a secret."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WebhookSignatureMissing(WebhookSignatureError):
    """No signature header, or one that cannot be read."""


class WebhookSignatureMismatch(WebhookSignatureError):
    """A signature that none of our subscriptions' secrets produces."""


class WebhookSignatureExpired(WebhookSignatureError):
    """A signature whose timestamp is too far from now: possibly a replay."""

"""What a push that failed leaves on its rows: pending again with the time of the next attempt
(after the provider's ``Retry-After`` or a backoff), or failed with the reason in plain words; and
a run of retries as one history row with a count."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integrations import errors
from invoices import lookup
from invoices.messages import provider_error_message
from invoices.models import Invoice, InvoiceEvent, PendingAction, SyncState

if TYPE_CHECKING:
    from invoices.push import PushResult


def _web_page(exc: errors.ProviderError) -> bool:
    """A web page came back where API data was expected (a gateway, maintenance or login page). Our
    request reached something, so a write may have happened, and it may pass later: retried like a
    server error, and given up after the usual attempts if it never passes (a wrong base URL)."""
    return isinstance(exc, errors.ProviderConfigurationError) and exc.status_code is not None


def _may_have_written(exc: errors.ProviderError) -> bool:
    """Whether the change may have been made although the request failed. A 429 is a refusal:
    the provider did not apply the request (and our own limiter sent nothing)."""
    return exc.outcome_unknown or _web_page(exc)


def _delay(invoices: list[Invoice], exc: errors.ProviderError) -> float | None:
    """Seconds until the next attempt, or None when trying again cannot help."""
    if isinstance(exc, errors.ProviderRateLimited):
        return max(exc.retry_after, 1.0)
    if not (exc.retryable or _web_page(exc)):
        return None
    backoff = backoff_seconds(max(i.attempts for i in invoices), cap=settings.PUSH_BACKOFF_CAP_SECONDS)
    return max(getattr(exc, "retry_after", 0.0), backoff)


def handle_error(result: PushResult, invoices: list[Invoice], exc: errors.ProviderError) -> None:
    delay = _delay(invoices, exc)
    if delay is None:
        fail(result, invoices, exc)
        return
    if all(i.attempts >= settings.PUSH_MAX_ATTEMPTS for i in invoices) and not isinstance(
        exc, errors.ProviderRateLimited
    ):
        fail(result, invoices, exc, suffix=_gave_up(invoices[0], exc))
        return
    now = timezone.now()
    for invoice in invoices:
        values = {
            "sync_state": SyncState.PENDING,
            "next_attempt_at": now + timedelta(seconds=delay),
            "claimed_at": None,
            "last_error": provider_error_message(exc),
        }
        if isinstance(exc, errors.ProviderRateLimited):
            # Told to wait, not failed: the claim's attempt is given back, so waiting for the
            # budget neither lengthens the backoff nor brings the give-up closer.
            values["attempts"] = F("attempts") - 1
        if _may_have_written(exc) and invoice.pending_action == PendingAction.CREATE:
            values["outcome_unknown"] = True
        if not Invoice.objects.filter(pk=invoice.pk, sync_state=SyncState.SENDING).update(**values):
            continue  # absorbed meanwhile by the row of the create that made it
        _note_retry(invoice, f"{provider_error_message(exc)} Next attempt in {round(delay)} s.", now)
        result.retrying.append(invoice.pk)
    result.retry_in = delay if result.retry_in is None else min(result.retry_in, delay)


def _gave_up(invoice: Invoice, exc: errors.ProviderError) -> str:
    if isinstance(exc, lookup.LookupUnfinished):
        return (
            f" Gave up after {invoice.attempts} attempts: it may or may not be at MijnKlantportaal."
            " Check there; “Send again” goes on with the look-up."
        )
    return f" Gave up after {invoice.attempts} attempts."


def _note_retry(invoice: Invoice, message: str, now: datetime) -> None:
    """One history row for a run of retries: counted on the last row when that is a retry too."""
    last = invoice.events.order_by("-at", "-pk").first()
    if last is not None and last.kind == InvoiceEvent.Kind.PUSH_RETRY:
        InvoiceEvent.objects.filter(pk=last.pk).update(count=F("count") + 1, last_at=now, message=message)
        return
    InvoiceEvent.objects.create(
        invoice=invoice, kind=InvoiceEvent.Kind.PUSH_RETRY, message=message, last_at=now
    )


def fail(result: PushResult, invoices: list[Invoice], exc: errors.ProviderError, suffix: str = "") -> None:
    message = f"{provider_error_message(exc)}{suffix}"
    for invoice in invoices:
        if not Invoice.objects.filter(pk=invoice.pk, sync_state=SyncState.SENDING).update(
            sync_state=SyncState.FAILED, claimed_at=None, next_attempt_at=None, last_error=message
        ):
            continue  # absorbed meanwhile by the row of the create that made it
        InvoiceEvent.objects.create(invoice=invoice, kind=InvoiceEvent.Kind.PUSH_FAILED, message=message)
        result.failed[invoice.pk] = message


def gone(result: PushResult, invoices: list[Invoice], exc: errors.ProviderError) -> None:
    """The invoice was deleted at the provider before our change reached it: the change can never
    be made. Marked removed (never deleted), and failed with the reason; nothing stays pending, so
    the sync keeps mirroring the row should the provider list it again."""
    now = timezone.now()
    message = f"{provider_error_message(exc)} It was removed there, so it was not marked paid."
    for invoice in invoices:
        with transaction.atomic():
            if not Invoice.objects.filter(pk=invoice.pk, sync_state=SyncState.SENDING).update(
                sync_state=SyncState.FAILED,
                pending_action=PendingAction.NONE,
                claimed_at=None,
                next_attempt_at=None,
                last_error=message,
                removed_at=now,
            ):
                continue  # absorbed meanwhile by the row of the create that made it
            InvoiceEvent.objects.create(invoice=invoice, kind=InvoiceEvent.Kind.PUSH_FAILED, message=message)
            InvoiceEvent.objects.create(
                invoice=invoice,
                kind=InvoiceEvent.Kind.REMOVED_AT_PROVIDER,
                message="The provider answered 404: the invoice no longer exists there.",
            )
        result.failed[invoice.pk] = message


def backoff_seconds(attempt: int, *, cap: float, base: float = 5.0) -> float:
    """Exponential backoff with full jitter: 5 s, 10 s, 20 s ... at most ``cap`` seconds."""
    return random.uniform(base, min(cap, base * 2 ** max(attempt - 1, 0)))

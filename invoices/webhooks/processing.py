"""A verified delivery is a hint: the invoice or customer it names is read again from its provider
by id, through the shared request budget at staff priority, and the mirror takes the provider's
answer. Nothing in the body is taken on trust, so repeated and out-of-order deliveries all end at
the provider's current state.

Repeats are processed once: Qonto's by the event id; MijnKlantportaal's by an event id when the
body has one, else by the same body within ``WEBHOOK_DEDUPE_WINDOW_SECONDS`` when no other event
about the same object came in between (paid, charged back, paid again is three events). Copies of
one event are processed one after the other, whichever workers take them, so that a copy arriving
while the first is still being processed is recognised as a repeat.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from integrations import errors
from invoices.messages import provider_error_message
from invoices.models import Invoice, InvoiceEvent, InvoiceStatus, Provider, WebhookDelivery
from invoices.providers import client_for
from invoices.retries import backoff_seconds
from invoices.sync.mirror import upsert_customers
from invoices.sync.refresh import refresh_remote_invoice
from invoices.webhooks.events import INVOICE, MKP_CHARGEBACK, Event

logger = logging.getLogger(__name__)


def processed_copy(delivery: WebhookDelivery) -> WebhookDelivery | None:
    """A copy of the same event that was processed already (an original, not a repeat), whether it
    arrived before or after this one: two workers may take the copies in either order."""
    copies = WebhookDelivery.objects.filter(
        provider=delivery.provider, verified=True, processed_at__isnull=False, duplicate_of=None
    ).exclude(pk=delivery.pk)
    if delivery.event_id:
        return copies.filter(event_id=delivery.event_id).order_by("-received_at", "-pk").first()
    if delivery.provider != Provider.MKP or not delivery.body_sha256:
        return None
    window = timedelta(seconds=settings.WEBHOOK_DEDUPE_WINDOW_SECONDS)
    received = delivery.received_at
    candidates = copies.filter(
        event_id="",
        body_sha256=delivery.body_sha256,
        received_at__range=(received - window, received + window),
    )
    copy = min(candidates, key=lambda c: abs(c.received_at - received), default=None)
    if copy is None:
        return None
    # The same body after another event about the object (paid, charged back, paid again) is new.
    low, high = sorted((copy.received_at, received))
    another_event_between = (
        WebhookDelivery.objects.filter(
            provider=delivery.provider,
            verified=True,
            object_id=delivery.object_id,
            received_at__gt=low,
            received_at__lt=high,
        )
        .exclude(body_sha256=delivery.body_sha256)
        .exists()
    )
    return None if another_event_between else copy


def _event_key(delivery: WebhookDelivery) -> str:
    """What the copies of one event share: Qonto's event id, else (MijnKlantportaal) the body."""
    return f"webhook:{delivery.provider}:{delivery.event_id or delivery.body_sha256}"


@contextlib.contextmanager
def one_copy_at_a_time(delivery: WebhookDelivery) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock on the event while one copy of it is processed: a second
    copy waits for the first to finish and then finds it processed. The lock belongs to the
    database session, so a worker that dies lets go of it. Without PostgreSQL (SQLite, one
    process) there is nothing to hold."""
    if connection.vendor != "postgresql":
        yield
        return
    digest = hashlib.sha256(_event_key(delivery).encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        yield
    finally:
        # A lost connection has released the lock already.
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def _refresh_invoice(delivery: WebhookDelivery, client) -> str:
    provider, remote_id = delivery.provider, delivery.object_id
    before = Invoice.objects.filter(provider=provider, remote_id=remote_id).first()
    result = refresh_remote_invoice(provider=provider, remote_id=remote_id, client=client)
    if result == "unknown":
        return f"Invoice {remote_id} does not exist at the provider (any more): nothing to do."
    if result == "removed":
        return f"Invoice {remote_id} no longer exists at the provider: marked removed."
    after = Invoice.objects.get(provider=provider, remote_id=remote_id)
    if before is None:
        return f"Invoice {remote_id} read from the provider and added."
    if delivery.event_type == MKP_CHARGEBACK:
        if before.status == InvoiceStatus.PAID and after.status != InvoiceStatus.PAID:
            InvoiceEvent.objects.create(
                invoice=after,
                kind=InvoiceEvent.Kind.CHARGED_BACK,
                message="Charged back at the provider: the payment was reversed and the invoice is open again.",
            )
            return f"Invoice {remote_id} charged back at the provider: open again."
        return f"Invoice {remote_id} read again; the provider does not show it charged back: kept as it says."
    return f"Invoice {remote_id} read again from the provider."


def _refresh_customer(delivery: WebhookDelivery, client) -> str:
    remote_id = delivery.object_id
    try:
        remote = (client.get_client if delivery.provider == Provider.QONTO else client.get_customer)(
            remote_id
        )
    except errors.ProviderNotFound:
        return f"Customer {remote_id} does not exist at the provider (any more): nothing to change."
    upsert_customers(provider=delivery.provider, remotes=[remote])
    return f"Customer {remote_id} read again from the provider."


def _finish(delivery: WebhookDelivery, *, outcome: str, duplicate_of: WebhookDelivery | None = None) -> None:
    delivery.processed_at = timezone.now()
    delivery.outcome = outcome[:255]
    delivery.error = ""
    delivery.duplicate_of = duplicate_of
    delivery.save(update_fields=["processed_at", "outcome", "error", "duplicate_of"])


def webhook_delivery_process(*, delivery: WebhookDelivery, again: bool = False) -> float | None:
    """Process one delivery. Returns the seconds after which to try again (the request budget is
    spent, the provider failed in a way that may pass), or None when done or when trying again
    cannot help (the error is kept on the delivery). ``again``: staff asked to process it again,
    a repeat included."""
    if not delivery.verified:
        return None
    if again:
        return _process(delivery, again=True)
    with one_copy_at_a_time(delivery):
        delivery.refresh_from_db(fields=["processed_at"])
        return _process(delivery, again=False)


def _process(delivery: WebhookDelivery, *, again: bool) -> float | None:
    if delivery.processed_at is not None and not again:
        return None
    if not again and (original := processed_copy(delivery)) is not None:
        _finish(
            delivery,
            outcome=f"A repeat of delivery {original.pk}: not processed again.",
            duplicate_of=original,
        )
        return None
    event = Event(event_type=delivery.event_type, object_id=delivery.object_id)
    if not event.subject:
        _finish(
            delivery, outcome=f"Event type {delivery.event_type or '(none)'!r} is not used here: ignored."
        )
        return None
    if not delivery.object_id:
        _finish(delivery, outcome="The event names no invoice or customer: ignored.")
        return None
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=F("attempts") + 1)
    delivery.refresh_from_db(fields=["attempts"])
    # No transaction around the provider's answer: the mirror's writes are short transactions of
    # their own, made after the request.
    refresh = _refresh_invoice if event.subject == INVOICE else _refresh_customer
    try:
        outcome = refresh(delivery, client_for(delivery.provider))
    except errors.ProviderError as exc:
        return _failed(delivery, exc)
    _finish(delivery, outcome=outcome)
    return None


def _failed(delivery: WebhookDelivery, exc: errors.ProviderError) -> float | None:
    delivery.error = provider_error_message(exc)
    delivery.save(update_fields=["error"])
    if isinstance(exc, errors.ProviderRateLimited):
        return max(exc.retry_after, 1.0)
    if exc.retryable and delivery.attempts < settings.WEBHOOK_MAX_ATTEMPTS:
        return backoff_seconds(delivery.attempts, cap=settings.PUSH_BACKOFF_CAP_SECONDS)
    logger.warning("webhook delivery %s not processed: %s", delivery.pk, delivery.error)
    return None


def webhook_deliveries_process_again(*, delivery_ids: list[int]) -> tuple[int, int]:
    """Queue the verified ones of these deliveries to be processed again, repeats included.
    Returns (queued, skipped: those whose signature did not verify, never processed)."""
    from invoices.tasks import process_webhook_delivery

    chosen = WebhookDelivery.objects.filter(pk__in=delivery_ids)
    verified = list(chosen.filter(verified=True).values_list("pk", flat=True))
    for pk in verified:
        transaction.on_commit(lambda pk=pk: process_webhook_delivery.delay(pk, again=True))
    return len(verified), chosen.count() - len(verified)

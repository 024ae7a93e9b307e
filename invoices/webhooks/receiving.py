"""A delivery arrives: stored as received, its signature checked, its processing queued.

All of it is cheap (one query for the secrets, one HMAC per secret, one insert), so the answer
leaves well within Qonto's one second. Processing (a request to the provider) is the task's job.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import transaction

from integrations import errors
from integrations.webhooks import (
    MKP_SIGNATURE_HEADER,
    QONTO_SIGNATURE_HEADER,
    verify_mkp_signature,
    verify_qonto_signature,
)
from invoices.models import Provider, WebhookDelivery, WebhookSubscription
from invoices.webhooks.events import Event, describe
from invoices.webhooks.models import mask_secret

logger = logging.getLogger(__name__)

#: Never stored: credentials of whoever sent the request.
DROPPED_HEADERS = frozenset({"cookie", "authorization"})
#: Stored masked: MijnKlantportaal's header carries the record's secret itself.
MASKED_HEADERS = frozenset({MKP_SIGNATURE_HEADER.lower()})


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    kept = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in DROPPED_HEADERS:
            continue
        kept[name] = mask_secret(value) if lowered in MASKED_HEADERS else value
    return kept


def _verify(provider: str, headers: Mapping[str, str], body: bytes, event: Event) -> int:
    """The pk of the subscription whose secret signed the delivery, or a WebhookSignatureError."""
    subscriptions = WebhookSubscription.objects.filter(provider=provider)
    if provider == Provider.QONTO:
        named = subscriptions.filter(remote_id=event.subscription_id) if event.subscription_id else None
        if named is not None and named.exists():
            subscriptions = named
        secrets = dict(subscriptions.values_list("pk", "secret"))
        return verify_qonto_signature(header=headers.get(QONTO_SIGNATURE_HEADER), body=body, secrets=secrets)
    secrets = dict(subscriptions.values_list("pk", "secret"))
    return verify_mkp_signature(header=headers.get(MKP_SIGNATURE_HEADER), body=body, secrets=secrets)


@dataclass
class Receipt:
    delivery: WebhookDelivery
    #: False when the task could not be handed to the broker: the provider is asked to send again.
    queued: bool = True


def _queue(receipt: Receipt) -> None:
    from invoices.tasks import process_webhook_delivery

    try:
        process_webhook_delivery.delay(receipt.delivery.pk)
    except Exception as exc:  # whatever the broker raises, the delivery is kept
        logger.error("webhook delivery %s could not be queued: %r", receipt.delivery.pk, exc)
        receipt.queued = False
        WebhookDelivery.objects.filter(pk=receipt.delivery.pk).update(
            error=f"Could not be queued for processing ({type(exc).__name__}); the provider sends it again."
        )


def webhook_delivery_receive(*, provider: str, headers: Mapping[str, str], body: bytes) -> Receipt:
    """Store a delivery with the outcome of its signature check; a verified one is queued for
    processing once stored. One that does not verify is kept with the reason and never processed."""
    started = time.monotonic()
    event = describe(provider, body)
    subscription_id, error = None, ""
    try:
        subscription_id = _verify(provider, headers, body, event)
    except errors.WebhookSignatureError as exc:
        error = exc.message
    event_type = event.event_type
    if provider == Provider.MKP and subscription_id is not None:
        # Each MijnKlantportaal record has one type: the record whose secret came says which.
        types = WebhookSubscription.objects.filter(pk=subscription_id).values_list("event_types", flat=True)
        record_types = next(iter(types), [])
        if len(record_types) == 1:
            event_type = record_types[0]
    delivery = WebhookDelivery.objects.create(
        provider=provider,
        headers=stored_headers(headers),
        body=body,
        body_sha256=hashlib.sha256(body).hexdigest(),
        verified=subscription_id is not None,
        subscription_id=subscription_id,
        event_id=event.event_id,
        event_type=event_type[:64],
        object_id=event.object_id,
        error=error,
    )
    receipt = Receipt(delivery)
    if delivery.verified:
        transaction.on_commit(lambda: _queue(receipt))
    else:
        logger.warning("webhook delivery %s from %s refused: %s", delivery.pk, provider, error)
    logger.info(
        "webhook delivery %s from %s stored in %.0f ms (%s %s)",
        delivery.pk,
        provider,
        (time.monotonic() - started) * 1000,
        event_type or "no type",
        event.object_id or "no object",
    )
    return receipt

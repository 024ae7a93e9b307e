"""Deliveries as the providers send them, signed with the secrets of our subscriptions."""

import time

import orjson

from integrations.webhooks import qonto_signature
from invoices.models import Provider, WebhookSubscription

MKP_TYPES = (
    "invoice-created",
    "invoice-paid",
    "invoice-chargeback",
    "invoice-deleted",
    "customer-created",
    "customer-deleted",
)
QONTO_SECRET = "whsec_3f9a1c5e7b2d4f6a8c0e1b3d5f7a9c2e"


def mkp_secret(event_type: str) -> str:
    return f"secret-of-{event_type}-0123"


def subscribe_all() -> None:
    for number, event_type in enumerate(MKP_TYPES, start=1):
        WebhookSubscription.objects.create(
            provider=Provider.MKP,
            remote_id=f"wbh_{number:04d}",
            event_types=[event_type],
            callback_url="https://backoffice.example.com/webhooks/mkp/",
            secret=mkp_secret(event_type),
        )
    WebhookSubscription.objects.create(
        provider=Provider.QONTO,
        remote_id="sub-1",
        event_types=["v1/client-invoices", "v1/clients"],
        callback_url="https://backoffice.example.com/webhooks/qonto/",
        secret=QONTO_SECRET,
    )


def post_mkp(client, event_type: str, body: dict | bytes, *, secret: str | None = None):
    raw = body if isinstance(body, bytes) else orjson.dumps({"type": event_type, **body})
    return client.post(
        "/webhooks/mkp/",
        data=raw,
        content_type="application/json",
        headers={"X-Webhook-Signature": mkp_secret(event_type) if secret is None else secret},
    )


def qonto_body(event_id: str, object_id: str, *, kind: str = "v1/client-invoices", **data) -> bytes:
    return orjson.dumps(
        {
            "id": event_id,
            "subscription_id": "sub-1",
            "organization_id": "org",
            "type": kind,
            "created_at": "2026-12-07T10:00:00.000Z",
            "data": {"id": object_id, **data},
        }
    )


def post_qonto(client, body: bytes, *, secret: str = QONTO_SECRET, at: int | None = None, header=None):
    stamp = int(time.time()) if at is None else at
    signature = f"t={stamp},v1={qonto_signature(secret=secret, timestamp=stamp, body=body)}"
    return client.post(
        "/webhooks/qonto/",
        data=body,
        content_type="application/json",
        headers={"X-Qonto-Signature": signature if header is None else header},
    )

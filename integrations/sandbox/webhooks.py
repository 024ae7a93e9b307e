"""Webhooks the sandboxed providers send: who is subscribed, what a delivery looks like, and the
background thread that delivers them with retries and the webhook faults.

A change at the sandbox (an invoice created, paid, charged back, deleted; a customer created or
deleted) calls :meth:`WebhookHub.mkp_event` or :meth:`WebhookHub.qonto_event`, which only queues
one delivery per matching registration. One delivery thread posts them, oldest due first, never
inside the request that made the change.

MijnKlantportaal (the docs give neither body nor signature scheme; the sandbox's choice)::

    POST <record url>
    Content-Type: application/json
    X-Webhook-Signature: <the record's secret, as is>
    {"type": "invoice-paid", "data": {"id": "inv_..."}}

Qonto (qonto-notes §12)::

    POST <callback_url>
    X-Qonto-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>", key = the secret>
    {"id": "<event uuid>", "subscription_id", "organization_id", "membership_id",
     "type": "v1/client-invoices", "created_at": "2026-01-27T22:05:07.000Z", "data": {...}}

``v1/client-invoices`` is sent on created and updated (a payment, a chargeback and a cancellation
are updates; Qonto has no deleted event for invoices) with the invoice in ``data`` and no ``event``
field (none is visible in Qonto's example); ``v1/clients`` carries ``data.event``
(``created``/``updated``/``deleted``). ``data`` is the REST object without its ``*_cents`` fields.

Delivery: a 2xx answer within ``webhook_timeout_ms`` delivers; anything else (refused connection,
timeout, non-2xx) is tried again after ``webhook_retry_ms``, doubled each time, at most
``webhook_max_attempts`` attempts, then abandoned. Each attempt is signed anew (a fresh ``t``).
The queue lives in memory: deliveries still pending when the sandbox stops are lost.

Faults (``/_sandbox/config``): ``webhook_delay_ms`` holds every delivery that long;
``webhook_duplicate`` sends each event twice (same body, same event id); ``webhook_out_of_order``
holds every other event back until the next event for the same URL has gone out (or
``OUT_OF_ORDER_HOLD_SECONDS`` passed); ``webhook_bad_signature`` signs with a wrong secret.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import logging
import secrets
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import requests

from integrations.sandbox import times
from integrations.sandbox.config import SandboxConfig
from integrations.sandbox.store import Store

logger = logging.getLogger(__name__)

#: Every type MijnKlantportaal documents for a webhook record (one type per record).
MKP_EVENT_TYPES = (
    "appointment-created", "appointment-canceled", "customer-created", "customer-deleted",
    "offer-created", "offer-deleted", "offer-accepted", "offer-rejected", "invoice-created",
    "invoice-chargeback", "invoice-paid", "invoice-deleted", "payment-link-created",
    "payment-link-expired", "payment-link-paid", "ticket-created", "ticket-reply-customer",
    "ticket-reply-employee", "subscription-created", "subscription-updated", "subscription-deleted",
    "subscription-payment-created", "subscription-payment-updated",
)  # fmt: skip
#: The topics Qonto documents for a webhook subscription.
QONTO_TOPICS = (
    "v1/transactions", "v1/accounts", "v1/organizations", "v1/memberships",
    "v1/consent-revocations", "v1/cards", "v1/clients", "v1/client-invoices",
)  # fmt: skip
OUT_OF_ORDER_HOLD_SECONDS = 2.0
KEPT_DELIVERIES = 1_000


@dataclass(slots=True)
class MkpWebhook:
    id: str
    type: str
    url: str
    secret: str
    created_at: datetime


@dataclass(slots=True)
class QontoSubscription:
    id: str
    callback_url: str
    types: list[str]
    secret: str
    description: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class Delivery:
    id: int
    provider: str
    url: str
    event_type: str
    object_id: str
    body: bytes
    secret: str
    created_at: datetime
    event_id: str | None = None
    attempts: int = 0
    status: str = "pending"  # pending, delivered, abandoned
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "provider": self.provider,
            "url": self.url,
            "type": self.event_type,
            "event_id": self.event_id,
            "object_id": self.object_id,
            "attempts": self.attempts,
            "status": self.status,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "created_at": self.created_at.isoformat(),
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
        }


def qonto_signature(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Qonto-Signature`` value: ``t=<timestamp>,v1=<hex HMAC-SHA256("<t>.<body>")>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def webhook_data(rest_object: dict) -> dict:
    """A REST object as a webhook's ``data``: without the ``*_cents`` fields (lighter, as Qonto's)."""
    return {
        key: [webhook_data(v) if isinstance(v, dict) else v for v in value]
        if isinstance(value, list)
        else value
        for key, value in rest_object.items()
        if not key.endswith("_cents")
    }


class WebhookHub:
    def __init__(self, store: Store, config: SandboxConfig) -> None:
        self.store = store
        self.config = config
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, Delivery]] = []
        self._held: dict[str, tuple[float, Delivery]] = {}
        self._seq = itertools.count(1)
        self._log: deque[Delivery] = deque(maxlen=KEPT_DELIVERIES)
        self._counts: Counter = Counter()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # Lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def reset(self) -> None:
        """Forget the queue, the held event and the delivery log."""
        with self._cond:
            self._queue.clear()
            self._held.clear()
            self._log.clear()
            self._counts.clear()

    # Events --------------------------------------------------------------------------------------
    def mkp_event(self, event_type: str, object_id: str) -> int:
        """Queue ``{"type", "data": {"id"}}`` to every MKP record of this type; returns how many."""
        with self.store.lock:
            hooks = [h for h in self.store.data.mkp_webhooks.values() if h.type == event_type]
        body = orjson.dumps({"type": event_type, "data": {"id": object_id}})
        for hook in hooks:
            self._enqueue("mkp", hook.url, hook.secret, event_type, object_id, body, None)
        return len(hooks)

    def qonto_event(self, topic: str, data: dict) -> int:
        """Queue one event per Qonto subscription to ``topic``; returns how many."""
        with self.store.lock:
            subscriptions = [s for s in self.store.data.qonto_subscriptions.values() if topic in s.types]
        now = times.utcnow()
        for subscription in subscriptions:
            event_id = str(uuid.uuid4())
            body = orjson.dumps(
                {
                    "id": event_id,
                    "subscription_id": subscription.id,
                    "organization_id": self.config.organization_id,
                    "membership_id": self.config.membership_id,
                    "type": topic,
                    "created_at": utc_stamp(now),
                    "data": data,
                }
            )
            self._enqueue(
                "qonto", subscription.callback_url, subscription.secret, topic, data["id"], body, event_id
            )
        return len(subscriptions)

    def _enqueue(
        self, provider: str, url: str, secret: str, event_type: str, object_id: str, body: bytes, event_id
    ) -> None:
        copies = 2 if self.config.webhook_duplicate else 1
        with self._cond:
            due = time.monotonic() + self.config.webhook_delay_ms / 1000
            for _ in range(copies):
                delivery = Delivery(
                    id=next(self._seq),
                    provider=provider,
                    url=url,
                    event_type=event_type,
                    object_id=object_id,
                    body=body,
                    secret=secret,
                    created_at=times.utcnow(),
                    event_id=event_id,
                )
                self._log.append(delivery)
                self._counts["events"] += 1
                if not self.config.webhook_out_of_order:
                    self._push(due, delivery)
                    continue
                held = self._held.pop(url, None)
                if held is None:
                    self._held[url] = (due + OUT_OF_ORDER_HOLD_SECONDS, delivery)
                else:
                    self._push(due, delivery)
                    self._push(due, held[1])  # right after the later one
            self._cond.notify_all()

    def _push(self, due: float, delivery: Delivery) -> None:
        heapq.heappush(self._queue, (due, next(self._seq), delivery))

    # Delivering ----------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                delivery = self._next_due()
                if delivery is None:
                    return
            self._attempt(delivery)

    def _next_due(self) -> Delivery | None:
        """Wait for the next due delivery (called holding the condition); None once stopping."""
        while not self._stopping:
            now = time.monotonic()
            for url, (release_at, held) in list(self._held.items()):
                if release_at <= now:
                    del self._held[url]
                    self._push(now, held)
            if self._queue and self._queue[0][0] <= now:
                return heapq.heappop(self._queue)[2]
            wakes = [entry[0] for entry in self._queue[:1]] + [r for r, _ in self._held.values()]
            self._cond.wait(timeout=max(0.0, min(wakes) - now) if wakes else None)
        return None

    def _attempt(self, delivery: Delivery) -> None:
        secret = delivery.secret
        if self.config.webhook_bad_signature:
            secret = secrets.token_urlsafe(24)
        headers = {"Content-Type": "application/json", "User-Agent": "ProviderSandbox-Webhooks/1.0"}
        if delivery.provider == "mkp":
            headers["X-Webhook-Signature"] = secret
        else:
            headers["X-Qonto-Signature"] = qonto_signature(secret, delivery.body, int(time.time()))
        status, error = None, None
        try:
            response = requests.post(
                delivery.url,
                data=delivery.body,
                headers=headers,
                timeout=self.config.webhook_timeout_ms / 1000,
                allow_redirects=False,
            )
            status = response.status_code
            response.close()
        except requests.RequestException as exc:
            error = type(exc).__name__
        with self._cond:
            delivery.attempts += 1
            delivery.last_status, delivery.last_error = status, error
            self._counts["attempts"] += 1
            if status is not None and 200 <= status < 300:
                delivery.status, delivery.delivered_at = "delivered", times.utcnow()
                self._counts["delivered"] += 1
            elif delivery.attempts >= max(1, self.config.webhook_max_attempts):
                delivery.status = "abandoned"
                self._counts["abandoned"] += 1
                logger.info("sandbox webhook %s to %s abandoned", delivery.id, delivery.url)
            else:
                self._counts["failed_attempts"] += 1
                wait = self.config.webhook_retry_ms / 1000 * 2 ** (delivery.attempts - 1)
                self._push(time.monotonic() + wait, delivery)

    # Inspection ----------------------------------------------------------------------------------
    def to_json(self) -> dict:
        with self._cond:
            counts = {
                k: self._counts[k]
                for k in ("events", "attempts", "delivered", "failed_attempts", "abandoned")
            }
            counts["pending"] = sum(1 for d in self._log if d.status == "pending")
            return {"counts": counts, "deliveries": [d.to_json() for d in self._log]}

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued or held (for tests and scripts); False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                if not self._queue and not self._held and all(d.status != "pending" for d in self._log):
                    return True
            time.sleep(0.02)
        return False


def new_secret(length: int = 20) -> str:
    """A random alphanumeric string like MijnKlantportaal's ``OUJX2prdBbJxR77BZlGz``."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def utc_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

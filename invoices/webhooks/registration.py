"""The webhook subscriptions we hold at both providers: registered idempotently, refreshed from the
providers, deleted there.

Registering lists what the provider holds for our address, creates only the event types not yet
covered, and keeps each record's id and secret in a WebhookSubscription; running it again creates
nothing. MijnKlantportaal has one record per event type; Qonto one subscription for both of ours
(OAuth only: "Connect Qonto" first). A provider error becomes a ValidationError in plain words.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.urls import reverse

from integrations import errors
from invoices.messages import PROVIDER_NAMES, provider_error_message
from invoices.models import Provider, WebhookSubscription
from invoices.providers import client_for
from invoices.webhooks.events import MKP_CUSTOMER_TYPES, MKP_INVOICE_TYPES, QONTO_CLIENTS, QONTO_INVOICES

MKP_EVENT_TYPES = (*MKP_INVOICE_TYPES, *MKP_CUSTOMER_TYPES)
QONTO_EVENT_TYPES = (QONTO_INVOICES, QONTO_CLIENTS)
EVENT_TYPES = {Provider.MKP: MKP_EVENT_TYPES, Provider.QONTO: QONTO_EVENT_TYPES}
ENDPOINTS = {Provider.MKP: "webhook_mkp", Provider.QONTO: "webhook_qonto"}
LOOPBACK_NAMES = ("localhost",)


@dataclass
class Registration:
    provider: str
    url: str
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    #: Records found at the provider whose secret it did not show and we do not hold.
    without_secret: list[str] = field(default_factory=list)

    def summary(self) -> str:
        name = PROVIDER_NAMES[self.provider]
        parts = [f"{name} webhooks for {self.url}:"]
        parts.append(
            f"{len(self.created)} created" + (f" ({', '.join(self.created)})" if self.created else "")
        )
        parts.append(f"{len(self.kept)} already registered.")
        if self.without_secret:
            parts.append(
                "No secret is known for " + ", ".join(self.without_secret) + ": their deliveries are refused"
                f" until they are deleted at {name} (Delete at the provider) and registered again."
            )
        return " ".join(parts)


def default_url(provider: str) -> str:
    """WEBHOOK_BASE_URL (this site as the providers reach it) with the provider's endpoint."""
    base = settings.WEBHOOK_BASE_URL.strip().rstrip("/")
    return f"{base}{reverse(ENDPOINTS[provider])}" if base else ""


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _checked_url(url: str) -> str:
    url = (url or "").strip()
    if not url:
        raise ValidationError("Give the webhook address (or set WEBHOOK_BASE_URL).")
    try:
        URLValidator(schemes=["https", "http"])(url)
    except ValidationError as exc:
        raise ValidationError(f"{url!r} is not a web address.") from exc
    if len(url) > 512:
        raise ValidationError("The webhook address is longer than 512 characters.")
    parts = urlsplit(url)
    # The deliveries carry secrets (MijnKlantportaal's header is the secret itself): never in clear
    # over a network; plain http only to this machine.
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
        raise ValidationError(
            f"{url} must start with https:// (plain http:// only for 127.0.0.1 or localhost)."
        )
    return url


# What differs between the providers --------------------------------------------------------------
def _remote_records(provider: str, client) -> list:
    """Every record the provider lists for us. A record we cannot read might be one of ours: acting
    on the others as if it were absent could register twice or forget a secret, so it stops here."""
    pages = client.iter_webhooks() if provider == Provider.MKP else client.iter_webhook_subscriptions()
    records, unreadable = [], []
    for page in pages:
        records += page.items
        unreadable += page.problems
    if unreadable:
        raise ValidationError(
            f"{PROVIDER_NAMES[provider]} listed {len(unreadable)} webhook record(s) we cannot read "
            f"(record {unreadable[0].remote_id}, field {unreadable[0].field}); nothing was changed, here or there. Check them at "
            f"{PROVIDER_NAMES[provider]} and try again."
        )
    return records


def _create(provider: str, client, *, url: str, types: list[str]) -> list:
    if provider == Provider.MKP:
        return [client.create_webhook(url=url, event_type=event_type) for event_type in types]
    # Our own secret: known even if Qonto's answer should leave it out.
    secret = "whsec_" + secrets.token_urlsafe(48)
    return [client.create_webhook_subscription(url=url, types=types, secret=secret)]


def _delete_remote(provider: str, client, remote_id: str) -> None:
    if provider == Provider.MKP:
        client.delete_webhook(remote_id)
    else:
        client.delete_webhook_subscription(remote_id)


def _plain(exc: errors.ProviderError) -> ValidationError:
    if exc.provider == Provider.QONTO and isinstance(exc, errors.ProviderConfigurationError):
        return ValidationError(str(exc))  # "Connect Qonto first" and the like, as they are
    return ValidationError(provider_error_message(exc))


# The services --------------------------------------------------------------------------------------
def webhooks_register(*, provider: str, url: str = "", client=None) -> Registration:
    """Create what is missing of our event types for ``url`` and keep every record for it. What
    was created before a provider error is kept."""
    url = _checked_url(url or default_url(provider))
    client = client or client_for(provider)
    wanted = EVENT_TYPES[provider]
    result = Registration(provider=provider, url=url)
    try:
        existing = [
            record
            for record in _remote_records(provider, client)
            if record.url == url and set(record.event_types) & set(wanted)
        ]
        covered = {event_type for record in existing for event_type in record.event_types}
        result.kept = [event_type for event_type in wanted if event_type in covered]
        for record in existing:
            _keep(provider, record, result=result)
        missing = [event_type for event_type in wanted if event_type not in covered]
        if missing:
            for record in _create(provider, client, url=url, types=missing):
                _keep(provider, record, result=result)
            result.created = missing
    except errors.ProviderError as exc:
        raise _plain(exc) from exc
    return result


def _keep(provider: str, record, *, result: Registration | None = None) -> WebhookSubscription:
    values = {"event_types": list(record.event_types), "callback_url": record.url}
    if record.secret:
        values["secret"] = record.secret
    subscription, _ = WebhookSubscription.objects.update_or_create(
        provider=provider, remote_id=record.remote_id, defaults=values
    )
    if result is not None and not subscription.secret:
        result.without_secret.extend(record.event_types)
    return subscription


@dataclass
class Refresh:
    provider: str
    kept: int = 0
    added: int = 0
    removed: int = 0

    def summary(self) -> str:
        return (
            f"{PROVIDER_NAMES[self.provider]}: {self.kept + self.added} subscription(s) at the provider "
            f"({self.added} new here), {self.removed} no longer there removed here."
        )


def webhooks_refresh(*, provider: str, client=None) -> Refresh:
    """Make our rows what the provider holds: every record it lists (secrets we hold are kept; the
    providers never list them), and none it no longer has."""
    client = client or client_for(provider)
    try:
        records = _remote_records(provider, client)
    except errors.ProviderError as exc:
        raise _plain(exc) from exc
    result = Refresh(provider=provider)
    with transaction.atomic():
        known = set(WebhookSubscription.objects.filter(provider=provider).values_list("remote_id", flat=True))
        for record in records:
            _keep(provider, record)
            if record.remote_id in known:
                result.kept += 1
            else:
                result.added += 1
        result.removed, _ = (
            WebhookSubscription.objects.filter(provider=provider)
            .exclude(remote_id__in=[record.remote_id for record in records])
            .delete()
        )
    return result


def webhooks_delete(*, subscription: WebhookSubscription, client=None) -> None:
    """Delete the subscription at its provider, then here (also when the provider no longer had it)."""
    client = client or client_for(subscription.provider)
    try:
        _delete_remote(subscription.provider, client, subscription.remote_id)
    except errors.ProviderNotFound:
        pass
    except errors.ProviderError as exc:
        raise _plain(exc) from exc
    subscription.delete()

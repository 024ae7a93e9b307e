"""MijnKlantportaal's webhook records, registered idempotently: the records already at
MijnKlantportaal are listed, the missing event types created, and each record's id and secret kept
in a WebhookSubscription. Running it again creates nothing new."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.urls import reverse

from integrations import errors
from invoices.messages import provider_error_message
from invoices.models import Provider, WebhookSubscription
from invoices.providers import client_for
from invoices.webhooks.events import MKP_CUSTOMER_TYPES, MKP_INVOICE_TYPES

MKP_EVENT_TYPES = (*MKP_INVOICE_TYPES, *MKP_CUSTOMER_TYPES)


@dataclass
class Registration:
    url: str
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    #: Records found at MijnKlantportaal whose secret it did not show and we do not hold.
    without_secret: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"MijnKlantportaal webhooks for {self.url}:"]
        parts.append(
            f"{len(self.created)} created" + (f" ({', '.join(self.created)})" if self.created else "")
        )
        parts.append(f"{len(self.kept)} already registered.")
        if self.without_secret:
            parts.append(
                "No secret is known for " + ", ".join(self.without_secret) + ": their deliveries are refused"
                " until those records are deleted at MijnKlantportaal and registered again."
            )
        return " ".join(parts)


def default_mkp_url() -> str:
    """WEBHOOK_BASE_URL (this site as the providers reach it) with the MijnKlantportaal endpoint."""
    base = settings.WEBHOOK_BASE_URL.strip().rstrip("/")
    return f"{base}{reverse('webhook_mkp')}" if base else ""


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
    return url


def webhooks_register_mkp(*, url: str = "", client=None) -> Registration:
    """Create the missing records of the six event types for ``url`` and keep them all. A provider
    error becomes a ValidationError in plain words; what was created before it is kept."""
    url = _checked_url(url or default_mkp_url())
    client = client or client_for(Provider.MKP)
    result = Registration(url=url)
    try:
        existing = {
            record.event_type: record
            for page in client.iter_webhooks()
            for record in page.items
            if record.url == url and record.event_type in MKP_EVENT_TYPES
        }
        for event_type in MKP_EVENT_TYPES:
            record = existing.get(event_type)
            if record is None:
                record = client.create_webhook(url=url, event_type=event_type)
                result.created.append(event_type)
            else:
                result.kept.append(event_type)
            _keep(record, url=url, result=result)
    except errors.ProviderError as exc:
        raise ValidationError(provider_error_message(exc)) from exc
    return result


def _keep(record, *, url: str, result: Registration) -> None:
    values = {"event_types": [record.event_type], "callback_url": url}
    if record.secret:
        values["secret"] = record.secret
    subscription, _ = WebhookSubscription.objects.update_or_create(
        provider=Provider.MKP, remote_id=record.remote_id, defaults=values
    )
    if not subscription.secret:
        result.without_secret.append(record.event_type)

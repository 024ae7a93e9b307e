"""Webhook subscriptions we hold at the providers, and every delivery they sent us, stored raw.

Imported by ``invoices.models``: the models belong to the ``invoices`` app."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from invoices.models.mirror import Provider


class WebhookSubscription(models.Model):
    """One subscription at a provider: a MijnKlantportaal webhook record (one event type each), or a
    Qonto webhook subscription (one or more types). Its secret checks the deliveries' signatures; it
    stays on the server and is only ever shown masked."""

    provider = models.CharField(max_length=16, choices=Provider.choices)
    remote_id = models.CharField(max_length=64, help_text="The provider's id of the record or subscription.")
    event_types = models.JSONField(default=list, blank=True)
    callback_url = models.CharField(max_length=512)
    secret = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "remote_id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "remote_id"], name="webhooksubscription_unique"),
        ]
        permissions = [
            ("manage_webhooks", "Can register and delete webhook subscriptions"),
            # Connecting replaces the Qonto tokens every sync and push uses: a right of its own.
            ("connect_qonto", "Can connect the Qonto account (OAuth)"),
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {', '.join(self.event_types) or self.remote_id}"

    @property
    def masked_secret(self) -> str:
        """Enough to tell two secrets apart, never enough to use one."""
        return mask_secret(self.secret)


def mask_secret(secret: str) -> str:
    if not secret:
        return ""
    if len(secret) < 12:
        return "•" * 8
    return "•" * 8 + secret[-4:]


class WebhookDelivery(models.Model):
    """A request a provider sent to our webhook endpoint: stored before it is answered, as received
    (the body's bytes, the headers but Cookie and Authorization), then checked and processed."""

    provider = models.CharField(max_length=16, choices=Provider.choices)
    received_at = models.DateTimeField(default=timezone.now)
    headers = models.JSONField(default=dict, blank=True)
    body = models.BinaryField()
    body_sha256 = models.CharField(max_length=64, blank=True)
    verified = models.BooleanField(null=True, blank=True, help_text="Empty: not checked yet.")
    subscription = models.ForeignKey(WebhookSubscription, null=True, blank=True, on_delete=models.SET_NULL)
    event_id = models.CharField(max_length=255, blank=True)
    event_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True, help_text="The invoice or customer it names.")
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates"
    )
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=255, blank=True, help_text="What processing did.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        permissions = [("process_webhook_again", "Can process webhook deliveries again")]
        indexes = [
            models.Index(fields=["provider", "-received_at"], name="webhookdelivery_latest"),
            models.Index(fields=["verified", "-received_at"], name="webhookdelivery_verified"),
            models.Index(fields=["processed_at"], name="webhookdelivery_processed"),
            models.Index(fields=["-received_at"], condition=~Q(error=""), name="webhookdelivery_failed"),
            # The dedupe look-ups: an event id, or (MijnKlantportaal without one) the body's hash.
            models.Index(fields=["provider", "event_id"], name="webhookdelivery_event"),
            models.Index(fields=["provider", "body_sha256", "received_at"], name="webhookdelivery_body"),
        ]

    def __str__(self) -> str:
        what = self.event_type or "delivery"
        return f"{self.get_provider_display()} {what} at {timezone.localtime(self.received_at):%Y-%m-%d %H:%M:%S}"

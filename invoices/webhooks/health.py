"""Are the providers' webhooks arriving? Reads for the dashboard's sync table and the admin's
warnings."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Max, Sum
from django.utils import timezone

from invoices.models import Provider, SyncRun, WebhookDelivery, WebhookSubscription

WHAT_TO_DO = {
    Provider.MKP: "Check the webhook records at MijnKlantportaal, register MijnKlantportaal webhooks again "
    "on Webhook subscriptions, and look for refused deliveries under Webhook deliveries.",
    Provider.QONTO: "Check the webhook subscription at Qonto, register Qonto webhooks again on Webhook "
    "subscriptions (Connect Qonto first if it asks), and look for refused deliveries under Webhook deliveries.",
}


def webhooks_last_verified() -> dict[str, datetime]:
    """When each provider's last delivery with a good signature came (one query for all)."""
    return {
        row["provider"]: row["last"]
        for row in WebhookDelivery.objects.filter(verified=True)
        .values("provider")
        .annotate(last=Max("received_at"))
        .order_by()
    }


def webhooks_silent_warnings() -> list[str]:
    """A warning per provider we hold subscriptions at whose last verified delivery (or, without
    any, its newest subscription) is older than WEBHOOK_SILENT_AFTER_MINUTES while the syncs that
    finished in that time still created or changed invoices: changes the webhooks should have told."""
    minutes = settings.WEBHOOK_SILENT_AFTER_MINUTES
    since = timezone.now() - timedelta(minutes=minutes)
    subscribed = {
        row["provider"]: row["newest"]
        for row in WebhookSubscription.objects.values("provider")
        .annotate(newest=Max("created_at"))
        .order_by()
    }
    if not subscribed:
        return []
    last_verified = webhooks_last_verified()
    changed = {
        row["provider"]: row["changed"]
        for row in SyncRun.objects.filter(provider__in=list(subscribed), finished_at__gte=since)
        .values("provider")
        .annotate(changed=Sum(F("created") + F("updated")))
        .order_by()
    }
    warnings = []
    for provider in Provider:
        if provider.value not in subscribed or not changed.get(provider.value):
            continue
        last = last_verified.get(provider.value)
        if (last or subscribed[provider.value]) >= since:
            continue
        heard = f"since {timezone.localtime(last):%Y-%m-%d %H:%M}" if last else "since they were registered"
        warnings.append(
            f"{provider.label}'s webhooks have gone silent: no verified delivery {heard}, yet the syncs of the "
            f"last {minutes} minutes found {changed[provider.value]} new or changed invoice(s), so changes show "
            f"only with the next sync. {WHAT_TO_DO[provider]}"
        )
    return warnings

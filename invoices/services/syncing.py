"""A sync run by hand (the sync runs page's "Sync now"): queued, as the schedule would."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from invoices.models import Provider
from invoices.providers import is_configured
from invoices.sync import MODES


def sync_request(*, provider: str, mode: str) -> None:
    """Queue a sync run of one provider now, as the schedule would."""
    from invoices.tasks import sync_provider

    if provider not in Provider.values or mode not in MODES:
        raise ValidationError("Choose a provider and a kind of sync.")
    if not is_configured(provider):
        raise ValidationError(f"{Provider(provider).label} has no credentials configured: nothing to sync.")
    transaction.on_commit(lambda: sync_provider.delay(provider, mode))

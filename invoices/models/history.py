"""The history of each invoice: what happened to it, and who did it."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from invoices.models.mirror import Invoice
from invoices.models.moments import moment


class InvoiceEvent(models.Model):
    """What happened to an invoice, and who did it."""

    class Kind(models.TextChoices):
        CREATED_LOCALLY = "created_locally", "Saved locally"
        CREATE_REQUESTED = "create_requested", "Create requested"
        CREATED_REMOTELY = "created_remotely", "Created at provider"
        PAYMENT_REQUESTED = "payment_requested", "Payment requested"
        MARKED_PAID = "marked_paid", "Marked paid at provider"
        CHANGED_BY_SYNC = "changed_by_sync", "Changed by sync"
        IMPORTED_BY_SYNC = "imported_by_sync", "Imported by sync"
        REMOVED_AT_PROVIDER = "removed", "Removed at provider"
        PUSH_FAILED = "push_failed", "Sending failed"
        PUSH_RETRY = "push_retry", "Will retry"
        REFRESHED = "refreshed", "Refreshed"
        CORRECTED = "corrected", "Corrected"
        DISCARDED = "discarded", "Discarded"
        CHARGED_BACK = "charged_back", "Charged back at the provider"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    message = models.TextField(blank=True)
    changes = models.JSONField(default=dict, blank=True)
    # The same event again (a retry after a retry) is counted on one row instead of a new row each time.
    count = models.PositiveIntegerField(default=1)
    last_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {moment(self.at)}"

"""The bulk actions staff started, and what became of each invoice in them."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from invoices.models.mirror import Invoice, PendingAction
from invoices.models.moments import moment


class ActionBatch(models.Model):
    """A bulk action staff started: which invoices, what was asked, and what was skipped why."""

    class Kind(models.TextChoices):
        CREATE = PendingAction.CREATE.value, PendingAction.CREATE.label
        MARK_PAID = PendingAction.MARK_PAID.value, PendingAction.MARK_PAID.label
        REFRESH = "refresh", "Refresh from provider"
        RETRY = "retry", "Retry failed changes"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    invoices = models.ManyToManyField(Invoice, through="ActionBatchItem", related_name="batches")

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "action batches"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.actor} at {moment(self.created_at)}"


class ActionBatchItem(models.Model):
    batch = models.ForeignKey(ActionBatch, on_delete=models.CASCADE, related_name="items")
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE)
    queued = models.BooleanField(default=False)
    note = models.CharField(max_length=255, blank=True)
    # Set by the batches whose outcome the invoice row does not hold (a refresh); the pushes of the
    # other batches say theirs on the invoice (in sync, or failed).
    finished_at = models.DateTimeField(null=True, blank=True)
    failed = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["batch", "invoice"], name="batchitem_unique")]

    def __str__(self) -> str:
        return f"{self.batch_id}:{self.invoice_id}"

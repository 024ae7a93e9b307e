"""Pulling from the providers: each sync run, the records it could not hold, and where a scan stands."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from invoices.models.mirror import Provider
from invoices.models.moments import moment


class SyncRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped (another run holds the lock)"
        ABANDONED = "abandoned", "Abandoned (its worker stopped)"

    provider = models.CharField(max_length=16, choices=Provider.choices)
    kind = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    pages = models.PositiveIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    quarantined = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    holder = models.CharField(max_length=100, blank=True, help_text="The worker holding the run's lease.")
    progress = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["provider", "status", "-started_at"], name="syncrun_latest")]
        permissions = [("run_sync", "Can start a sync by hand")]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.kind} {moment(self.started_at)}"


class SyncProblem(models.Model):
    """A record from a provider that the mirror cannot hold: kept aside, shown to staff, skipped.

    The rest of its page is written and the sync goes on; the next sync that reads the record in a
    form the mirror can hold resolves the problem."""

    class Kind(models.TextChoices):
        INVOICE = "invoice", "Invoice"
        CUSTOMER = "customer", "Customer"

    provider = models.CharField(max_length=16, choices=Provider.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # The record's id as the provider sent it, or a digest of the record when it has no usable id.
    remote_id = models.CharField(max_length=255)
    field = models.CharField(max_length=64, blank=True)
    value = models.TextField(blank=True)
    message = models.TextField()
    raw = models.JSONField(default=dict, blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    seen = models.PositiveIntegerField(default=1)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "kind", "remote_id"], name="syncproblem_unique"),
        ]
        indexes = [models.Index(fields=["resolved_at", "provider"], name="syncproblem_open")]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.kind} {self.remote_id}: {self.field}"


class SyncCursor(models.Model):
    """Where a provider's scan stands between runs (a timestamp, a page number)."""

    provider = models.CharField(max_length=16, choices=Provider.choices)
    name = models.CharField(max_length=64)
    value = models.CharField(max_length=255, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "name"], name="synccursor_unique")]

    def __str__(self) -> str:
        return f"{self.provider}:{self.name}={self.value}"

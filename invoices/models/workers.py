"""What every worker shares through the database: leases (locks) and the providers' rotating tokens."""

from __future__ import annotations

from django.db import models

from invoices.models.mirror import Provider


class Lease(models.Model):
    """A lock shared by every machine through the database: one holder until it expires."""

    name = models.CharField(max_length=100, primary_key=True)
    holder = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.name


class ProviderToken(models.Model):
    """OAuth tokens that rotate: kept in the database so every worker sees the newest."""

    provider = models.CharField(max_length=16, choices=Provider.choices, unique=True)
    data = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.provider} token"

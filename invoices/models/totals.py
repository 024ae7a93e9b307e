"""Figures computed off the request path for the dashboard."""

from __future__ import annotations

from django.db import models

from invoices.models.mirror import Provider


class MonthTotal(models.Model):
    """What was invoiced (by issue month) and paid (by payment month) per provider and currency: a
    snapshot of the last 13 months for the dashboard's chart, recomputed as a whole by
    ``invoices.services.month_totals`` off the request path and written nowhere else.

    Only invoices at the provider count (open or paid, not removed), as in the dashboard."""

    provider = models.CharField(max_length=16, choices=Provider.choices)
    currency = models.CharField(max_length=3)
    month = models.DateField(help_text="The first day of the month.")
    invoiced_count = models.PositiveIntegerField(default=0)
    invoiced_amount = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    # The part of the month's invoicing issued on or after recent_since (the days sales outstanding).
    recent_since = models.DateField()
    recent_count = models.PositiveIntegerField(default=0)
    recent_amount = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    paid_count = models.PositiveIntegerField(default=0)
    paid_amount = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "currency", "month"], name="monthtotal_unique")
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.currency} {self.month:%Y-%m}"

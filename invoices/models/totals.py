"""Figures computed off the request path for the dashboard."""

from __future__ import annotations

from django.db import models


class DashboardSnapshot(models.Model):
    """Every figure of the receivables dashboard as it was at ``computed_at``: one row, recomputed
    as a whole by ``invoices.services.dashboard_snapshot`` and written nowhere else.

    ``figures`` is the document of grouped counts and amounts (amounts as strings, read back as
    ``Decimal``); the dashboard reads it in one query, whatever the number of invoices."""

    computed_at = models.DateTimeField()
    figures = models.JSONField()

    def __str__(self) -> str:
        return f"Dashboard figures as of {self.computed_at:%Y-%m-%d %H:%M:%S}"

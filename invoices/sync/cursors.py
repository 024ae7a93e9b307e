"""Where a provider's scan stands between runs (a timestamp, a page number)."""

from __future__ import annotations

from datetime import datetime

from invoices.models import SyncCursor


def cursor(provider: str, name: str) -> SyncCursor:
    return SyncCursor.objects.get_or_create(provider=provider, name=name)[0]


def save_cursor(cursor: SyncCursor, value: str, *, started_at: datetime | None = None) -> None:
    cursor.value = value
    fields = ["value", "updated_at"]
    if started_at is not None:
        cursor.started_at = started_at
        fields.append("started_at")
    cursor.save(update_fields=fields)

"""Invoices a complete scan did not see: suspects, asked for by id; only a 404 removes one."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from integrations import errors
from invoices.models import Invoice, SyncState
from invoices.sync.budget import PageBudget
from invoices.sync.cursors import cursor as _cursor
from invoices.sync.cursors import save_cursor as _save_cursor
from invoices.sync.mirror import Scan
from invoices.sync.refresh import refresh_invoices


def verify_unseen(client, provider: str, budget: PageBudget | None = None, scan: Scan | None = None) -> int:
    """Ask the provider for each invoice the last complete scan did not see: a 404 marks it
    removed, an answer stores it. Returns the number removed.

    A full run passes its ``scan``: the unchanged invoices it saw are in it rather than stamped."""
    cursor = _cursor(provider, "unseen_before")
    if not cursor.value:
        return 0
    limit = budget.left if budget is not None else 10_000
    candidates = Invoice.objects.filter(
        provider=provider,
        remote_id__isnull=False,
        removed_at__isnull=True,
        last_seen_at__lt=datetime.fromisoformat(cursor.value),
    ).exclude(sync_state__in=[SyncState.PENDING, SyncState.SENDING])
    if scan is not None:
        candidates = scan.unseen(candidates)
    suspects = list(candidates.values_list("pk", flat=True)[: max(limit, 0)])
    if budget is not None:
        budget.left -= len(suspects)
    try:
        outcome = refresh_invoices(invoice_ids=suspects, client=client)
    except errors.ProviderRateLimited as exc:
        if budget is None:
            raise
        budget.spend_all(exc)
        outcome = None
    if outcome is not None and len(suspects) < limit and not outcome["failed"]:
        _save_cursor(cursor, "")
    elif scan is not None:
        # Later runs go on with the check without this scan: they need the sightings written.
        scan.stamp(now=timezone.now())
    return outcome["removed"] if outcome is not None else 0

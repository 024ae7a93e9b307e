"""Bulk actions recorded as one ``ActionBatch``: an item for each invoice chosen, queued or skipped
with the reason staff will read; the batch's page shows the progress. This module only keeps the
books; the service that calls it chooses the route (the bulk actions of the list queue their work,
a Qonto import sends its files in the request)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction

from invoices.models import ActionBatch, ActionBatchItem, Invoice


@dataclass
class BatchReport:
    batch: ActionBatch
    queued: list[Invoice] = field(default_factory=list)
    skipped: list[tuple[Invoice, str]] = field(default_factory=list)


def actionbatch_run(
    *, invoices: Iterable[Invoice], actor, kind: str, request: Callable[[Invoice], None]
) -> BatchReport:
    """Call ``request`` for each invoice in one transaction; a ``ValidationError`` skips the
    invoice with its message as the reason."""
    with transaction.atomic():
        report = BatchReport(ActionBatch.objects.create(kind=kind, actor=actor))
        items = []
        for invoice in invoices:
            try:
                request(invoice)
            except ValidationError as exc:
                reason = " ".join(exc.messages)
                report.skipped.append((invoice, reason))
                items.append(ActionBatchItem(batch=report.batch, invoice=invoice, note=reason[:255]))
                continue
            report.queued.append(invoice)
            items.append(ActionBatchItem(batch=report.batch, invoice=invoice, queued=True))
        ActionBatchItem.objects.bulk_create(items)
    return report

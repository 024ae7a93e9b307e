"""Reads for the admin: filters, warnings, batch results. The dashboard's figures are in
``invoices.dashboard``; what counts as outstanding, overdue and in which aging bucket is said here,
once, for the dashboard and the list's filters alike."""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from invoices.models import ActionBatch, InvoiceStatus, Provider, SyncRun, SyncState
from invoices.providers import is_configured


def outstanding_q() -> Q:
    """Owed by a customer: open, at the provider (a draft never sent is owed by nobody), not removed."""
    return Q(status=InvoiceStatus.OPEN, remote_id__isnull=False, removed_at__isnull=True)


def overdue_q(*, today: date | None = None) -> Q:
    return outstanding_q() & Q(due_date__lt=today or timezone.localdate())


# Aging of what is outstanding, by days past the due date: (key, label, first day, last day).
AGING_BUCKETS: list[tuple[str, str, int | None, int | None]] = [
    ("current", "Not yet due", None, 0),
    ("1-30", "1-30 days overdue", 1, 30),
    ("31-60", "31-60 days overdue", 31, 60),
    ("61-90", "61-90 days overdue", 61, 90),
    ("90+", "Over 90 days overdue", 91, None),
]


def aging_q(key: str, *, today: date | None = None) -> Q:
    """The outstanding invoices of one aging bucket; "current" includes those without a due date."""
    today = today or timezone.localdate()
    _, _, first, last = next(bucket for bucket in AGING_BUCKETS if bucket[0] == key)
    if first is None:
        days = Q(due_date__isnull=True) | Q(due_date__gte=today - timedelta(days=last))
    else:
        days = Q(due_date__lte=today - timedelta(days=first))
        if last is not None:
            days &= Q(due_date__gte=today - timedelta(days=last))
    return outstanding_q() & days


def admin_warnings() -> list[str]:
    """What staff must know before trusting the list: missing credentials, a sync that stalls."""
    warnings = []
    stale_after = timedelta(minutes=settings.SYNC_STALE_AFTER_MINUTES)
    for provider in Provider:
        if not is_configured(provider):
            warnings.append(
                f"{provider.label} has no credentials configured: nothing is synced or sent there."
            )
            continue
        last_ok = (
            SyncRun.objects.filter(provider=provider, status=SyncRun.Status.SUCCEEDED)
            .order_by("-finished_at")
            .values_list("finished_at", flat=True)
            .first()
        )
        last_failed = (
            SyncRun.objects.filter(provider=provider, status=SyncRun.Status.FAILED)
            .order_by("-started_at")
            .first()
        )
        if last_ok is None or last_ok < timezone.now() - stale_after:
            since = f"since {timezone.localtime(last_ok):%Y-%m-%d %H:%M}" if last_ok else "yet"
            reason = f" Last error: {last_failed.error}" if last_failed else ""
            warnings.append(f"{provider.label} has not synced successfully {since}.{reason}")
    return warnings


def batch_rows(batch: ActionBatch) -> list[dict]:
    """Per invoice of a bulk action: what happened so far, in words."""
    rows = []
    for item in batch.items.select_related("invoice__customer").order_by("invoice__number", "pk"):
        invoice = item.invoice
        if not item.queued:
            outcome, css = f"skipped: {item.note}", "skipped"
        elif invoice.sync_state == SyncState.FAILED:
            outcome, css = f"failed: {invoice.last_error}", "failed"
        elif invoice.sync_state == SyncState.SYNCED:
            outcome, css = ("paid" if invoice.status == InvoiceStatus.PAID else "done"), "done"
        elif invoice.last_error:
            outcome, css = f"waiting to retry: {invoice.last_error}", "pending"
        else:
            outcome, css = "in progress", "pending"
        rows.append({"invoice": invoice, "outcome": outcome, "css": css})
    return rows

"""Writes what a provider says into the local mirror: remote wins on mirrored fields, our
bookkeeping is left alone, unchanged rows are not rewritten. Works a page (or a group of pages)
at a time with a fixed number of queries: one set-based statement on PostgreSQL
(:mod:`invoices.pgmerge`), a handful of ORM queries elsewhere."""

from __future__ import annotations

import json
from array import array
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.utils import timezone

from integrations.types import RemoteCustomer, RemoteInvoice
from invoices.models import (
    MIRRORED_FIELDS,
    Customer,
    Invoice,
    InvoiceEvent,
    InvoiceStatus,
    PendingAction,
    SyncState,
)

KNOWN_STATUSES = set(InvoiceStatus.values)


def mirrored_row(remote: RemoteInvoice) -> tuple:
    """The values of :data:`MIRRORED_FIELDS`, in that order (a large page needs no dict a row)."""
    return (
        remote.number or "",
        remote.customer_remote_id or "",
        remote.customer_name or "",
        remote.issue_date,
        remote.due_date,
        remote.amount,
        remote.vat_amount,
        remote.currency or "EUR",
        remote.status if remote.status in KNOWN_STATUSES else InvoiceStatus.OPEN,
        remote.paid_at,
        remote.remote_created_at,
        remote.remote_updated_at,
        remote.payment_link or "",
        remote.attachment_id or "",
        remote.raw,
    )


def mirrored_values(remote: RemoteInvoice) -> dict:
    return dict(zip(MIRRORED_FIELDS, mirrored_row(remote), strict=True))


def changed_fields(invoice: Invoice, values: dict) -> dict:
    """Mirrored fields whose value differs, as {field: [old, new]} in JSON-safe text."""
    changes = {}
    for field, new in values.items():
        old = getattr(invoice, field)
        if old != new:
            changes[field] = None if field == "raw" else [_text(old), _text(new)]
    return changes


def describe_changes(old: dict, values: dict) -> dict:
    """{field: [old, new]} in JSON-safe text for the fields of ``old`` whose value differs."""
    return {f: [_text(v), _text(values[f])] for f, v in old.items() if v != values[f]}


def _text(value) -> str | None:
    return None if value is None else str(value)


def apply_remote(invoice: Invoice, remote: RemoteInvoice, *, now: datetime) -> dict:
    """Copy the provider's answer onto a row (in memory). Returns what changed."""
    values = mirrored_values(remote)
    changes = changed_fields(invoice, values)
    for field, value in values.items():
        setattr(invoice, field, value)
    invoice.remote_id = remote.remote_id
    invoice.removed_at = None
    invoice.last_synced_at = now
    invoice.last_seen_at = now
    return changes


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    quarantined: int = 0  # records the mirror cannot hold, kept as sync problems

    def add(self, other: Counts) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.skipped += other.skipped
        self.quarantined += other.quarantined


def upsert_customers(*, provider: str, remotes: list[RemoteCustomer]) -> Counts:
    counts = Counts()
    now = timezone.now()
    by_id = {r.remote_id: r for r in remotes}
    with transaction.atomic():
        existing = {
            c.remote_id: c for c in Customer.objects.filter(provider=provider, remote_id__in=list(by_id))
        }
        to_create, to_update = [], []
        for remote_id, remote in by_id.items():
            values = {
                "name": remote.name or "",
                "email": remote.email or "",
                "remote_created_at": remote.remote_created_at,
                "raw": remote.raw,
            }
            customer = existing.get(remote_id)
            if customer is None:
                to_create.append(
                    Customer(provider=provider, remote_id=remote_id, last_synced_at=now, **values)
                )
            elif any(getattr(customer, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(customer, k, v)
                customer.last_synced_at = now
                to_update.append(customer)
            else:
                counts.unchanged += 1
        Customer.objects.bulk_create(to_create, ignore_conflicts=True)
        Customer.objects.bulk_update(
            to_update, ["name", "email", "remote_created_at", "raw", "last_synced_at"]
        )
        counts.created, counts.updated = len(to_create), len(to_update)
    return counts


def link_orphan_invoices(provider: str) -> int:
    """Link invoices that arrived before their customer (or while the customer sync ran).

    The rows are locked in primary-key order and rows another transaction holds are skipped, so a
    customer run linking and an invoice run writing at the same time never deadlock; what is
    skipped is linked by the writer itself or by the next run."""
    known = Customer.objects.filter(provider=provider, remote_id=OuterRef("customer_remote_id"))
    with transaction.atomic():
        orphans = list(
            Invoice.objects.select_for_update(skip_locked=True)
            .filter(provider=provider, customer__isnull=True)
            .exclude(customer_remote_id="")
            .filter(Exists(known))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if not orphans:
            return 0
        return Invoice.objects.filter(pk__in=orphans).update(customer=Subquery(known.values("pk")[:1]))


class Scan:
    """The invoices one run's scan saw but did not write, by id, in memory (8 bytes a row).

    Passed to ``upsert_invoices``, it replaces the ``last_seen_at`` stamp of every unchanged row,
    so an unchanged pass writes nothing. For a check of unseen rows in the same run, :meth:`unseen`
    leaves out what the scan saw; to hand the sightings over to a later run, :meth:`stamp` writes
    them after all (one statement)."""

    def __init__(self) -> None:
        self.started_at = timezone.now()
        self.ids = array("q")

    def add(self, ids) -> None:
        self.ids.extend(ids)

    def unseen(self, invoices: QuerySet[Invoice]) -> QuerySet[Invoice]:
        """``invoices`` without the rows this scan saw."""
        return invoices.exclude(self._seen())

    def stamp(self, *, now: datetime) -> int:
        """Write ``last_seen_at`` on the rows this scan saw and that carry an older stamp."""
        return (
            Invoice.objects.filter(self._seen())
            .filter(Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=now))
            .update(last_seen_at=now)
        )

    def _seen(self) -> ExpressionWrapper:
        # One parameter however many rows the scan saw (an IN list would take one per row).
        column = f"{Invoice._meta.db_table}.{Invoice._meta.pk.column}"
        if connection.vendor == "postgresql":
            sql, value = f"{column} = ANY(%s::bigint[])", self.ids.tolist()
        else:
            sql = f"{column} IN (SELECT value FROM json_each(%s))"  # noqa: S608 - names from the model
            value = json.dumps(self.ids.tolist())
        return ExpressionWrapper(RawSQL(sql, (value,)), output_field=BooleanField())  # noqa: S611


def upsert_invoices(
    *, provider: str, remotes: list[RemoteInvoice], fetched_at: datetime, scan: Scan | None = None
) -> Counts:
    """Upsert one page. Rows with a change of ours in flight, or pushed after the page was fetched,
    keep their newer local state: the older remote copy must not undo them.

    Unchanged rows are not written, apart from their ``last_seen_at`` stamp; with a ``scan`` not
    even that: the scan keeps their ids. On PostgreSQL the page is one set-based statement
    (:mod:`invoices.pgmerge`); elsewhere the ORM does it in a fixed number of queries."""
    now = timezone.now()
    by_id = {r.remote_id: r for r in remotes}  # a remote id listed twice: its last copy wins
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            return _upsert_set_based(provider, by_id, fetched_at=fetched_at, now=now, scan=scan)
        return _upsert_with_orm(provider, by_id, fetched_at=fetched_at, now=now, scan=scan)


def _upsert_set_based(
    provider: str, by_id: dict[str, RemoteInvoice], *, fetched_at: datetime, now: datetime, scan: Scan | None
) -> Counts:
    from invoices.sync import pgmerge

    merged = pgmerge.merge_page(
        provider=provider,
        rows=[(remote_id, *mirrored_row(remote)) for remote_id, remote in by_id.items()],
        fetched_at=fetched_at,
        now=now,
        stamp_unchanged=scan is None,
    )
    if scan is not None:
        scan.add(merged.seen)
    InvoiceEvent.objects.bulk_create(
        [
            _event(
                invoice_id=row.invoice_id,
                adopted=row.kind == "adopted",
                was_removed=row.removed_at is not None,
                changes=describe_changes(row.old, mirrored_values(by_id[row.remote_id])),
                at=now,
            )
            for row in merged.written
        ]
    )
    return Counts(
        created=merged.created,
        updated=len(merged.written),
        unchanged=merged.unchanged,
        skipped=merged.skipped + merged.lost,
    )


def _upsert_with_orm(
    provider: str, by_id: dict[str, RemoteInvoice], *, fetched_at: datetime, now: datetime, scan: Scan | None
) -> Counts:
    existing = {
        inv.remote_id: inv
        for inv in Invoice.objects.select_for_update()
        .filter(provider=provider, remote_id__in=list(by_id))
        .order_by("pk")
    }
    customers = dict(
        Customer.objects.filter(
            provider=provider,
            remote_id__in={r.customer_remote_id for r in by_id.values() if r.customer_remote_id},
        ).values_list("remote_id", "pk")
    )
    adoptable = _adoptable_creates(provider, [r for rid, r in by_id.items() if rid not in existing])
    to_create, to_update, events, unchanged, skipped = [], [], [], [], []
    for remote_id, remote in by_id.items():
        invoice = existing.get(remote_id) or adoptable.pop(remote.number, None)
        if invoice is None:
            invoice = Invoice(provider=provider, sync_state=SyncState.SYNCED)
            apply_remote(invoice, remote, now=now)
            invoice.customer_id = customers.get(remote.customer_remote_id)
            to_create.append(invoice)
            continue
        adopted = not invoice.remote_id
        in_flight = invoice.pending_action and invoice.sync_state in (SyncState.PENDING, SyncState.SENDING)
        if not adopted and (in_flight or (invoice.pushed_at and invoice.pushed_at > fetched_at)):
            skipped.append(invoice.pk)
            continue
        was_removed = invoice.removed_at is not None
        changes = apply_remote(invoice, remote, now=now)
        invoice.customer_id = customers.get(remote.customer_remote_id, invoice.customer_id)
        if adopted:
            invoice.sync_state = SyncState.SYNCED
            invoice.pending_action = PendingAction.NONE
            invoice.outcome_unknown = False
            invoice.last_error = ""
        if changes or adopted or was_removed:
            to_update.append(invoice)
            changes = {k: v for k, v in changes.items() if v is not None}
            events.append(
                _event(invoice=invoice, adopted=adopted, was_removed=was_removed, changes=changes, at=now)
            )
        else:
            unchanged.append(invoice.pk)
    Invoice.objects.bulk_create(to_create, ignore_conflicts=True, batch_size=500)
    if to_update:
        Invoice.objects.bulk_update(
            to_update,
            [
                *MIRRORED_FIELDS,
                "remote_id",
                "customer",
                "removed_at",
                "last_synced_at",
                "last_seen_at",
                "sync_state",
                "pending_action",
                "outcome_unknown",
                "last_error",
            ],
            batch_size=500,
        )
    if scan is not None:
        scan.add(unchanged + skipped)
    elif unchanged:
        # A row still present at the provider stays visible to the removal check.
        Invoice.objects.filter(pk__in=unchanged).update(last_seen_at=now)
    InvoiceEvent.objects.bulk_create(events)
    return Counts(
        created=len(to_create), updated=len(to_update), unchanged=len(unchanged), skipped=len(skipped)
    )


def _event(*, adopted: bool, was_removed: bool, changes: dict, at: datetime, **invoice) -> InvoiceEvent:
    if adopted:
        kind, message = InvoiceEvent.Kind.CREATED_REMOTELY, "Found at the provider by sync."
    else:
        kind = InvoiceEvent.Kind.CHANGED_BY_SYNC
        message = "Listed by the provider again." if was_removed else ""
    return InvoiceEvent(**invoice, kind=kind, message=message, changes=changes, at=at)


def _adoptable_creates(provider: str, remotes: list[RemoteInvoice]) -> dict[str, Invoice]:
    """Local rows whose create may have reached the provider without us hearing back; the oldest
    row per number. Only rows no worker is sending right now: the sender records its own answer."""
    numbers = [r.number for r in remotes if r.number]
    if not numbers:
        return {}
    rows = (
        Invoice.objects.select_for_update()
        .filter(provider=provider, remote_id__isnull=True, number__in=numbers)
        .exclude(sync_state=SyncState.SENDING)
        .filter(
            Q(outcome_unknown=True) | Q(pending_action=PendingAction.CREATE, sync_state=SyncState.PENDING)
        )
        .order_by("pk")
    )
    adoptable: dict[str, Invoice] = {}
    for row in rows:
        adoptable.setdefault(row.number, row)
    return adoptable

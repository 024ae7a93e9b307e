"""Pushes what staff asked for (the outbox on the invoice rows) to the providers.

Claim the rows with a conditional UPDATE and commit, call the provider with no database lock
held, then record the answer in a short transaction. Whatever happens, the row says where it
stands: in sync, waiting for a retry (with the time), or failed with the provider's reason.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from integrations import errors
from integrations.types import PdfFile, RemoteInvoice
from invoices import lookup
from invoices.models import (
    MIRRORED_FIELDS,
    ActionBatchItem,
    Invoice,
    InvoiceEvent,
    PendingAction,
    Provider,
    SyncState,
)
from invoices.providers import client_for
from invoices.retries import fail, gone, handle_error
from invoices.services.dashboard_snapshot import dashboard_snapshot_queue
from invoices.sync.mirror import apply_remote

logger = logging.getLogger(__name__)

QONTO_BATCH = 5
CLAIM_STALE_AFTER = timedelta(minutes=10)


@dataclass
class PushResult:
    done: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    #: The rows that will be retried, and the seconds until the first of them is due.
    retrying: list[int] = field(default_factory=list)
    retry_in: float | None = None


@dataclass(frozen=True)
class Removed:
    """Our create reached the provider, but the invoice was deleted there before we read it back."""

    remote_id: str


def claim(invoice_ids: list[int]) -> list[Invoice]:
    """Take the rows that are due for sending; others (already sent, in another worker's hands,
    waiting for their retry time) are left alone."""
    now = timezone.now()
    due = Q(sync_state=SyncState.PENDING) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    stale = Q(sync_state=SyncState.SENDING, claimed_at__lt=now - CLAIM_STALE_AFTER)
    claimed = []
    for pk in invoice_ids:
        taken = (
            Invoice.objects.filter(pk=pk)
            .exclude(pending_action="")
            .filter(due | stale)
            .update(
                sync_state=SyncState.SENDING,
                claimed_at=now,
                attempts=F("attempts") + 1,
                # A claim taken over from a worker that never recorded its answer: that create
                # may have reached the provider, so look before sending it again.
                outcome_unknown=Case(
                    When(stale & Q(pending_action=PendingAction.CREATE), then=Value(True)),
                    default=F("outcome_unknown"),
                ),
            )
        )
        if taken:
            claimed.append(pk)
    return list(Invoice.objects.filter(pk__in=claimed).order_by("pk"))


def push_invoices(invoice_ids: list[int]) -> PushResult:
    result = PushResult()
    invoices = claim(invoice_ids)
    creates = [i for i in invoices if i.pending_action == PendingAction.CREATE]
    for invoice in invoices:
        if invoice.pending_action == PendingAction.MARK_PAID:
            _run(result, [invoice], _mark_paid)
    qonto = [i for i in creates if i.provider == Provider.QONTO and not i.remote_id]
    for start in range(0, len(qonto), QONTO_BATCH):
        _run(result, qonto[start : start + QONTO_BATCH], _create_qonto)
    for invoice in creates:
        if invoice.provider == Provider.MKP:
            _run(result, [invoice], _create_mkp)
    return result


def _run(result: PushResult, invoices: list[Invoice], send) -> None:
    try:
        answers = send(invoices)
    except errors.ProviderValidationError as exc:
        if len(invoices) > 1:
            # One bad file refuses the whole Qonto batch: send them one by one to find it.
            for invoice in invoices:
                _run(result, [invoice], send)
            return
        fail(result, invoices, exc)
        return
    except errors.ProviderNotFound as exc:
        if send is _mark_paid:
            gone(result, invoices, exc)
        else:
            handle_error(result, invoices, exc)
        return
    except errors.ProviderError as exc:
        handle_error(result, invoices, exc)
        return
    for invoice, remote in zip(invoices, answers, strict=True):
        if isinstance(remote, errors.ProviderError):  # this one alone failed
            handle_error(result, [invoice], remote)
            continue
        record = _record_removed if isinstance(remote, Removed) else _record_success
        try:
            record(invoice, remote)
        except IntegrityError:
            # A sync inserted a row for the same remote invoice in a transaction that committed
            # while ours waited on it: that row is visible now, and the second try absorbs it.
            record(invoice, remote)
        result.done.append(invoice.pk)


def _create_mkp(invoices: list[Invoice]) -> list[RemoteInvoice]:
    (invoice,) = invoices
    client = client_for(Provider.MKP)
    if invoice.outcome_unknown:
        found = lookup.find_lost_create(client, invoice)
        if found is not None:
            return [found]
        # Every page read, and it is not there: the create never went through.
        Invoice.objects.filter(pk=invoice.pk).update(outcome_unknown=False)
    lookup.forget(invoice)
    return [
        client.create_invoice(
            customer_id=invoice.customer.remote_id if invoice.customer else invoice.customer_remote_id,
            number=invoice.number,
            issued_at=invoice.issue_date,
            due_at=invoice.due_date,
            amount=invoice.amount,
            paid_at=invoice.requested_paid_at,
            send_notification=invoice.send_notification,
            pdf=_pdf(invoice),
        )
    ]


def _create_qonto(invoices: list[Invoice]) -> list[RemoteInvoice | Removed | errors.ProviderError]:
    client = client_for(Provider.QONTO)
    files = [_pdf(invoice) for invoice in invoices]
    key = hashlib.sha256("|".join(f"{i.pk}:{i.pdf_sha256}" for i in invoices).encode()).hexdigest()
    try:
        imported, incomplete = dict(client.import_invoices(files, idempotency_key=key)), None
    except errors.ProviderIncompleteAnswer as exc:
        # The files it named are imported; the others are retried like a lost answer, in a batch
        # of their own (so under another idempotency key, whose answer Qonto has not cached).
        imported, incomplete = dict(exc.answered), exc
    answers: list[RemoteInvoice | Removed | errors.ProviderError] = []
    for file in files:
        if file.name not in imported:
            answers.append(incomplete)
            continue
        try:
            answers.append(client.get_invoice(imported[file.name]))
        except errors.ProviderNotFound:
            # Qonto answered a repeated import with the invoice our earlier attempt made, and
            # someone deleted it since: it was created, and is gone. Never import it again.
            answers.append(Removed(imported[file.name]))
    return answers


def _mark_paid(invoices: list[Invoice]) -> list[RemoteInvoice]:
    (invoice,) = invoices
    client = client_for(invoice.provider)
    if invoice.provider == Provider.QONTO:
        return [client.mark_paid(invoice.remote_id, invoice.requested_paid_on)]
    return [client.mark_paid(invoice.remote_id, invoice.requested_paid_at)]


def _pdf(invoice: Invoice) -> PdfFile:
    with invoice.pdf.open("rb") as fh:
        content = fh.read()
    # Unique per batch, and stable across retries so Qonto's import stays idempotent.
    name = f"{invoice.pk}-{invoice.pdf_display_name}"
    return PdfFile(name=name, content=content)


def _record_success(invoice: Invoice, remote: RemoteInvoice) -> None:
    now = timezone.now()
    with transaction.atomic():
        twin = _lock_twin(invoice, remote.remote_id)
        row = Invoice.objects.select_for_update().filter(pk=invoice.pk).first()
        if row is None:
            return  # absorbed meanwhile by the row of the create that made it (see _absorb)
        action = row.pending_action
        if twin is not None:
            _absorb(row, twin)
        changes = apply_remote(row, remote, now=now)
        _settle(row, now)
        if twin is not None:
            _take_over_payment(row, twin, now)
        row.save()
        kind = (
            InvoiceEvent.Kind.MARKED_PAID
            if action == PendingAction.MARK_PAID
            else InvoiceEvent.Kind.CREATED_REMOTELY
        )
        InvoiceEvent.objects.create(
            invoice=row,
            kind=kind,
            actor=_requested_by(row, action),
            message=f"{row.get_provider_display()} confirmed ({remote.remote_id}).",
            changes={k: v for k, v in changes.items() if v is not None},
        )
        dashboard_snapshot_queue()  # a payment or a create confirmed: the dashboard follows on commit


def _requested_by(row: Invoice, action: str):
    """Who asked for what the provider just confirmed: the history names them, not the worker."""
    asked = (
        InvoiceEvent.Kind.PAYMENT_REQUESTED
        if action == PendingAction.MARK_PAID
        else InvoiceEvent.Kind.CREATE_REQUESTED
    )
    request = row.events.filter(kind=asked).order_by("-at", "-pk").first()
    return request.actor if request else row.created_by


def _record_removed(invoice: Invoice, removed: Removed) -> None:
    remote_id = removed.remote_id
    now = timezone.now()
    with transaction.atomic():
        twin = _lock_twin(invoice, remote_id)
        row = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if twin is not None:  # what the sync mirrored before the invoice went
            _absorb(row, twin)
            for name in MIRRORED_FIELDS:
                setattr(row, name, getattr(twin, name))
        row.remote_id = remote_id
        row.removed_at = now
        _settle(row, now)
        row.save()
        InvoiceEvent.objects.create(
            invoice=row,
            kind=InvoiceEvent.Kind.CREATED_REMOTELY,
            message=f"{row.get_provider_display()} confirmed ({remote_id}).",
        )
        InvoiceEvent.objects.create(
            invoice=row,
            kind=InvoiceEvent.Kind.REMOVED_AT_PROVIDER,
            message="Deleted at the provider before we read it back.",
        )
        dashboard_snapshot_queue()


def _settle(row: Invoice, now: datetime) -> None:
    """The provider confirmed: nothing of ours is waiting on this row any more."""
    row.sync_state = SyncState.SYNCED
    row.pending_action = PendingAction.NONE
    row.outcome_unknown = False
    row.lookup_next_page = None
    row.last_error = ""
    row.next_attempt_at = None
    row.claimed_at = None
    row.pushed_at = now


def _lock_twin(invoice: Invoice, remote_id: str) -> Invoice | None:
    """A sync may have mirrored the invoice our create made before our answer was recorded: the
    same invoice in a second row. Locked before our own row, the order a sync locks them in (rows
    by remote id, then creates to adopt), so the two never wait on each other."""
    return (
        Invoice.objects.select_for_update()
        .filter(provider=invoice.provider, remote_id=remote_id)
        .exclude(pk=invoice.pk)
        .first()
    )


def _absorb(row: Invoice, twin: Invoice) -> None:
    """The twin gives its history to our row and goes, with its copy of the PDF (our row has its
    own): no file is left on disk without a row."""
    InvoiceEvent.objects.filter(invoice=twin).update(invoice=row)
    ActionBatchItem.objects.filter(invoice=twin).exclude(batch__in=row.batches.all()).update(invoice=row)
    twin.delete()
    if twin.pdf and not row.pdf:
        row.pdf = twin.pdf.name  # saved with the row by the caller
    elif twin.pdf and twin.pdf.name != row.pdf.name:
        storage, name = twin.pdf.storage, twin.pdf.name
        transaction.on_commit(lambda: storage.delete(name))


def _take_over_payment(row: Invoice, twin: Invoice, now: datetime) -> None:
    """Staff may have marked the twin paid meanwhile: the payment is still owed, so our row sends
    it (again, if the twin's push was under way: marking paid twice is harmless). The sweep
    picks it up at once."""
    if twin.pending_action != PendingAction.MARK_PAID or twin.sync_state == SyncState.SYNCED:
        return
    row.pending_action = PendingAction.MARK_PAID
    row.requested_paid_at = twin.requested_paid_at
    row.requested_paid_on = twin.requested_paid_on
    if twin.sync_state == SyncState.FAILED:
        row.sync_state, row.last_error = SyncState.FAILED, twin.last_error
    else:
        row.sync_state, row.attempts, row.next_attempt_at = SyncState.PENDING, 0, now


def due_batches(now: datetime | None = None) -> list[list[int]]:
    """What the sweep should enqueue again (due retries, and claims whose worker died), as the ids
    of one task each: Qonto creates go five to a request, so Qonto rows go five to a task."""
    now = now or timezone.now()
    due = list(
        Invoice.objects.filter(
            Q(sync_state=SyncState.PENDING, next_attempt_at__lte=now)
            | Q(
                sync_state=SyncState.PENDING,
                next_attempt_at__isnull=True,
                updated_at__lt=now - timedelta(minutes=2),
            )
            | Q(sync_state=SyncState.SENDING, claimed_at__lt=now - CLAIM_STALE_AFTER)
        )
        .exclude(pending_action="")
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:1000]
    )
    qonto = list(Invoice.objects.filter(pk__in=due, provider=Provider.QONTO).values_list("pk", flat=True))
    batches = [qonto[start : start + QONTO_BATCH] for start in range(0, len(qonto), QONTO_BATCH)]
    return batches + [[pk] for pk in sorted(set(due) - set(qonto))]

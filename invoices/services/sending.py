"""The two routes from a service to the provider, for a change recorded on the invoice row (the
outbox, which ``invoices.push`` sends).

- ``enqueue_push``: queue the push task after commit. A broker that cannot be reached leaves the
  rows pending, saying why; the outbox sweep sends them once it is back.
- ``send_now``: push in this request, for a single action staff wait on, and say where each
  invoice stands in one plain sentence (``Sent``). What the provider asks us to try again later
  (a 429, a timeout) stays pending with its time, and its retry is queued with that countdown:
  that is the push's own retry, not a second route (the sweep is the safety net).

A service takes one of the two, never both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from kombu.exceptions import OperationalError as BrokerUnavailable

from invoices import formatting, push
from invoices.models import Invoice, InvoiceStatus, SyncState

logger = logging.getLogger(__name__)

BROKER_DOWN = (
    "The task queue (CELERY_BROKER_URL) cannot be reached: the outbox sweep sends it once it is back."
)


# Queueing ----------------------------------------------------------------------------------------
def enqueue_push(invoice_ids: list[int], *, countdown: float | None = None) -> None:
    """Queue the push after commit (in ``countdown`` seconds, for a retry)."""
    transaction.on_commit(lambda: _queue(invoice_ids, countdown))


def _queue(invoice_ids: list[int], countdown: float | None) -> None:
    from invoices.tasks import push_invoices

    try:
        if countdown is None:
            push_invoices.delay(invoice_ids)
        else:
            push_invoices.apply_async((invoice_ids,), countdown=countdown)
    except (BrokerUnavailable, OSError) as exc:
        # The rows stay pending, saying why; the sweep finds them (next_attempt_at) and sends them.
        logger.warning("could not queue the push of %s: %s", invoice_ids, exc)
        rows = Invoice.objects.filter(pk__in=invoice_ids, sync_state=SyncState.PENDING)
        rows.filter(last_error="").update(last_error=BROKER_DOWN)
        rows.exclude(last_error="").exclude(last_error__endswith=BROKER_DOWN).update(
            last_error=Concat(F("last_error"), Value(f" {BROKER_DOWN}"))
        )


# Sending now -------------------------------------------------------------------------------------
@dataclass
class Sent:
    """Where one invoice stands after it was sent in the request, in one plain sentence."""

    DONE, FAILED, WAITING = "done", "failed", "waiting"

    invoice: Invoice
    outcome: str
    text: str


def send_now(invoices: list[Invoice]) -> list[Sent]:
    """Push now; what will be retried is queued with its countdown (the sweep is the safety net)."""
    result = push.push_invoices([i.pk for i in invoices])
    if result.retrying:
        enqueue_push(result.retrying, countdown=result.retry_in)
    sent = []
    for invoice in invoices:
        try:
            invoice.refresh_from_db()
        except Invoice.DoesNotExist:
            sent.append(_absorbed(invoice))
            continue
        if invoice.pk in result.failed:
            outcome = Sent.FAILED
        else:
            outcome = Sent.DONE if invoice.pk in result.done else Sent.WAITING
        sent.append(Sent(invoice, outcome, _describe(invoice, result)))
    return sent


def _absorbed(invoice: Invoice) -> Sent:
    """Another upload of the same file reached the provider first; that row holds the invoice
    (with this row's history) now."""
    kept = (
        Invoice.objects.filter(provider=invoice.provider, pdf_sha256=invoice.pdf_sha256)
        .exclude(remote_id=None)
        .order_by("pk")
        .first()
    )
    if kept is None:
        return Sent(invoice, Sent.WAITING, "sent together with another upload of the same file; reload.")
    return Sent(kept, Sent.DONE, f"the same file as another upload: imported once, as invoice {kept}.")


def _describe(invoice: Invoice, result: push.PushResult) -> str:
    provider = invoice.get_provider_display()
    if invoice.pk in result.failed:
        return (
            f"not done. {result.failed[invoice.pk]} Your upload is kept: open it and use"
            " “Correct and send again”, or “Send again” once the cause is fixed."
        )
    if invoice.sync_state == SyncState.SYNCED:
        if invoice.status == InvoiceStatus.PAID and invoice.paid_at:
            return f"confirmed by {provider} (paid {formatting.paid_on(invoice)})."
        return f"confirmed by {provider}."
    if invoice.sync_state == SyncState.LOCAL_DRAFT:
        return "saved as a local draft."
    if invoice.last_error:
        return f"not confirmed yet ({invoice.last_error}); it will be sent again automatically."
    return f"queued for {provider}."

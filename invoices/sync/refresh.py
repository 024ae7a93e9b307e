"""Refresh chosen invoices from their provider, one GET each, and fetch their PDFs."""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from integrations import errors
from invoices.models import Invoice, InvoiceEvent, Provider
from invoices.providers import client_for
from invoices.services import dashboard_snapshot  # a module: it imports invoices.sync in turn
from invoices.sync.mirror import upsert_invoices


def refresh_invoices(*, invoice_ids: list[int], client=None) -> dict:
    """GET each invoice: store what the provider says, or mark it removed on a 404. ``client``
    serves when all the invoices are of its provider (a sync run's own client).
    Returns {"refreshed": n, "removed": n, "failed": {pk: the provider's error}}; a 429 is raised."""
    outcome = {"refreshed": 0, "removed": 0, "failed": {}}
    rows = Invoice.objects.filter(pk__in=invoice_ids).exclude(remote_id=None).order_by("pk")
    for invoice in rows:
        provider_client = client or client_for(invoice.provider)
        fetched_at = timezone.now()
        try:
            remote = provider_client.get_invoice(invoice.remote_id)
        except errors.ProviderNotFound:
            _mark_removed(invoice, at=fetched_at)
            outcome["removed"] += 1
            continue
        except errors.ProviderRateLimited:
            raise
        except errors.ProviderError as exc:
            outcome["failed"][invoice.pk] = exc
            continue
        upsert_invoices(provider=invoice.provider, remotes=[remote], fetched_at=fetched_at)
        outcome["refreshed"] += 1
    if outcome["refreshed"] or outcome["removed"]:
        dashboard_snapshot.dashboard_snapshot_queue()  # the invoice page, a bulk refresh, a sync's removal check
    return outcome


def refresh_remote_invoice(*, provider: str, remote_id: str, client=None) -> str:
    """GET one invoice by its id at the provider, whether we hold it or not: store what the
    provider says (an invoice created elsewhere is imported), or mark ours removed on a 404.
    Returns "refreshed", "removed" or "unknown" (a 404 for an invoice we never had); other
    provider errors are raised."""
    provider_client = client or client_for(provider)
    fetched_at = timezone.now()
    try:
        remote = provider_client.get_invoice(remote_id)
    except errors.ProviderNotFound:
        invoice = Invoice.objects.filter(provider=provider, remote_id=remote_id).first()
        if invoice is None:
            return "unknown"
        _mark_removed(invoice, at=fetched_at)
        dashboard_snapshot.dashboard_snapshot_queue()
        return "removed"
    upsert_invoices(provider=provider, remotes=[remote], fetched_at=fetched_at)
    dashboard_snapshot.dashboard_snapshot_queue()  # a webhook's refresh: the dashboard follows
    return "refreshed"


def _mark_removed(invoice: Invoice, *, at) -> None:
    """As a sync does: the row stays, marked removed, with a history row (once)."""
    with transaction.atomic():
        if Invoice.objects.filter(pk=invoice.pk, removed_at=None).update(removed_at=at):
            InvoiceEvent.objects.create(
                invoice=invoice,
                kind=InvoiceEvent.Kind.REMOVED_AT_PROVIDER,
                message="The provider answered 404: the invoice no longer exists there.",
            )


def invoice_fetch_pdf(*, invoice: Invoice) -> bool:
    """Download the provider's PDF at once (its link expires) and keep it, under a name of our own.
    False when there is none (or the invoice is not at its provider)."""
    if not invoice.remote_id:
        return False
    client = client_for(invoice.provider)
    if invoice.provider == Provider.MKP:
        content = client.download_invoice_pdf(invoice.remote_id)
    else:
        content = client.download_invoice_pdf(client.get_invoice(invoice.remote_id))
    if not content:
        return False
    previous = invoice.pdf.name
    invoice.pdf.save("provider.pdf", ContentFile(content), save=False)
    Invoice.objects.filter(pk=invoice.pk).update(pdf=invoice.pdf.name)
    if previous:
        invoice.pdf.storage.delete(previous)
    return True

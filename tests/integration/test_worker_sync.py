"""The sync and the pushes through real Celery workers, on PostgreSQL and a real broker."""

from datetime import timedelta

import pytest
from django.utils import timezone

from invoices.models import Invoice, InvoiceStatus, Provider, SyncRun, SyncState
from invoices.services import payment
from invoices.tasks import sync_provider
from tests.integration.conftest import wait_for
from tests.invoices.helpers import remote_state, seed

pytestmark = pytest.mark.services


def test_sync_and_mark_paid_through_a_worker(workers, sandbox, admin_user):
    seed(sandbox, invoices=45, customers=5)
    workers.start(1)
    for provider in Provider.values:
        sync_provider.delay(provider, "customers")
        sync_provider.delay(provider, "full")

    def synced():
        runs = SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED)
        return runs.count() == 4

    def runs_and_logs() -> str:
        runs = SyncRun.objects.order_by("pk").values_list("provider", "kind", "status", "error")
        return "\n".join(map(str, runs)) + "\n" + workers.logs()

    wait_for(synced, what="customer and invoice syncs of both providers", timeout=90, detail=runs_and_logs)
    for provider in Provider.values:
        remote = remote_state(sandbox, provider)
        local = Invoice.objects.filter(provider=provider)
        assert local.count() == len(remote) == 45
        assert set(local.values_list("remote_id", flat=True)) == {r["id"] for r in remote}
        assert local.filter(customer__isnull=True).count() == 0

    mkp = Invoice.objects.filter(provider=Provider.MKP, status=InvoiceStatus.OPEN).first()
    qonto = Invoice.objects.filter(provider=Provider.QONTO, status=InvoiceStatus.OPEN).first()
    paid_at = timezone.now() - timedelta(hours=1)
    payment.invoice_mark_paid(invoice=mkp, paid_at=paid_at, actor=admin_user)
    payment.invoice_mark_paid(invoice=qonto, paid_at=paid_at, actor=admin_user)

    wait_for(
        lambda: Invoice.objects.filter(pk__in=[mkp.pk, qonto.pk], sync_state=SyncState.SYNCED).count() == 2,
        what="the worker to push both payments",
    )
    for invoice in (mkp, qonto):
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID
        remote = next(r for r in remote_state(sandbox, invoice.provider) if r["id"] == invoice.remote_id)
        assert remote["paidAt" if invoice.provider == Provider.MKP else "paid_at"] is not None

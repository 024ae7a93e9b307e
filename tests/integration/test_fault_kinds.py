"""Every fault kind of the sandbox, met by the real clients over HTTP: the push keeps the change and
retries later, the sync fails with a plain reason and moves no cursor; both succeed once it clears."""

from datetime import timedelta

import pytest
from django.utils import timezone

from invoices.models import Invoice, InvoiceEvent, InvoiceStatus, Provider, SyncCursor, SyncRun, SyncState
from invoices.push import push_invoices
from invoices.services import payment
from invoices.sync import MODE_FULL, MODE_QUICK, sync_provider
from tests.invoices.helpers import remote_state, seed, set_faults

pytestmark = pytest.mark.django_db

KINDS = ["500", "502", "503", "timeout", "reset", "burst429", "malformed", "html"]


@pytest.fixture
def mirrored(sandbox):
    seed(sandbox, invoices=20, customers=2)
    for provider in Provider.values:
        assert sync_provider(provider=provider, mode=MODE_FULL).status == SyncRun.Status.SUCCEEDED
    return sandbox


@pytest.mark.parametrize("provider", Provider.values)
@pytest.mark.parametrize("kind", KINDS)
def test_a_payment_survives_the_fault_and_lands_once(
    mirrored, provider, kind, admin_user, queued, monkeypatch, short_read_timeout
):
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # the clients' short read retries
    invoice = Invoice.objects.filter(provider=provider, status=InvoiceStatus.OPEN).first()
    payment.invoice_mark_paid(
        invoice=invoice, paid_at=timezone.now() - timedelta(minutes=5), actor=admin_user
    )
    set_faults(mirrored, {kind: 1.0}, timeout_seconds=2.5)
    result = push_invoices([invoice.pk])
    invoice.refresh_from_db()
    assert result.retry_in is not None and result.retry_in > 0
    assert invoice.sync_state == SyncState.PENDING
    assert invoice.last_error, "the reason is kept for staff"
    assert invoice.events.filter(kind=InvoiceEvent.Kind.PUSH_RETRY).exists()

    set_faults(mirrored, {})
    Invoice.objects.filter(pk=invoice.pk).update(next_attempt_at=None)
    push_invoices([invoice.pk])
    invoice.refresh_from_db()
    assert invoice.sync_state == SyncState.SYNCED
    assert invoice.status == InvoiceStatus.PAID
    remote = next(r for r in remote_state(mirrored, provider) if r["id"] == invoice.remote_id)
    assert remote["paidAt" if provider == Provider.MKP else "paid_at"] is not None


@pytest.mark.parametrize("kind", KINDS)
def test_a_sync_run_fails_plainly_and_resumes(mirrored, kind, monkeypatch, short_read_timeout):
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    cursor_before = SyncCursor.objects.filter(provider=Provider.QONTO, name="updated_at").first()
    set_faults(mirrored, {kind: 1.0}, timeout_seconds=2.5)
    failed = sync_provider(provider=Provider.QONTO, mode=MODE_QUICK)
    assert failed.status == SyncRun.Status.FAILED
    assert failed.error and "Traceback" not in failed.error
    cursor_after = SyncCursor.objects.filter(provider=Provider.QONTO, name="updated_at").first()
    assert (cursor_after.value if cursor_after else "") == (cursor_before.value if cursor_before else "")
    set_faults(mirrored, {})
    assert sync_provider(provider=Provider.QONTO, mode=MODE_QUICK).status == SyncRun.Status.SUCCEEDED


def test_a_slow_answer_within_the_timeout_is_simply_waited_for(mirrored, settings):
    settings.PROVIDER_READ_TIMEOUT = 5
    set_faults(mirrored, {"slow": 1.0}, slow_seconds=0.3)
    run = sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.unchanged == 20

"""How pushes and syncs recover from what the fault suite (tests/integration/test_fault_injection.py)
met: answers lost after the write, invoices deleted or mirrored twice meanwhile, rate limits, a
sync stopped by the database."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
import requests
from django.db import OperationalError
from django.utils import timezone

from invoices import sync
from invoices.models import Invoice, InvoiceStatus, PendingAction, Provider, SyncRun, SyncState
from invoices.push import CLAIM_STALE_AFTER, push_invoices
from invoices.services import intake, payment
from tests.invoices.helpers import mirrored_mkp_customer, pdf_bytes, remote_state, set_faults

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _faults_left_as_found(sandbox):
    yield
    set_faults(sandbox, {}, after_share=0.5, methods=None)


def _mkp_create(sandbox, actor, number: str = "2026-300") -> Invoice:
    return intake.invoice_create_from_pdf(
        provider=Provider.MKP,
        pdf_name=f"{number}.pdf",
        pdf_content=pdf_bytes(number),
        actor=actor,
        customer=mirrored_mkp_customer(sandbox),
        number=number,
        issue_date=date(2026, 11, 1),
        amount=Decimal("12.95"),
    )


def _qonto_create(actor, number: str = "2026-400") -> Invoice:
    return intake.invoice_create_from_pdf(
        provider=Provider.QONTO, pdf_name=f"{number}.pdf", pdf_content=pdf_bytes(number), actor=actor
    )


def _push_again(invoice: Invoice) -> None:
    Invoice.objects.filter(pk=invoice.pk).update(next_attempt_at=None)
    push_invoices([invoice.pk])
    invoice.refresh_from_db()


def test_an_answer_that_is_no_answer_after_the_create_never_creates_twice(sandbox, admin_user, queued):
    invoice = _mkp_create(sandbox, admin_user)
    set_faults(sandbox, {"html": 1.0}, after_share=1.0, methods=["POST"])
    push_invoices([invoice.pk])
    invoice.refresh_from_db()
    assert invoice.sync_state == SyncState.PENDING, "retried, not failed"
    assert invoice.outcome_unknown
    set_faults(sandbox, {})
    _push_again(invoice)
    assert invoice.sync_state == SyncState.SYNCED
    assert [r["id"] for r in remote_state(sandbox, "mkp")] == [invoice.remote_id]


def test_waiting_for_the_request_budget_is_not_a_failed_attempt(sandbox, admin_user, queued):
    invoice = _mkp_create(sandbox, admin_user)
    set_faults(sandbox, {"burst429": 1.0}, after_share=0.0, methods=None)
    push_invoices([invoice.pk])
    invoice.refresh_from_db()
    assert invoice.sync_state == SyncState.PENDING
    assert invoice.attempts == 0


def test_a_stale_claim_of_a_create_looks_before_sending_again(sandbox, admin_user, queued):
    invoice = _mkp_create(sandbox, admin_user)
    push_invoices([invoice.pk])
    remote_id = Invoice.objects.get(pk=invoice.pk).remote_id
    # As if the worker died after the provider answered and before the answer was recorded.
    Invoice.objects.filter(pk=invoice.pk).update(
        remote_id=None,
        sync_state=SyncState.SENDING,
        pending_action=PendingAction.CREATE,
        claimed_at=timezone.now() - CLAIM_STALE_AFTER - timedelta(seconds=1),
    )
    push_invoices([invoice.pk])
    invoice.refresh_from_db()
    assert invoice.remote_id == remote_id
    assert len(remote_state(sandbox, "mkp")) == 1


def test_a_payment_for_an_invoice_deleted_at_the_provider_marks_it_removed(sandbox, admin_user, queued):
    invoice = _mkp_create(sandbox, admin_user)
    push_invoices([invoice.pk])
    invoice.refresh_from_db()
    payment.invoice_mark_paid(invoice=invoice, paid_at=timezone.now() - timedelta(hours=1), actor=admin_user)
    requests.delete(f"{sandbox.admin_url}/state/mkp/{invoice.remote_id}", timeout=10).raise_for_status()
    push_invoices([invoice.pk])
    invoice.refresh_from_db()
    assert invoice.removed_at is not None
    assert invoice.sync_state == SyncState.FAILED
    assert invoice.pending_action == ""
    assert "not marked paid" in invoice.last_error


@pytest.fixture
def twin(sandbox, admin_user, queued, short_read_timeout):
    """A Qonto create whose answer was lost, and the second row a sync made of its invoice."""
    invoice = _qonto_create(admin_user)
    set_faults(sandbox, {"timeout": 1.0}, after_share=1.0, methods=["POST"], timeout_seconds=2.5)
    push_invoices([invoice.pk])
    set_faults(sandbox, {}, methods=None)
    assert sync.sync_provider(provider=Provider.QONTO, mode=sync.MODE_FULL).status == "succeeded"
    copy = Invoice.objects.exclude(pk=invoice.pk).get(provider=Provider.QONTO)
    return invoice, copy


def test_a_payment_asked_on_the_twin_is_sent_by_the_row_that_absorbs_it(sandbox, admin_user, twin):
    invoice, copy = twin
    payment.invoice_mark_paid(invoice=copy, paid_at=timezone.now() - timedelta(hours=1), actor=admin_user)
    _push_again(invoice)
    assert not Invoice.objects.filter(pk=copy.pk).exists()
    assert invoice.remote_id == copy.remote_id
    assert invoice.pending_action == PendingAction.MARK_PAID
    push_invoices([invoice.pk])
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert [r["status"] for r in remote_state(sandbox, "qonto")] == ["paid"]


def test_a_create_whose_invoice_was_deleted_before_we_read_it_back_is_not_made_again(
    sandbox, admin_user, twin
):
    invoice, copy = twin
    requests.delete(f"{sandbox.admin_url}/state/qonto/{copy.remote_id}", timeout=10).raise_for_status()
    _push_again(invoice)
    assert invoice.sync_state == SyncState.SYNCED
    assert invoice.remote_id == copy.remote_id
    assert invoice.removed_at is not None
    assert invoice.number == "2026-400"
    assert remote_state(sandbox, "qonto") == []


def test_a_bulk_payment_skips_a_twin_merged_meanwhile(sandbox, admin_user, twin):
    invoice, copy = twin
    _push_again(invoice)
    report = payment.invoices_bulk_mark_paid(
        invoices=[copy], paid_at=timezone.now() - timedelta(hours=1), actor=admin_user
    )
    assert report.queued == []
    assert [reason for _, reason in report.skipped] == ["no longer listed; reload the page"]


def test_a_sync_stopped_by_a_database_error_does_not_stay_running(sandbox, monkeypatch):
    def deadlocked(client, recorder, renew):
        raise OperationalError("deadlock detected")

    monkeypatch.setitem(sync.RUNNERS, (Provider.QONTO, sync.MODE_QUICK), deadlocked)
    with pytest.raises(OperationalError):
        sync.sync_provider(provider=Provider.QONTO, mode=sync.MODE_QUICK)
    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.FAILED
    assert run.finished_at is not None
    assert "OperationalError" in run.error


def test_the_wait_between_attempts_never_exceeds_the_configured_cap(sandbox, admin_user, queued, settings):
    settings.PUSH_BACKOFF_CAP_SECONDS = 30
    settings.PUSH_MAX_ATTEMPTS = 20
    invoice = _qonto_create(admin_user)
    Invoice.objects.filter(pk=invoice.pk).update(attempts=12)  # uncapped: up to 15 minutes
    set_faults(sandbox, {"503": 1.0}, methods=["POST"])
    before = timezone.now()
    result = push_invoices([invoice.pk])
    invoice.refresh_from_db()
    assert invoice.sync_state == SyncState.PENDING
    assert 5 <= result.retry_in <= 30
    assert invoice.next_attempt_at <= before + timedelta(seconds=31)

"""Pushes that keep going through the sandbox over HTTP: a 429 on a create, the look-up of a lost
create, a Qonto import answer that forgets a file, repeated retries, and our own outages."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerDown

from integrations.mkp.client import MijnKlantportaalClient
from integrations.qonto import mappers as qonto_mappers
from integrations.sandbox.server import BURST_RETRY_AFTER
from invoices import formatting, tasks
from invoices.admin.invoice import InvoiceAdmin
from invoices.models import Invoice, InvoiceEvent, InvoiceStatus, Provider, SyncState
from invoices.push import push_invoices
from invoices.services import intake, retry, sending
from invoices.sync import MODE_FULL, sync_provider
from tests.invoices.helpers import mirrored_mkp_customer, pdf_bytes, remote_state, seed, set_faults

pytestmark = pytest.mark.django_db

KNOWN = 75  # five full MijnKlantportaal pages: a create is the first invoice of page 6


@pytest.fixture(autouse=True)
def _faults_left_as_found(sandbox):
    yield
    set_faults(sandbox, {}, after_share=0.5, methods=None)


@pytest.fixture
def retries(monkeypatch):
    """(ids, countdown) of every push queued with a countdown."""
    calls = []
    monkeypatch.setattr(
        tasks.push_invoices, "apply_async", lambda args, countdown: calls.append((args[0], countdown))
    )
    return calls


@pytest.fixture
def pages_read(monkeypatch):
    """The MijnKlantportaal list pages asked for, in order."""
    read = []
    original = MijnKlantportaalClient.list_invoices

    def spy(self, page=1):
        read.append(page)
        return original(self, page)

    monkeypatch.setattr(MijnKlantportaalClient, "list_invoices", spy)
    return read


@pytest.fixture
def mirrored_mkp(sandbox):
    customer = mirrored_mkp_customer(sandbox)
    seed(sandbox, invoices=KNOWN, customers=2)
    assert sync_provider(provider=Provider.MKP, mode=MODE_FULL).status == "succeeded"
    customer = Invoice.objects.filter(provider=Provider.MKP).first().customer or customer
    return customer


def _mkp_create(customer, actor, number="2026-900") -> Invoice:
    return intake.invoice_create_from_pdf(
        provider=Provider.MKP,
        pdf_name=f"{number}.pdf",
        pdf_content=pdf_bytes(number),
        actor=actor,
        customer=customer,
        number=number,
        issue_date=date(2026, 11, 1),
        amount=Decimal("12.95"),
    )


def _attempt(invoice: Invoice):
    Invoice.objects.filter(pk=invoice.pk).update(next_attempt_at=None)
    result = push_invoices([invoice.pk])
    invoice.refresh_from_db()
    return result


def _ours(sandbox, number):
    return [r for r in remote_state(sandbox, "mkp") if r["number"] == number]


# A 429 on a create -------------------------------------------------------------------------------
def test_a_429_on_a_create_is_not_applied_and_the_task_retries_it_after_retry_after(
    sandbox, admin_user, retries, pages_read, django_capture_on_commit_callbacks
):
    customer = mirrored_mkp_customer(sandbox)
    set_faults(sandbox, {"burst429": 1.0}, after_share=0.0, methods=["POST"])
    with django_capture_on_commit_callbacks(execute=True):
        sent = intake.invoice_create_and_send(
            provider=Provider.MKP,
            pdf_name="2026-901.pdf",
            pdf_content=pdf_bytes("2026-901"),
            actor=admin_user,
            customer=customer,
            number="2026-901",
            issue_date=date(2026, 11, 1),
            amount=Decimal("12.95"),
        )
    invoice = sent.invoice
    assert sent.outcome == sending.Sent.WAITING
    assert invoice.sync_state == SyncState.PENDING
    assert not invoice.outcome_unknown, "a 429 means the provider did not apply it"
    assert invoice.attempts == 0
    assert retries == [([invoice.pk], BURST_RETRY_AFTER)], (
        "queued with the Retry-After, not left to the sweep"
    )
    set_faults(sandbox, {})
    _attempt(invoice)
    assert invoice.sync_state == SyncState.SYNCED
    assert pages_read == [], "sent again without a look-up"
    assert len(_ours(sandbox, "2026-901")) == 1


# The look-up of a lost create ---------------------------------------------------------------------
def test_the_look_up_reads_newest_first_resumes_counts_attempts_and_sends_again(
    sandbox, admin_user, queued, mirrored_mkp, pages_read, settings
):
    settings.MKP_LOOKUP_PAGES_PER_ATTEMPT = 2
    invoice = _mkp_create(mirrored_mkp, admin_user)
    set_faults(sandbox, {"502": 1.0}, after_share=0.0, methods=["POST"])  # never reached it
    _attempt(invoice)
    assert invoice.outcome_unknown and invoice.attempts == 1
    set_faults(sandbox, {})

    progress = []
    for _ in range(2):
        _attempt(invoice)
        progress.append((invoice.attempts, invoice.lookup_next_page, invoice.sync_state))
    assert progress == [(2, 4, SyncState.PENDING), (3, 2, SyncState.PENDING)]
    assert "pages 2 down to 1 are still to be read" in invoice.last_error
    assert pages_read == [6, 5, 4, 3], "the end of the list first, then downward"

    _attempt(invoice)
    assert pages_read[4:] == [2, 1]
    assert invoice.sync_state == SyncState.SYNCED, "proved absent, so sent again"
    assert invoice.attempts == 4
    assert invoice.lookup_next_page is None and not invoice.outcome_unknown
    assert [r["id"] for r in _ours(sandbox, "2026-900")] == [invoice.remote_id]


def test_the_look_up_finds_a_create_that_went_through_on_the_newest_page(
    sandbox, admin_user, queued, mirrored_mkp, pages_read
):
    invoice = _mkp_create(mirrored_mkp, admin_user)
    set_faults(sandbox, {"html": 1.0}, after_share=1.0, methods=["POST"])  # made, answer lost
    _attempt(invoice)
    assert invoice.outcome_unknown
    set_faults(sandbox, {})
    _attempt(invoice)
    assert invoice.sync_state == SyncState.SYNCED
    assert pages_read == [6]
    assert [r["id"] for r in _ours(sandbox, "2026-900")] == [invoice.remote_id]


def test_a_create_that_went_through_but_is_unreadable_is_never_sent_again(
    sandbox, admin_user, queued, mirrored_mkp
):
    import requests

    invoice = _mkp_create(mirrored_mkp, admin_user)
    set_faults(sandbox, {"html": 1.0}, after_share=1.0, methods=["POST"])  # made, answer lost
    _attempt(invoice)
    set_faults(sandbox, {})
    (made,) = _ours(sandbox, "2026-900")
    requests.post(
        f"{sandbox.admin_url}/raw/mkp/{made['id']}", json={"fields": {"amount": "NaN"}}, timeout=10
    ).raise_for_status()
    _attempt(invoice)
    assert invoice.sync_state == SyncState.FAILED
    assert "MijnKlantportaal has an invoice numbered 2026-900" in invoice.last_error
    assert "It was not sent again" in invoice.last_error
    assert len(_ours(sandbox, "2026-900")) == 1

    requests.post(
        f"{sandbox.admin_url}/raw/mkp/{made['id']}", json={"fields": None}, timeout=10
    ).raise_for_status()
    retry.invoice_retry(invoice=invoice, actor=admin_user)
    _attempt(invoice)
    assert invoice.sync_state == SyncState.SYNCED
    assert invoice.remote_id == made["id"]
    assert len(_ours(sandbox, "2026-900")) == 1


def test_a_look_up_that_cannot_finish_fails_plainly_and_send_again_goes_on(
    sandbox, admin_user, queued, mirrored_mkp, pages_read, settings
):
    settings.MKP_LOOKUP_PAGES_PER_ATTEMPT = 1
    settings.PUSH_MAX_ATTEMPTS = 3
    invoice = _mkp_create(mirrored_mkp, admin_user)
    set_faults(sandbox, {"502": 1.0}, after_share=0.0, methods=["POST"])
    _attempt(invoice)
    set_faults(sandbox, {})
    _attempt(invoice)
    _attempt(invoice)
    assert invoice.sync_state == SyncState.FAILED
    assert "Gave up after 3 attempts: it may or may not be at MijnKlantportaal" in invoice.last_error
    assert "Send again" in invoice.last_error
    assert invoice.lookup_next_page == 4

    retry.invoice_retry(invoice=invoice, actor=admin_user)
    _attempt(invoice)
    assert pages_read == [6, 5, 4], "the retry went on where the look-up stopped"


# Qonto --------------------------------------------------------------------------------------------
def test_a_qonto_import_answer_that_does_not_name_a_file_is_resolved_like_a_lost_answer(
    sandbox, admin_user, queued, monkeypatch
):
    invoices = [
        intake.invoice_create_from_pdf(
            provider=Provider.QONTO, pdf_name=f"{n}.pdf", pdf_content=pdf_bytes(n), actor=admin_user
        )
        for n in ("2026-410", "2026-411")
    ]
    original = qonto_mappers.imported_invoices_from_payload
    monkeypatch.setattr(qonto_mappers, "imported_invoices_from_payload", lambda data: original(data)[:1])
    result = push_invoices([i.pk for i in invoices])
    first, second = (Invoice.objects.get(pk=i.pk) for i in invoices)
    assert result.done == [first.pk]
    assert first.sync_state == SyncState.SYNCED
    assert second.sync_state == SyncState.PENDING
    assert "does not name" in second.last_error
    monkeypatch.setattr(qonto_mappers, "imported_invoices_from_payload", original)
    _attempt(second)
    assert second.sync_state == SyncState.SYNCED
    assert sorted(r["id"] for r in remote_state(sandbox, "qonto")) == sorted(
        [first.remote_id, second.remote_id]
    )


def test_repeated_retries_of_one_push_are_one_event_with_a_count(sandbox, admin_user, queued, admin_client):
    invoice = intake.invoice_create_from_pdf(
        provider=Provider.QONTO, pdf_name="2026-420.pdf", pdf_content=pdf_bytes("2026-420"), actor=admin_user
    )
    set_faults(sandbox, {"503": 1.0}, methods=["POST"])
    for _ in range(3):
        _attempt(invoice)
    retry = invoice.events.get(kind=InvoiceEvent.Kind.PUSH_RETRY)
    assert retry.count == 3 and retry.last_at is not None
    page = admin_client.get(reverse("admin:invoices_invoice_change", args=[invoice.pk])).content.decode()
    assert f"Will retry (3 times, last {formatting.moment(retry.last_at)})" in page


# Our own outages ----------------------------------------------------------------------------------
def test_mark_paid_with_the_limiter_store_down_shows_a_message_and_the_row_the_reason(
    sandbox, admin_client, retries, settings, django_capture_on_commit_callbacks
):
    seed(sandbox, invoices=5, customers=2)
    assert sync_provider(provider=Provider.MKP, mode=MODE_FULL).status == "succeeded"
    invoice = Invoice.objects.filter(provider=Provider.MKP, status=InvoiceStatus.OPEN).first()
    settings.RATE_LIMIT_URL = "redis://127.0.0.1:1/0"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:invoices_invoice_mark_paid", args=[invoice.pk]),
            {
                "post": "yes",
                "paid_at_0": (timezone.localdate() - timedelta(days=1)).isoformat(),
                "paid_at_1": "09:00",
            },
            follow=True,
        )
    assert response.status_code == 200
    text = " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert "rate-limit store (RATE_LIMIT_URL) cannot be reached" in text
    invoice.refresh_from_db()
    assert invoice.sync_state == SyncState.PENDING
    assert "RATE_LIMIT_URL" in invoice.last_error
    assert [ids for ids, _ in retries] == [[invoice.pk]]
    assert 5 <= retries[0][1] <= 10, "the backoff of a first attempt"


def test_a_broker_down_when_the_push_is_queued_leaves_the_row_pending_with_the_reason(
    sandbox, admin_user, monkeypatch, django_capture_on_commit_callbacks
):
    def down(ids):
        raise BrokerDown("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.push_invoices, "delay", down)
    with django_capture_on_commit_callbacks(execute=True):
        invoice = intake.invoice_create_from_pdf(
            provider=Provider.QONTO,
            pdf_name="2026-430.pdf",
            pdf_content=pdf_bytes("2026-430"),
            actor=admin_user,
        )
    invoice.refresh_from_db()
    assert invoice.sync_state == SyncState.PENDING
    assert invoice.last_error == sending.BROKER_DOWN


def test_a_database_down_is_a_plain_503_page(admin_client, monkeypatch):
    def down(*args, **kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(InvoiceAdmin, "get_queryset", down)
    response = admin_client.get(reverse("admin:invoices_invoice_changelist"))
    assert response.status_code == 503
    assert "database of the back-office cannot be reached" in response.content.decode()
    assert "Traceback" not in response.content.decode()


def test_the_push_task_waits_out_a_database_that_cannot_be_reached(monkeypatch):
    from invoices import push

    answers = [OperationalError("server closed the connection unexpectedly"), push.PushResult(done=[7])]

    def flaky(ids):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    countdowns = []
    monkeypatch.setattr(push, "push_invoices", flaky)
    monkeypatch.setattr(tasks, "backoff_seconds", lambda attempt, cap: countdowns.append(attempt) or 0)
    assert tasks.push_invoices.apply(args=([7],)).get() == {"done": [7], "failed": []}
    assert countdowns == [1], "rescheduled with the backoff, then done"


def test_an_upload_and_a_pdf_download_with_the_limiter_store_down_answer_plainly(
    sandbox, admin_client, retries, settings, django_capture_on_commit_callbacks
):
    from tests.invoices.test_admin_create import upload

    customer = mirrored_mkp_customer(sandbox)
    seed(sandbox, invoices=1, customers=2)
    assert sync_provider(provider=Provider.MKP, mode=MODE_FULL).status == "succeeded"
    mirrored = Invoice.objects.get(provider=Provider.MKP)
    settings.RATE_LIMIT_URL = "redis://127.0.0.1:1/0"
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(admin_client, customer, number="2026-950")
    assert response.status_code == 200
    assert any(
        "not confirmed yet (Our shared rate-limit store" in str(m)
        for m in get_messages(response.wsgi_request)
    )
    created = Invoice.objects.get(number="2026-950")
    assert created.sync_state == SyncState.PENDING and not created.outcome_unknown
    assert [ids for ids, _ in retries] == [[created.pk]]

    response = admin_client.post(reverse("admin:invoices_invoice_fetch_pdf", args=[mirrored.pk]), follow=True)
    assert response.status_code == 200
    assert any("RATE_LIMIT_URL" in str(m) for m in get_messages(response.wsgi_request))


def test_a_sync_with_the_limiter_store_down_fails_plainly(sandbox, settings):
    settings.SYNC_PAGE_ATTEMPTS = 1  # the page is not asked for again after a pause
    settings.RATE_LIMIT_URL = "redis://127.0.0.1:1/0"
    run = sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    assert run.status == "failed"
    assert "rate-limit store (RATE_LIMIT_URL) cannot be reached" in run.error

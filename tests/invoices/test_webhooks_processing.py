"""Processing webhook deliveries against the sandbox over real HTTP: events are hints, the
provider's answer is what the mirror takes."""

from datetime import timedelta
from unittest.mock import patch

import pytest
import requests
import time_machine
from django.utils import timezone

from invoices.models import Customer, Invoice, InvoiceEvent, InvoiceStatus, Provider, WebhookDelivery
from invoices.sync import MODE_CUSTOMERS, sync_provider
from invoices.webhooks.processing import webhook_deliveries_process_again, webhook_delivery_process
from tests.invoices.helpers import remote_state, seed, set_faults
from tests.invoices.webhook_helpers import post_mkp, post_qonto, qonto_body, subscribe_all


@pytest.fixture
def processed(monkeypatch, django_capture_on_commit_callbacks):
    """Queued deliveries processed at once, as the task would; their retry delays are collected."""
    from invoices import tasks

    retries: list[float] = []

    def run(pk, again=False):
        retry_in = webhook_delivery_process(delivery=WebhookDelivery.objects.get(pk=pk), again=again)
        if retry_in is not None:
            retries.append(retry_in)

    monkeypatch.setattr(tasks.process_webhook_delivery, "delay", run)
    return retries


def _requests(sandbox, provider: str) -> int:
    stats = requests.get(f"{sandbox.admin_url}/stats", timeout=10).json()
    return stats["requests"][provider]


def _mkp_paid(sandbox, remote_id: str, paid_at: str | None) -> None:
    requests.post(
        f"{sandbox.admin_url}/state/mkp/{remote_id}", json={"paidAt": paid_at}, timeout=10
    ).raise_for_status()


def _send(client, django_capture_on_commit_callbacks, post, *args, **kwargs):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, *args, **kwargs)
    assert response.status_code == 200, response.content
    return WebhookDelivery.objects.order_by("-pk").first()


@pytest.fixture
def mkp_invoice(sandbox, db):
    """An open MijnKlantportaal invoice at the sandbox and in the mirror."""
    seed(sandbox, invoices=3, customers=2)
    subscribe_all()
    sync_provider(provider=Provider.MKP, mode=MODE_CUSTOMERS)
    remote = next(row for row in remote_state(sandbox, "mkp") if not row["paid"])
    from invoices.sync.refresh import refresh_remote_invoice

    refresh_remote_invoice(provider=Provider.MKP, remote_id=remote["id"])
    return Invoice.objects.get(provider=Provider.MKP, remote_id=remote["id"])


def test_paid_at_the_provider_shows_paid_here(
    client, mkp_invoice, sandbox, processed, django_capture_on_commit_callbacks
):
    _mkp_paid(sandbox, mkp_invoice.remote_id, "2026-12-01T10:00:00+01:00")
    delivery = _send(
        client,
        django_capture_on_commit_callbacks,
        post_mkp,
        "invoice-paid",
        {"data": {"id": mkp_invoice.remote_id}},
    )
    mkp_invoice.refresh_from_db()
    assert mkp_invoice.status == InvoiceStatus.PAID
    delivery.refresh_from_db()
    assert delivery.processed_at is not None and delivery.error == "" and "read again" in delivery.outcome


def test_payload_fields_are_never_taken_on_trust(
    client, mkp_invoice, sandbox, processed, django_capture_on_commit_callbacks
):
    body = {
        "data": {
            "id": mkp_invoice.remote_id,
            "paid": True,
            "paidAt": "2026-12-01T10:00:00+01:00",
            "amount": "0.01",
        }
    }
    _send(client, django_capture_on_commit_callbacks, post_mkp, "invoice-paid", body)
    amount = mkp_invoice.amount
    mkp_invoice.refresh_from_db()
    assert mkp_invoice.status == InvoiceStatus.OPEN and mkp_invoice.paid_at is None
    assert mkp_invoice.amount == amount


def test_repeats_are_processed_once(
    client, mkp_invoice, sandbox, processed, django_capture_on_commit_callbacks
):
    _mkp_paid(sandbox, mkp_invoice.remote_id, "2026-12-01T10:00:00+01:00")
    body = {"data": {"id": mkp_invoice.remote_id}}
    before = _requests(sandbox, "mkp")
    first = _send(client, django_capture_on_commit_callbacks, post_mkp, "invoice-paid", body)
    second = _send(client, django_capture_on_commit_callbacks, post_mkp, "invoice-paid", body)
    assert _requests(sandbox, "mkp") - before == 1
    second.refresh_from_db()
    assert second.duplicate_of == first and "repeat" in second.outcome
    # The same body after the window is a new event.
    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        third = _send(client, django_capture_on_commit_callbacks, post_mkp, "invoice-paid", body)
    third.refresh_from_db()
    assert third.duplicate_of is None and _requests(sandbox, "mkp") - before == 2


def test_paid_again_after_a_chargeback_is_not_a_repeat(
    client, mkp_invoice, sandbox, processed, django_capture_on_commit_callbacks
):
    """MijnKlantportaal's bodies carry no event id: paid, charged back and paid again within the
    window are three events, though the first and the last bodies are the same."""
    body = {"data": {"id": mkp_invoice.remote_id}}
    _mkp_paid(sandbox, mkp_invoice.remote_id, "2026-12-01T10:00:00+01:00")
    _send(client, django_capture_on_commit_callbacks, post_mkp, "invoice-paid", body)
    _mkp_paid(sandbox, mkp_invoice.remote_id, None)
    _send(client, django_capture_on_commit_callbacks, post_mkp, "invoice-chargeback", body)
    mkp_invoice.refresh_from_db()
    assert mkp_invoice.status == InvoiceStatus.OPEN
    _mkp_paid(sandbox, mkp_invoice.remote_id, "2026-12-02T10:00:00+01:00")
    again = _send(client, django_capture_on_commit_callbacks, post_mkp, "invoice-paid", body)
    again.refresh_from_db()
    assert again.duplicate_of is None and "read again" in again.outcome
    mkp_invoice.refresh_from_db()
    assert mkp_invoice.status == InvoiceStatus.PAID
    # A copy of that last one right after it is a repeat again.
    copy = _send(client, django_capture_on_commit_callbacks, post_mkp, "invoice-paid", body)
    copy.refresh_from_db()
    assert copy.duplicate_of == again


def test_out_of_order_deliveries_converge(client, sandbox, db, processed, django_capture_on_commit_callbacks):
    """Paid arrives before created, for an invoice made elsewhere we never saw: both end at the
    provider's state."""
    seed(sandbox, invoices=2, customers=1)
    subscribe_all()
    remote = remote_state(sandbox, "mkp")[0]
    _mkp_paid(sandbox, remote["id"], "2026-12-01T10:00:00+01:00")
    body = {"data": {"id": remote["id"]}}
    paid = _send(client, django_capture_on_commit_callbacks, post_mkp, "invoice-paid", body)
    invoice = Invoice.objects.get(provider=Provider.MKP, remote_id=remote["id"])
    assert invoice.status == InvoiceStatus.PAID and invoice.number == remote["number"]
    paid.refresh_from_db()
    assert "added" in paid.outcome
    _send(client, django_capture_on_commit_callbacks, post_mkp, "invoice-created", body)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert Invoice.objects.filter(provider=Provider.MKP, remote_id=remote["id"]).count() == 1


def test_chargeback_reopens_a_paid_invoice_with_history(
    client, mkp_invoice, sandbox, processed, django_capture_on_commit_callbacks
):
    _mkp_paid(sandbox, mkp_invoice.remote_id, "2026-12-01T10:00:00+01:00")
    _send(
        client,
        django_capture_on_commit_callbacks,
        post_mkp,
        "invoice-paid",
        {"data": {"id": mkp_invoice.remote_id}},
    )
    _mkp_paid(sandbox, mkp_invoice.remote_id, None)
    delivery = _send(
        client,
        django_capture_on_commit_callbacks,
        post_mkp,
        "invoice-chargeback",
        {"data": {"id": mkp_invoice.remote_id}},
    )
    mkp_invoice.refresh_from_db()
    assert mkp_invoice.status == InvoiceStatus.OPEN and mkp_invoice.paid_at is None
    event = mkp_invoice.events.get(kind=InvoiceEvent.Kind.CHARGED_BACK)
    assert event.get_kind_display() == "Charged back at the provider"
    delivery.refresh_from_db()
    assert "charged back" in delivery.outcome


def test_chargeback_the_provider_does_not_show_changes_nothing(
    client, mkp_invoice, sandbox, processed, django_capture_on_commit_callbacks
):
    _mkp_paid(sandbox, mkp_invoice.remote_id, "2026-12-01T10:00:00+01:00")
    _send(
        client,
        django_capture_on_commit_callbacks,
        post_mkp,
        "invoice-paid",
        {"data": {"id": mkp_invoice.remote_id}},
    )
    _send(
        client,
        django_capture_on_commit_callbacks,
        post_mkp,
        "invoice-chargeback",
        {"data": {"id": mkp_invoice.remote_id}},
    )
    mkp_invoice.refresh_from_db()
    assert mkp_invoice.status == InvoiceStatus.PAID
    assert not mkp_invoice.events.filter(kind=InvoiceEvent.Kind.CHARGED_BACK).exists()


def test_deleted_marks_it_removed_as_the_sync_does(
    client, mkp_invoice, sandbox, processed, django_capture_on_commit_callbacks
):
    requests.delete(f"{sandbox.admin_url}/state/mkp/{mkp_invoice.remote_id}", timeout=10).raise_for_status()
    body = {"data": {"id": mkp_invoice.remote_id}}
    _send(client, django_capture_on_commit_callbacks, post_mkp, "invoice-deleted", body)
    mkp_invoice.refresh_from_db()
    assert mkp_invoice.removed_at is not None
    assert mkp_invoice.events.filter(kind=InvoiceEvent.Kind.REMOVED_AT_PROVIDER).count() == 1


def test_unknown_type_is_stored_and_ignored(
    client, sandbox, db, processed, django_capture_on_commit_callbacks
):
    subscribe_all()
    before = _requests(sandbox, "qonto")
    delivery = _send(
        client,
        django_capture_on_commit_callbacks,
        post_qonto,
        qonto_body("evt-9", "tx-1", kind="v1/transactions"),
    )
    delivery.refresh_from_db()
    assert delivery.processed_at is not None and "not used here" in delivery.outcome
    assert _requests(sandbox, "qonto") == before


def test_qonto_invoice_event_refreshes_and_replay_is_processed_once(
    client, sandbox, db, processed, django_capture_on_commit_callbacks
):
    seed(sandbox, invoices=3, customers=1)
    subscribe_all()
    remote = next(row for row in remote_state(sandbox, "qonto") if row["status"] == "unpaid")
    requests.post(
        f"{sandbox.admin_url}/state/qonto/{remote['id']}",
        json={"status": "paid", "paid_at": "2026-12-01T10:00:00+01:00"},
        timeout=10,
    ).raise_for_status()
    body = qonto_body("evt-1", remote["id"], status="unpaid")
    first = _send(client, django_capture_on_commit_callbacks, post_qonto, body)
    before = _requests(sandbox, "qonto")
    replay = _send(client, django_capture_on_commit_callbacks, post_qonto, body)
    assert Invoice.objects.get(provider=Provider.QONTO, remote_id=remote["id"]).status == InvoiceStatus.PAID
    replay.refresh_from_db()
    assert replay.duplicate_of == first and _requests(sandbox, "qonto") == before


def test_two_copies_processed_in_the_other_order_are_still_one_refresh(
    client, sandbox, db, django_capture_on_commit_callbacks
):
    """Two workers may take two copies of one event in either order: the copy that arrived later
    but was processed first is the original, the other a repeat of it."""
    seed(sandbox, invoices=3, customers=1)
    subscribe_all()
    remote = next(row for row in remote_state(sandbox, "qonto") if row["status"] == "unpaid")
    body = qonto_body("evt-2", remote["id"])
    with (
        patch("invoices.tasks.process_webhook_delivery.delay") as queued,
        django_capture_on_commit_callbacks(execute=True),
    ):
        first, second = (post_qonto(client, body).json()["received"] for _ in range(2))
    assert queued.call_count == 2
    before = _requests(sandbox, "qonto")
    for pk in (second, first):
        webhook_delivery_process(delivery=WebhookDelivery.objects.get(pk=pk))
    assert _requests(sandbox, "qonto") - before == 1
    assert WebhookDelivery.objects.get(pk=first).duplicate_of_id == second
    assert WebhookDelivery.objects.get(pk=second).duplicate_of_id is None


def test_customer_event_reads_the_customer(
    client, sandbox, db, processed, django_capture_on_commit_callbacks
):
    seed(sandbox, customers=2)
    subscribe_all()
    customer_id = requests.get(
        f"{sandbox.mkp_base_url}/customers", headers={"Authorization": "Bearer sandbox-mkp-key"}, timeout=10
    ).json()["data"][0]["id"]
    _send(
        client,
        django_capture_on_commit_callbacks,
        post_mkp,
        "customer-created",
        {"data": {"id": customer_id}},
    )
    assert Customer.objects.filter(provider=Provider.MKP, remote_id=customer_id).exists()


def test_a_provider_failure_keeps_the_error_and_retries(
    client, mkp_invoice, sandbox, processed, django_capture_on_commit_callbacks
):
    set_faults(sandbox, {"503": 1.0}, providers=["mkp"])
    delivery = _send(
        client,
        django_capture_on_commit_callbacks,
        post_mkp,
        "invoice-paid",
        {"data": {"id": mkp_invoice.remote_id}},
    )
    delivery.refresh_from_db()
    assert delivery.processed_at is None and "MijnKlantportaal" in delivery.error
    assert len(processed) == 1 and processed[0] >= 1
    set_faults(sandbox, {})
    _mkp_paid(sandbox, mkp_invoice.remote_id, "2026-12-01T10:00:00+01:00")
    assert webhook_delivery_process(delivery=delivery) is None
    delivery.refresh_from_db()
    assert delivery.processed_at is not None and delivery.error == "" and delivery.attempts == 2
    mkp_invoice.refresh_from_db()
    assert mkp_invoice.status == InvoiceStatus.PAID


def test_a_spent_budget_reschedules(
    client, mkp_invoice, sandbox, processed, django_capture_on_commit_callbacks, settings
):
    set_faults(sandbox, {"burst429": 1.0}, providers=["mkp"])
    delivery = _send(
        client,
        django_capture_on_commit_callbacks,
        post_mkp,
        "invoice-paid",
        {"data": {"id": mkp_invoice.remote_id}},
    )
    delivery.refresh_from_db()
    assert delivery.processed_at is None and "slow down" in delivery.error
    assert processed and processed[0] >= 1


def test_process_again_includes_repeats_but_never_unverified(
    client, mkp_invoice, sandbox, processed, django_capture_on_commit_callbacks
):
    body = {"data": {"id": mkp_invoice.remote_id}}
    _send(client, django_capture_on_commit_callbacks, post_mkp, "invoice-paid", body)
    repeat = _send(client, django_capture_on_commit_callbacks, post_mkp, "invoice-paid", body)
    forged = post_mkp(client, "invoice-paid", body, secret="wrong-secret-000")
    assert forged.status_code == 401
    refused = WebhookDelivery.objects.get(verified=False)
    _mkp_paid(sandbox, mkp_invoice.remote_id, "2026-12-01T10:00:00+01:00")
    with django_capture_on_commit_callbacks(execute=True):
        counts = webhook_deliveries_process_again(delivery_ids=[repeat.pk, refused.pk])
    assert counts == (1, 1)
    mkp_invoice.refresh_from_db()
    assert mkp_invoice.status == InvoiceStatus.PAID
    refused.refresh_from_db()
    assert refused.processed_at is None


def test_the_webhook_task_waits_out_a_database_that_cannot_be_reached(db, monkeypatch):
    from django.db import OperationalError

    from invoices import tasks

    answers = [OperationalError("server closed the connection unexpectedly"), None]

    def flaky(*, delivery, again):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    delivery = WebhookDelivery.objects.create(provider=Provider.QONTO, headers={}, body=b"{}", verified=True)
    countdowns = []
    monkeypatch.setattr(tasks, "webhook_delivery_process", flaky)
    monkeypatch.setattr(tasks, "backoff_seconds", lambda attempt, cap: countdowns.append(attempt) or 0)
    tasks.process_webhook_delivery.apply(args=(delivery.pk,)).get()
    assert countdowns == [1] and answers == [], "rescheduled with the backoff, then processed"

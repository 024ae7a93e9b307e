"""The webhook endpoints: stored as received, the signature checked, answered, queued."""

import time_machine
from django.test import override_settings
from django.urls import reverse

from invoices.models import Provider, WebhookDelivery, WebhookSubscription
from tests.invoices.webhook_helpers import (
    QONTO_SECRET,
    mkp_secret,
    post_mkp,
    post_qonto,
    qonto_body,
    subscribe_all,
)


def test_qonto_published_test_vector_is_accepted_and_queued(
    client, db, monkeypatch, django_capture_on_commit_callbacks
):
    from invoices import tasks

    queued = []
    monkeypatch.setattr(tasks.process_webhook_delivery, "delay", lambda pk: queued.append(pk))
    WebhookSubscription.objects.create(
        provider=Provider.QONTO,
        remote_id="s",
        event_types=["v1/client-invoices"],
        callback_url="x",
        secret="test-secret",
    )
    header = "t=1704110400,v1=56aff06dc227db80d6568a5070f912c601c31f20451745d257cbc0b5dfa93805"
    with time_machine.travel(1704110400 + 30, tick=False), django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/webhooks/qonto/",
            data=b'{"test":"data"}',
            content_type="application/json",
            headers={"X-Qonto-Signature": header},
        )
    assert response.status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert delivery.verified is True and delivery.error == ""
    assert bytes(delivery.body) == b'{"test":"data"}'
    assert queued == [delivery.pk]


def test_forged_signature_is_refused_stored_and_never_queued(
    client, db, monkeypatch, django_capture_on_commit_callbacks
):
    from invoices import tasks

    queued = []
    monkeypatch.setattr(tasks.process_webhook_delivery, "delay", lambda pk: queued.append(pk))
    subscribe_all()
    with django_capture_on_commit_callbacks(execute=True):
        forged = post_qonto(client, qonto_body("evt-1", "inv-1"), secret="whsec_not_ours_at_all_0000000000")
        missing = client.post(
            "/webhooks/qonto/", data=qonto_body("evt-2", "inv-1"), content_type="application/json"
        )
        wrong_mkp = post_mkp(
            client, "invoice-paid", {"data": {"id": "inv_1"}}, secret=mkp_secret("invoice-created") + "x"
        )
        no_mkp = post_mkp(client, "invoice-paid", {"data": {"id": "inv_1"}}, secret="")
    assert [r.status_code for r in (forged, missing, wrong_mkp, no_mkp)] == [401, 401, 401, 401]
    assert queued == []
    rows = list(WebhookDelivery.objects.order_by("pk"))
    assert [row.verified for row in rows] == [False] * 4
    assert "does not match" in rows[0].error and "No readable" in rows[1].error
    assert "matches none" in rows[2].error and "No X-Webhook-Signature" in rows[3].error
    assert all(row.processed_at is None for row in rows)


def test_stale_qonto_timestamp_is_refused(client, db):
    subscribe_all()
    now = 1796637600  # 2026-12-07 10:00 UTC
    with time_machine.travel(now, tick=False):
        stale = post_qonto(client, qonto_body("evt-1", "inv-1"), at=now - 301)
        fresh = post_qonto(client, qonto_body("evt-2", "inv-1"), at=now - 299)
    assert stale.status_code == 401
    assert fresh.status_code == 200
    refused = WebhookDelivery.objects.get(event_id="evt-1")
    assert refused.verified is False and "301 seconds old" in refused.error


def test_mkp_record_secret_verifies_and_names_the_type(client, db, monkeypatch):
    from invoices import tasks

    monkeypatch.setattr(tasks.process_webhook_delivery, "delay", lambda pk: None)
    subscribe_all()
    response = client.post(
        "/webhooks/mkp/",
        data=b'{"data": {"id": "inv_42"}}',
        content_type="application/json",
        headers={
            "X-Webhook-Signature": mkp_secret("invoice-paid"),
            "Authorization": "Bearer x",
            "Cookie": "a=b",
        },
    )
    assert response.status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert delivery.verified and delivery.event_type == "invoice-paid" and delivery.object_id == "inv_42"
    assert delivery.subscription.remote_id == "wbh_0002"
    # Credentials of the caller are not kept; the record's secret, which the header carries, is masked.
    names = {name.lower() for name in delivery.headers}
    assert "authorization" not in names and "cookie" not in names
    assert delivery.headers["X-Webhook-Signature"] == "••••••••0123"
    assert mkp_secret("invoice-paid") not in str(delivery.headers)


@override_settings(WEBHOOK_MAX_BODY_BYTES=1024)
def test_oversized_body_is_refused_unstored(client, db):
    subscribe_all()
    response = post_qonto(client, qonto_body("evt-1", "inv-1", note="x" * 2000))
    assert response.status_code == 413
    assert not WebhookDelivery.objects.exists()
    assert post_qonto(client, qonto_body("evt-2", "inv-1", note="x" * 700)).status_code == 200


def test_only_post_no_login_no_csrf(client, db):
    subscribe_all()
    assert client.get("/webhooks/mkp/").status_code == 405
    assert client.put("/webhooks/qonto/").status_code == 405
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert post_qonto(strict, qonto_body("evt-1", "inv-1")).status_code == 200


def test_a_delivery_the_broker_cannot_take_is_kept_with_the_reason(
    client, db, monkeypatch, django_capture_on_commit_callbacks
):
    from invoices import tasks

    def down(pk):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.process_webhook_delivery, "delay", down)
    subscribe_all()
    with django_capture_on_commit_callbacks(execute=True):
        post_qonto(client, qonto_body("evt-1", "inv-1"))
    delivery = WebhookDelivery.objects.get()
    assert delivery.verified and "Could not be queued" in delivery.error


def test_qonto_secret_is_chosen_by_subscription_id(client, db):
    subscribe_all()
    WebhookSubscription.objects.create(
        provider=Provider.QONTO,
        remote_id="sub-2",
        event_types=["v1/clients"],
        callback_url="x",
        secret="whsec_second_one_000000000000000",
    )
    assert post_qonto(client, qonto_body("evt-1", "inv-1"), secret=QONTO_SECRET).status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert delivery.subscription.remote_id == "sub-1"


def test_hostile_deliveries_are_refused_plainly_and_shown_safely(admin_client, client, db):
    subscribe_all()
    nul = client.post(
        "/webhooks/qonto/",
        data=b'{"id": "evt\\u0000x", "type": "v1/client-invoices\\nforged log line"}',
        content_type="application/json",
        HTTP_X_QONTO_SIGNATURE="t=\u00b2,v1=" + "0" * 64,
    )
    deep = client.post("/webhooks/qonto/", data=b"[" * 5000 + b"]" * 5000, content_type="application/json")
    assert [nul.status_code, deep.status_code] == [401, 401]
    first, second = WebhookDelivery.objects.order_by("pk")
    assert (first.event_id, first.event_type) == ("", "")  # nothing unprintable is kept as a name
    page = admin_client.get(reverse("admin:invoices_webhookdelivery_change", args=[second.pk]))
    assert page.status_code == 200
    assert "[[[[" in page.content.decode()

"""Are the webhooks arriving? The dashboard's last verified delivery per provider, and the warning
when a provider's webhooks are silent while the syncs still find changes."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from invoices import dashboard, selectors
from invoices.models import Provider, SyncRun, WebhookDelivery, WebhookSubscription
from invoices.roles import VIEWER
from invoices.webhooks.health import webhooks_last_verified, webhooks_silent_warnings
from tests.invoices.test_permissions import staff_with

pytestmark = pytest.mark.django_db


def delivery(provider: str, minutes_ago: float, *, verified: bool | None = True) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        provider=provider,
        body=b"{}",
        verified=verified,
        received_at=timezone.now() - timedelta(minutes=minutes_ago),
    )


def subscription(provider: str, minutes_ago: float) -> WebhookSubscription:
    row = WebhookSubscription.objects.create(
        provider=provider, remote_id=f"{provider}-1", callback_url="https://bo.example.com/", secret="s" * 40
    )
    WebhookSubscription.objects.filter(pk=row.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    return row


def sync_run(provider: str, minutes_ago: float, *, created: int = 0, updated: int = 0) -> SyncRun:
    finished = timezone.now() - timedelta(minutes=minutes_ago)
    return SyncRun.objects.create(
        provider=provider,
        kind="quick",
        status=SyncRun.Status.SUCCEEDED,
        started_at=finished - timedelta(seconds=5),
        finished_at=finished,
        created=created,
        updated=updated,
    )


def test_the_last_verified_delivery_per_provider_in_one_query(django_assert_num_queries):
    old_mkp = delivery(Provider.MKP, 30)
    delivery(Provider.MKP, 5, verified=False)  # refused: does not count
    delivery(Provider.MKP, 4, verified=None)  # not checked yet: does not count
    new_qonto = delivery(Provider.QONTO, 2)
    delivery(Provider.QONTO, 50)
    with django_assert_num_queries(1):
        last = webhooks_last_verified()
    assert last == {Provider.MKP.value: old_mkp.received_at, Provider.QONTO.value: new_qonto.received_at}


def test_the_dashboard_shows_the_last_webhook_per_provider(client, django_user_model):
    qonto = delivery(Provider.QONTO, 3)
    sync = {health.provider: health for health in dashboard.receivables_dashboard().sync}
    assert sync["qonto"].last_webhook == qonto.received_at and sync["mkp"].last_webhook is None
    client.force_login(staff_with(django_user_model, "victor", group=VIEWER))
    page = client.get(reverse("admin:index")).content.decode()
    row = page[page.index('data-provider="qonto"') :]
    row = row[: row.index("</tr>")]
    assert f"{timezone.localtime(qonto.received_at):%-d %b %Y %H:%M}" in row and "minutes ago" in row
    mkp_row = page[page.index('data-provider="mkp"') :]
    assert "none yet" in mkp_row[: mkp_row.index("</tr>")]


def test_silent_webhooks_while_the_syncs_find_changes_are_a_warning(settings):
    settings.WEBHOOK_SILENT_AFTER_MINUTES = 60
    subscription(Provider.QONTO, 600)
    delivery(Provider.QONTO, 90)
    sync_run(Provider.QONTO, 10, updated=3)
    sync_run(Provider.QONTO, 120, created=50)  # before the window: not counted
    warnings = webhooks_silent_warnings()
    assert len(warnings) == 1
    assert warnings[0].startswith("Qonto's webhooks have gone silent: no verified delivery since ")
    assert "found 3 new or changed invoice(s)" in warnings[0]
    assert "Check the webhook subscription at Qonto, register Qonto webhooks again" in warnings[0]
    assert warnings[0] in selectors.admin_warnings()


def test_no_warning_when_all_is_well_or_nothing_is_expected(settings):
    settings.WEBHOOK_SILENT_AFTER_MINUTES = 60
    # No subscriptions: polling only, nothing to warn about.
    sync_run(Provider.MKP, 10, created=4)
    assert webhooks_silent_warnings() == []
    # Subscribed long ago, the last delivery recent: fine.
    subscription(Provider.MKP, 600)
    recent = delivery(Provider.MKP, 20)
    assert webhooks_silent_warnings() == []
    # Silent, but the syncs found nothing either: nothing was missed.
    recent.delete()
    SyncRun.objects.all().delete()
    sync_run(Provider.MKP, 10)
    assert webhooks_silent_warnings() == []
    # Silent and changes found: the warning, then none for a subscription registered minutes ago.
    sync_run(Provider.MKP, 5, created=1)
    assert [w.split(":")[0] for w in webhooks_silent_warnings()] == [
        "MijnKlantportaal's webhooks have gone silent"
    ]
    assert "since they were registered" in webhooks_silent_warnings()[0]
    WebhookSubscription.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    assert webhooks_silent_warnings() == []


def test_the_banner_shows_on_the_dashboard(client, django_user_model, settings):
    settings.WEBHOOK_SILENT_AFTER_MINUTES = 30
    subscription(Provider.MKP, 600)
    sync_run(Provider.MKP, 1, updated=2)
    client.force_login(staff_with(django_user_model, "victor", group=VIEWER))
    page = client.get(reverse("admin:index")).content.decode()
    assert "MijnKlantportaal&#x27;s webhooks have gone silent" in page
    assert "the last 30 minutes found 2 new or changed invoice(s)" in page

"""Registering MijnKlantportaal's webhooks: idempotent, each record's secret kept."""

import pytest
import responses
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from responses import matchers

from integrations.mkp.client import MijnKlantportaalClient
from invoices.models import Provider, WebhookSubscription
from invoices.webhooks.registration import MKP_EVENT_TYPES, webhooks_register
from tests.integrations.test_mkp_webhooks_client import WEBHOOKS, page, record

pytestmark = pytest.mark.django_db
URL = "https://bo.example.com/webhooks/mkp/"


@pytest.fixture
def mkp(settings):
    settings.MKP_API_KEY = "mkp_live_4f9cS3cr3tK3y"
    settings.MKP_BASE_URL = WEBHOOKS.removesuffix("/webhooks")
    settings.RATE_LIMIT_URL = "off"
    return MijnKlantportaalClient(api_key=settings.MKP_API_KEY)


def _creates(start: int = 100):
    created = []
    for number, event_type in enumerate(MKP_EVENT_TYPES, start=start):
        created.append(
            responses.post(
                WEBHOOKS,
                match=[matchers.json_params_matcher({"url": URL, "type": event_type})],
                json=record(number, event_type, URL),
                status=201,
            )
        )
    return created


@responses.activate
def test_register_creates_only_what_is_missing_and_keeps_the_secrets(mkp):
    # Already there: invoice-paid for our URL; invoice-created for another URL (not ours).
    responses.get(
        WEBHOOKS,
        json=page(
            [record(1, "invoice-paid", URL), record(2, "invoice-created", "https://old.example.com/hook")],
            1,
            None,
        ),
    )
    creates = _creates()
    result = webhooks_register(provider=Provider.MKP, url=URL, client=mkp)
    assert result.kept == ["invoice-paid"]
    assert sorted(result.created) == sorted(set(MKP_EVENT_TYPES) - {"invoice-paid"})
    assert [c.call_count for c in creates] == [1, 0, 1, 1, 1, 1]  # invoice-paid is the second type
    subscriptions = WebhookSubscription.objects.filter(provider=Provider.MKP)
    assert subscriptions.count() == 6
    paid = subscriptions.get(remote_id="wbh_00000000000001")
    assert paid.event_types == ["invoice-paid"] and paid.secret == "OUJX2prdBbJxR77BZl01"
    assert all(s.secret and s.callback_url == URL for s in subscriptions)
    assert "5 created" in result.summary() and "1 already registered" in result.summary()


@responses.activate
def test_register_again_creates_nothing(mkp):
    records = [record(number, t, URL) for number, t in enumerate(MKP_EVENT_TYPES, start=1)]
    responses.get(WEBHOOKS, json=page(records, 1, None))
    creates = _creates()
    result = webhooks_register(provider=Provider.MKP, url=URL, client=mkp)
    assert result.created == [] and len(result.kept) == 6
    assert sum(c.call_count for c in creates) == 0
    assert WebhookSubscription.objects.count() == 6


@responses.activate
def test_a_provider_error_is_a_plain_validation_error(mkp):
    responses.get(WEBHOOKS, json={"message": "Unauthenticated."}, status=401)
    with pytest.raises(ValidationError, match="MKP_API_KEY"):
        webhooks_register(provider=Provider.MKP, url=URL, client=mkp)


def test_an_address_is_required(settings):
    settings.WEBHOOK_BASE_URL = ""
    with pytest.raises(ValidationError, match="WEBHOOK_BASE_URL"):
        webhooks_register(provider=Provider.MKP)
    with pytest.raises(ValidationError, match="not a web address"):
        webhooks_register(provider=Provider.MKP, url="webhooks please")


@responses.activate
def test_the_command_uses_webhook_base_url(mkp, settings, capsys):
    settings.WEBHOOK_BASE_URL = "https://bo.example.com/"
    responses.get(WEBHOOKS, json=page([], 1, None))
    _creates()
    call_command("register_webhooks", "--provider", "mkp")
    assert "6 created" in capsys.readouterr().out
    assert set(WebhookSubscription.objects.values_list("callback_url", flat=True)) == {URL}


def test_the_command_reports_a_missing_address(settings):
    settings.WEBHOOK_BASE_URL = ""
    with pytest.raises(CommandError, match="WEBHOOK_BASE_URL"):
        call_command("register_webhooks")


@responses.activate
def test_a_record_we_cannot_read_stops_register_and_refresh_before_any_change(mkp):
    from invoices.webhooks.registration import webhooks_refresh

    ours = WebhookSubscription.objects.create(
        provider=Provider.MKP,
        remote_id="wbh_ours",
        event_types=["invoice-paid"],
        callback_url=URL,
        secret="s3cret",
    )
    unreadable = {**record(1, "invoice-paid", URL), "id": {"not": "an id"}}
    responses.get(WEBHOOKS, json=page([unreadable], 1, None))
    creates = _creates()
    for act in (
        lambda: webhooks_register(provider=Provider.MKP, url=URL, client=mkp),
        lambda: webhooks_refresh(provider=Provider.MKP, client=mkp),
    ):
        with pytest.raises(ValidationError, match="1 webhook record"):
            act()
    assert sum(c.call_count for c in creates) == 0
    assert list(WebhookSubscription.objects.all()) == [ours] and ours.secret == "s3cret"

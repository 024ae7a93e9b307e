"""Connect Qonto against the sandbox's OAuth server over real HTTP, then the Qonto webhook
subscriptions it opens: registered, refreshed and deleted from the admin and the command."""

from urllib.parse import urlsplit

import pytest
import requests
from django.contrib.admin import helpers
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.urls import reverse

from invoices.models import Provider, ProviderToken, WebhookSubscription
from invoices.providers import client_for, is_configured
from invoices.roles import ADMIN, CLERK
from invoices.services.qonto_connect import SESSION_KEY
from tests.invoices.test_permissions import staff_with

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:invoices_webhooksubscription_changelist"
CALLBACK = "http://127.0.0.1:8999/webhooks/qonto/"


@pytest.fixture
def qonto_oauth(sandbox, settings):
    settings.QONTO_CLIENT_ID = "sandbox-client"
    settings.QONTO_CLIENT_SECRET = "sandbox-client-secret"
    settings.QONTO_AUTHORIZE_URL = f"{sandbox.qonto_oauth_url}/auth"
    settings.QONTO_TOKEN_URL = f"{sandbox.qonto_oauth_url}/token"
    settings.WEBHOOK_BASE_URL = "http://127.0.0.1:8999"
    yield sandbox
    requests.post(
        f"{sandbox.admin_url}/config", json={"qonto_oauth_deny": False}, timeout=10
    ).raise_for_status()


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(staff_with(django_user_model, "adam", group=ADMIN))
    return client


def token_requests(sandbox) -> int:
    stats = requests.get(f"{sandbox.admin_url}/stats", timeout=10).json()
    return sum(n for route, n in stats["requests"]["by_route"].items() if route == "qonto.oauth_token")


def start(client, sandbox) -> str:
    """Connect Qonto clicked: the redirect to the sandbox's authorize page, followed; returns our
    callback address as the sandbox sends the browser back to it."""
    response = client.get(reverse("admin:invoices_webhooksubscription_connect_qonto"))
    assert response.status_code == 302
    authorize = response["Location"]
    assert authorize.startswith(f"{sandbox.qonto_oauth_url}/auth?")
    back = requests.get(authorize, allow_redirects=False, timeout=10)
    assert back.status_code == 302
    return back.headers["Location"]


def come_back(client, location: str):
    parts = urlsplit(location)
    assert parts.path == reverse("admin:invoices_webhooksubscription_connect_qonto_done")
    return client.get(f"{parts.path}?{parts.query}")


def messages_of(response) -> str:
    return " ".join(str(m) for m in get_messages(response.wsgi_request))


def test_connect_qonto_stores_the_tokens_that_every_qonto_request_then_uses(admin_client, qonto_oauth):
    assert is_configured(Provider.QONTO)  # the API key, from the sandbox fixture
    response = come_back(admin_client, start(admin_client, qonto_oauth))
    assert response.status_code == 302 and response["Location"] == reverse(CHANGELIST)
    assert "Qonto is connected" in messages_of(response)
    stored = ProviderToken.objects.get(provider=Provider.QONTO).data
    assert stored["access_token"].startswith("ory_at_") and stored["refresh_token"].startswith("ory_rt_")
    assert SESSION_KEY not in admin_client.session
    # A fresh client, as any worker builds it, now sends the stored access token.
    client = client_for(Provider.QONTO)
    assert client.auth_headers()["Authorization"] == f"Bearer {stored['access_token']}"
    assert client.list_webhook_subscriptions().items == []  # only a token with the webhook scope gets this
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert stored["access_token"] not in page and stored["refresh_token"] not in page


def test_connect_works_with_oauth_only(admin_client, qonto_oauth, settings):
    settings.QONTO_LOGIN = settings.QONTO_SECRET_KEY = ""
    assert not is_configured(Provider.QONTO)
    come_back(admin_client, start(admin_client, qonto_oauth))
    assert is_configured(Provider.QONTO)
    assert client_for(Provider.QONTO).list_invoices().number == 1


def test_a_state_from_elsewhere_is_refused_before_any_token_request(admin_client, qonto_oauth):
    location = start(admin_client, qonto_oauth)
    forged = location.replace("state=", "state=x")
    response = come_back(admin_client, forged)
    assert "does not belong to a Connect Qonto started in this session" in messages_of(response)
    assert token_requests(qonto_oauth) == 0
    assert not ProviderToken.objects.exists()
    # The state is used up: the genuine answer is refused too now.
    response = come_back(admin_client, location)
    assert "does not belong" in messages_of(response)
    assert token_requests(qonto_oauth) == 0


def test_an_answer_without_a_pending_connect_is_refused(admin_client, qonto_oauth):
    response = admin_client.get(
        reverse("admin:invoices_webhooksubscription_connect_qonto_done"),
        {"code": "ory_ac_x", "state": "s" * 43},
    )
    assert response.status_code == 302 and "does not belong" in messages_of(response)
    assert token_requests(qonto_oauth) == 0 and not ProviderToken.objects.exists()


def test_an_expired_state_is_refused(admin_client, qonto_oauth):
    location = start(admin_client, qonto_oauth)
    session = admin_client.session
    session[SESSION_KEY] = {**session[SESSION_KEY], "expires": 0}
    session.save()
    response = come_back(admin_client, location)
    assert "longer than 10 minutes" in messages_of(response)
    assert token_requests(qonto_oauth) == 0 and not ProviderToken.objects.exists()


def test_access_denied_at_qonto_is_a_plain_message(admin_client, qonto_oauth):
    requests.post(
        f"{qonto_oauth.admin_url}/config", json={"qonto_oauth_deny": True}, timeout=10
    ).raise_for_status()
    response = come_back(admin_client, start(admin_client, qonto_oauth))
    assert response.status_code == 302
    assert "the access was refused at Qonto" in messages_of(response)
    assert token_requests(qonto_oauth) == 0 and not ProviderToken.objects.exists()


def test_a_code_used_twice_is_a_plain_message(admin_client, qonto_oauth):
    location = start(admin_client, qonto_oauth)
    come_back(admin_client, location)
    first = ProviderToken.objects.get().data
    # The same answer again, with a state of its own (as a replay from another tab would need).
    session = admin_client.session
    state = dict(p.split("=", 1) for p in urlsplit(location).query.split("&"))["state"]
    session[SESSION_KEY] = {
        "state": state,
        "expires": 4e9,
        "redirect_uri": "http://testserver" + urlsplit(location).path,
    }
    session.save()
    response = come_back(admin_client, location)
    assert "Qonto was not connected" in messages_of(response) and "invalid_grant" in messages_of(response)
    assert ProviderToken.objects.get().data == first


def test_without_client_credentials_nothing_starts(admin_client, qonto_oauth, settings):
    settings.QONTO_CLIENT_SECRET = ""
    response = admin_client.get(reverse("admin:invoices_webhooksubscription_connect_qonto"))
    assert response.status_code == 302 and response["Location"] == reverse(CHANGELIST)
    assert "QONTO_CLIENT_SECRET" in messages_of(response)


# Subscriptions ------------------------------------------------------------------------------------
def sandbox_subscriptions(sandbox) -> list[dict]:
    return requests.get(f"{sandbox.admin_url}/webhooks", timeout=10).json()["qonto"]


def test_registering_qonto_webhooks_needs_a_connection_first(admin_client, qonto_oauth):
    response = admin_client.post(
        reverse("admin:invoices_webhooksubscription_register_qonto"), {"url": CALLBACK}
    )
    assert response.status_code == 200
    assert "Connect Qonto first" in response.content.decode()
    assert not WebhookSubscription.objects.exists()
    with pytest.raises(CommandError, match="Connect Qonto first"):
        call_command("register_webhooks", "--provider", "qonto")


def test_register_refresh_and_delete_at_qonto(admin_client, qonto_oauth, capsys):
    come_back(admin_client, start(admin_client, qonto_oauth))
    register = reverse("admin:invoices_webhooksubscription_register_qonto")
    assert CALLBACK in admin_client.get(register).content.decode()  # from WEBHOOK_BASE_URL

    response = admin_client.post(register, {"url": CALLBACK})
    assert response.status_code == 302 and "2 created" in messages_of(response)
    mine = WebhookSubscription.objects.get(provider=Provider.QONTO)
    assert mine.event_types == ["v1/client-invoices", "v1/clients"] and mine.callback_url == CALLBACK
    assert mine.secret.startswith("whsec_") and 32 <= len(mine.secret) <= 128
    assert [s["id"] for s in sandbox_subscriptions(qonto_oauth)] == [mine.remote_id]
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert mine.secret not in page and mine.secret[-4:] in page

    # Again, from the command: nothing new anywhere.
    call_command("register_webhooks", "--provider", "qonto")
    assert "0 created" in capsys.readouterr().out
    assert len(sandbox_subscriptions(qonto_oauth)) == 1 and WebhookSubscription.objects.count() == 1

    # One made at Qonto by someone else shows after a refresh; one gone there goes here too.
    other = client_for(Provider.QONTO).create_webhook_subscription(
        url="http://127.0.0.1:8999/elsewhere/", types=["v1/clients"]
    )
    WebhookSubscription.objects.create(
        provider=Provider.QONTO, remote_id="gone", callback_url=CALLBACK, secret="s" * 40
    )
    response = admin_client.post(reverse("admin:invoices_webhooksubscription_refresh"))
    assert (
        "Qonto: 2 subscription(s) at the provider (1 new here), 1 no longer there removed here."
        in messages_of(response)
    )
    assert set(
        WebhookSubscription.objects.filter(provider=Provider.QONTO).values_list("remote_id", flat=True)
    ) == {
        mine.remote_id,
        other.remote_id,
    }
    assert WebhookSubscription.objects.get(remote_id=mine.remote_id).secret == mine.secret  # kept

    # Delete at the provider: a confirmation first, then gone at Qonto and here.
    changelist = reverse(CHANGELIST)
    data = {"action": "delete_at_provider_action", helpers.ACTION_CHECKBOX_NAME: [mine.pk], "index": "0"}
    confirm = admin_client.post(changelist, data)
    assert confirm.status_code == 200 and "Delete at the provider" in confirm.content.decode()
    assert len(sandbox_subscriptions(qonto_oauth)) == 2
    response = admin_client.post(changelist, {**data, "post": "yes"})
    assert response.status_code == 302 and "1 subscription is deleted" in messages_of(response)
    assert [s["id"] for s in sandbox_subscriptions(qonto_oauth)] == [other.remote_id]
    assert not WebhookSubscription.objects.filter(remote_id=mine.remote_id).exists()

    # Registering again creates exactly what is missing.
    response = admin_client.post(register, {"url": CALLBACK})
    assert "2 created" in messages_of(response) and len(sandbox_subscriptions(qonto_oauth)) == 2


def test_the_command_registers_at_both_providers(admin_client, qonto_oauth, capsys):
    come_back(admin_client, start(admin_client, qonto_oauth))
    call_command("register_webhooks", "--provider", "all")
    out = capsys.readouterr().out
    assert "MijnKlantportaal webhooks for http://127.0.0.1:8999/webhooks/mkp/: 6 created" in out
    assert "Qonto webhooks for http://127.0.0.1:8999/webhooks/qonto/: 2 created" in out
    with pytest.raises(CommandError, match="one provider"):
        call_command("register_webhooks", "--provider", "all", "--url", CALLBACK)


def test_an_address_in_clear_over_the_network_is_refused(admin_client, qonto_oauth):
    response = admin_client.post(
        reverse("admin:invoices_webhooksubscription_register_mkp"),
        {"url": "http://bo.example.com/webhooks/mkp/"},
    )
    assert "must start with https://" in response.content.decode()
    assert not WebhookSubscription.objects.exists()


def test_managing_subscriptions_is_refused_without_the_permission(client, django_user_model, qonto_oauth):
    clerk = staff_with(django_user_model, "clara", group=CLERK, perms=("invoices.view_webhooksubscription",))
    client.force_login(clerk)
    subscription = WebhookSubscription.objects.create(
        provider=Provider.MKP,
        remote_id="wbh_1",
        event_types=["invoice-paid"],
        callback_url=CALLBACK,
        secret="x" * 20,
    )
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "connect-qonto-link" not in page and "refresh-subscriptions" not in page
    assert 'value="delete_at_provider_action"' not in page
    data = {
        "action": "delete_at_provider_action",
        helpers.ACTION_CHECKBOX_NAME: [subscription.pk],
        "post": "yes",
    }
    assert client.post(reverse(CHANGELIST), data).status_code == 403
    for name in ("connect_qonto", "connect_qonto_done", "refresh", "register_qonto"):
        url = reverse(f"admin:invoices_webhooksubscription_{name}")
        assert client.get(url).status_code == 403 and client.post(url).status_code == 403, name
    assert WebhookSubscription.objects.filter(pk=subscription.pk).exists()
    assert len(requests.get(f"{qonto_oauth.admin_url}/webhooks", timeout=10).json()["mkp"]) == 0
    assert SESSION_KEY not in client.session


def test_managing_webhooks_does_not_give_connecting_the_qonto_account(client, django_user_model, qonto_oauth):
    manager = staff_with(
        django_user_model,
        "mia",
        group=CLERK,
        perms=("invoices.view_webhooksubscription", "invoices.manage_webhooks"),
    )
    client.force_login(manager)
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "refresh-subscriptions" in page and "connect-qonto-link" not in page
    for name in ("connect_qonto", "connect_qonto_done"):
        url = reverse(f"admin:invoices_webhooksubscription_{name}")
        assert client.get(url).status_code == 403 and client.post(url).status_code == 403, name
    assert SESSION_KEY not in client.session

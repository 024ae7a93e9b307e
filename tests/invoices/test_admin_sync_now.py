"""Starting a sync by hand from the sync runs page."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

pytestmark = pytest.mark.django_db
URL = reverse("admin:invoices_syncrun_sync_now")
LIST = reverse("admin:invoices_syncrun_changelist")


@pytest.fixture
def queued_syncs(monkeypatch):
    from invoices import tasks

    calls = []
    monkeypatch.setattr(tasks.sync_provider, "delay", lambda *args: calls.append(args))
    return calls


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_page_offers_a_button_per_configured_provider(admin_client, settings):
    settings.MKP_API_KEY = "key"
    settings.QONTO_LOGIN = settings.QONTO_SECRET_KEY = settings.QONTO_ACCESS_TOKEN = ""
    page = admin_client.get(LIST).content.decode()
    assert "Sync MijnKlantportaal now" in page
    assert "Sync Qonto now" not in page


def test_a_sync_is_queued_after_commit(
    admin_client, settings, queued_syncs, django_capture_on_commit_callbacks
):
    settings.MKP_API_KEY = "key"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(URL, {"provider": "mkp", "mode": "quick"}, follow=True)
    assert queued_syncs == [("mkp", "quick")]
    assert texts(response) == [
        "A quick sync of MijnKlantportaal is queued; it shows here when a worker starts it."
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"provider": "nowhere", "mode": "quick"}, "Choose a provider and a kind of sync."),
        ({"provider": "mkp", "mode": "everything"}, "Choose a provider and a kind of sync."),
        ({"provider": "qonto", "mode": "quick"}, "Qonto has no credentials configured: nothing to sync."),
    ],
)
def test_a_sync_that_cannot_run_is_said_plainly(
    admin_client, settings, queued_syncs, django_capture_on_commit_callbacks, data, message
):
    settings.QONTO_LOGIN = settings.QONTO_SECRET_KEY = settings.QONTO_ACCESS_TOKEN = ""
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(URL, data, follow=True)
    assert response.redirect_chain[-1][0] == LIST
    assert texts(response) == [message]
    assert queued_syncs == []

"""Provider wiring: OAuth tokens shared through the database, the credentials banner."""

from datetime import UTC, datetime, timedelta

import pytest
import responses

from invoices.models import Provider, ProviderToken
from invoices.providers import client_for, is_configured
from invoices.selectors import admin_warnings
from tests.invoices.helpers import seed

pytestmark = pytest.mark.django_db
TOKEN_URL = "https://oauth.example.test/oauth2/token"


@pytest.fixture
def oauth(settings, sandbox):
    settings.QONTO_LOGIN = ""
    settings.QONTO_SECRET_KEY = ""
    settings.QONTO_ACCESS_TOKEN = "expired-token"
    settings.QONTO_REFRESH_TOKEN = "refresh-1"
    settings.QONTO_CLIENT_ID = "client-id"
    settings.QONTO_CLIENT_SECRET = "client-secret"
    settings.QONTO_TOKEN_URL = TOKEN_URL
    seed(sandbox, invoices=3, customers=1)
    return sandbox


@responses.activate
def test_a_rotated_token_is_shared_by_every_worker_through_the_database(oauth):
    responses.add_passthru(oauth.base_url)
    responses.post(
        TOKEN_URL,
        json={"access_token": "sandbox-qonto-token", "refresh_token": "refresh-2", "expires_in": 3600},
    )
    first = client_for(Provider.QONTO)
    assert len(first.list_invoices().items) == 3
    stored = ProviderToken.objects.get(provider=Provider.QONTO).data
    assert stored["access_token"] == "sandbox-qonto-token"
    assert stored["refresh_token"] == "refresh-2"
    assert datetime.fromisoformat(stored["expires_at"]) > datetime.now(UTC) + timedelta(minutes=50)
    # Another process builds its own client: it uses the stored token and refreshes nothing.
    second = client_for(Provider.QONTO)
    assert len(second.list_invoices().items) == 3
    assert len([c for c in responses.calls if c.request.url == TOKEN_URL]) == 1
    assert "refresh_token=refresh-1" in responses.calls[0].request.body


def test_missing_credentials_are_announced(settings):
    settings.MKP_API_KEY = ""
    settings.QONTO_LOGIN = ""
    settings.QONTO_ACCESS_TOKEN = ""
    assert not is_configured(Provider.MKP)
    assert "MijnKlantportaal has no credentials configured" in " ".join(admin_warnings())

"""Django's debug page (DJANGO_DEBUG=1) and error mails never show a credential.

A real provider call, built by the product's own clients from settings (and, for OAuth, from the
rotated tokens in the database), fails inside the transport; the technical 500 page of that error
must show the frames and their variables, and none of the secrets.
"""

from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.test import RequestFactory
from django.views import debug

from config import error_reports
from invoices.models import Provider, ProviderToken
from invoices.providers import client_for

MKP_KEY = "mkp_live_7f3a9c2e5b8d4f1a6c0e9b7d3f5a8c2e"
QONTO_LOGIN = "acme-org-4821"
QONTO_SECRET = "qsk_9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a"
QONTO_ACCESS = "qat_configured_1b2c3d4e5f6a7b8c9d0e"
QONTO_REFRESH = "qrt_configured_0f9e8d7c6b5a4f3e2d1c"
QONTO_CLIENT_SECRET = "qcs_4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d"
# Rotated tokens live in the database only: no setting holds them.
ROTATED_ACCESS = "qat_rotated_6e5d4c3b2a1f0e9d8c7b6a5f"
ROTATED_REFRESH = "qrt_rotated_a1b2c3d4e5f6a7b8c9d0e1f2"
DJANGO_KEY = "dsk-" + "Zx8Kq2Lm9Np4Rs7Tv1Wy5Ab3Cd6Ef0Gh2Ij4Kl6Mn8Op0Qr"
DATABASE_PASSWORD = "db-pass-4711"
MKP_URL = "https://api.mijnklantportaal.test/v1"
QONTO_URL = "https://thirdparty.qonto.test"


class TransportDown(RuntimeError):
    pass


def broken_transport(self, request, **kwargs):
    """A transport that fails with the prepared request in hand, as a real one holds it."""
    outgoing = dict(request.headers)
    payload = request.body
    raise TransportDown(f"the connection broke after {len(outgoing)} headers, {len(payload or '')} bytes")


@pytest.fixture
def debug_settings(settings, monkeypatch):
    settings.DEBUG = True
    settings.SECRET_KEY = DJANGO_KEY
    settings.MKP_API_KEY = MKP_KEY
    settings.MKP_BASE_URL = MKP_URL
    settings.QONTO_BASE_URL = QONTO_URL
    settings.QONTO_LOGIN = QONTO_LOGIN
    settings.QONTO_SECRET_KEY = QONTO_SECRET
    settings.QONTO_ACCESS_TOKEN = ""
    settings.QONTO_REFRESH_TOKEN = ""
    settings.QONTO_CLIENT_ID = "backoffice-client"
    settings.QONTO_CLIENT_SECRET = QONTO_CLIENT_SECRET
    settings.QONTO_TOKEN_URL = "https://oauth.qonto.test/oauth2/token"
    monkeypatch.setattr(requests.Session, "send", broken_transport)
    debug.get_default_exception_reporter_filter.cache_clear()
    yield settings
    debug.get_default_exception_reporter_filter.cache_clear()


def debug_page(call) -> tuple[str, str]:
    """The HTML and text debug pages of the error ``call`` raises, as Django shows them."""
    request = RequestFactory().get("/admin/invoices/invoice/", HTTP_ACCEPT="text/html")
    with pytest.raises(Exception) as caught:
        call()
    exc_info = (caught.type, caught.value, caught.tb)
    html = debug.technical_500_response(request, *exc_info).content.decode()
    text = debug.get_exception_reporter_class(request)(request, *exc_info).get_traceback_text()
    return html, text


def assert_no_secret(pages: tuple[str, str], *secrets: str) -> None:
    for page in pages:
        for secret in secrets:
            assert secret not in page
            assert secret.replace("_", "%5F") not in page


def assert_debug_page_with_frames(pages: tuple[str, str], shown: str) -> None:
    html, text = pages
    assert "TransportDown" in html and "Local vars" in html, "the page is the debug page, with its frames"
    assert f"<pre>&#x27;{shown}&#x27;</pre>" in html, "a variable that is no secret is shown"
    assert "the connection broke after" in html and "the connection broke after" in text


def test_a_mijnklantportaal_call_shows_no_bearer_key(debug_settings):
    pages = debug_page(lambda: client_for(Provider.MKP).list_invoices(page=3))

    assert_debug_page_with_frames(pages, f"{MKP_URL}/customer-invoices")
    assert_no_secret(pages, MKP_KEY, DJANGO_KEY)
    assert "&#x27;Authorization&#x27;: &#x27;********************&#x27;" in pages[0], "the header is named"


@pytest.mark.django_db
def test_a_qonto_call_with_the_api_key_shows_no_login_secret(debug_settings):
    pages = debug_page(lambda: client_for(Provider.QONTO).get_invoice("inv-123"))

    assert_debug_page_with_frames(pages, f"{QONTO_URL}/v2/client_invoices/inv-123")
    assert_no_secret(pages, QONTO_SECRET, f"{QONTO_LOGIN}:{QONTO_SECRET}", QONTO_CLIENT_SECRET, DJANGO_KEY)


def rotated_tokens(debug_settings, *, expires_in: timedelta) -> None:
    """OAuth tokens in the settings, and newer ones a worker rotated into the database."""
    debug_settings.QONTO_ACCESS_TOKEN = QONTO_ACCESS
    debug_settings.QONTO_REFRESH_TOKEN = QONTO_REFRESH
    ProviderToken.objects.create(
        provider=Provider.QONTO,
        data={
            "access_token": ROTATED_ACCESS,
            "refresh_token": ROTATED_REFRESH,
            "expires_at": (datetime.now(UTC) + expires_in).isoformat(),
        },
    )


@pytest.mark.django_db
def test_a_qonto_call_with_rotated_oauth_tokens_from_the_database_shows_none(debug_settings):
    rotated_tokens(debug_settings, expires_in=timedelta(hours=1))

    pages = debug_page(lambda: client_for(Provider.QONTO).get_invoice("inv-456"))

    assert_debug_page_with_frames(pages, f"{QONTO_URL}/v2/client_invoices/inv-456")
    assert_no_secret(pages, ROTATED_ACCESS, ROTATED_REFRESH, QONTO_ACCESS, QONTO_REFRESH, QONTO_CLIENT_SECRET)


@pytest.mark.django_db
def test_a_failed_token_renewal_shows_neither_the_refresh_token_nor_the_client_secret(debug_settings):
    rotated_tokens(debug_settings, expires_in=timedelta(minutes=-1))

    pages = debug_page(lambda: client_for(Provider.QONTO).get_invoice("inv-789"))

    assert_debug_page_with_frames(pages, "https://oauth.qonto.test/oauth2/token")
    assert "grant_type" in pages[0], "the renewal's form is shown, without its secrets"
    assert_no_secret(pages, ROTATED_ACCESS, ROTATED_REFRESH, QONTO_ACCESS, QONTO_REFRESH, QONTO_CLIENT_SECRET)


def test_django_s_own_filter_would_show_the_key(debug_settings):
    """The scenario is a real leak: with Django's default filter the key is on the page."""
    debug_settings.DEFAULT_EXCEPTION_REPORTER_FILTER = "django.views.debug.SafeExceptionReporterFilter"
    debug_settings.DEFAULT_EXCEPTION_REPORTER = "django.views.debug.ExceptionReporter"
    debug.get_default_exception_reporter_filter.cache_clear()

    html, _ = debug_page(lambda: client_for(Provider.MKP).list_invoices(page=3))

    assert MKP_KEY in html


def test_request_headers_and_urls_with_a_password_are_cleansed(debug_settings):
    # Django's development server copies its environment into request.META.
    database_url = f"postgres://backoffice:{DATABASE_PASSWORD}@db.internal:5432/backoffice"

    def view_that_fails():
        request.META["DATABASE_URL"] = database_url
        raise RuntimeError(f"could not reach {database_url}")

    request = RequestFactory().get(
        "/admin/", HTTP_AUTHORIZATION=f"Bearer {ROTATED_ACCESS}", HTTP_X_QONTO_STAGING_TOKEN=QONTO_REFRESH
    )
    with pytest.raises(RuntimeError) as caught:
        view_that_fails()
    html = debug.technical_500_response(request, caught.type, caught.value, caught.tb).content.decode()

    assert "db.internal:5432/backoffice" in html and "could not reach" in html
    for secret in (ROTATED_ACCESS, QONTO_REFRESH, DATABASE_PASSWORD):
        assert secret not in html


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: ********************"),
        ("{'Authorization': 'acme-org:qsk_1'}", "{'Authorization': '********************'}"),
        ("b'Authorization: acme:qsk_1\\r\\nHost: x'", "b'Authorization: ********************\\r\\nHost: x'"),
        ("sent with bearer abc.def-ghi", "sent with bearer ********************"),
        (
            "Tokens(access_token='qat_1', refresh_token='qrt_1')",
            "Tokens(access_token='********************', refresh_token='********************')",
        ),
        ("{b'client_secret': b'qcs_1'}", "{b'client_secret': b'********************'}"),
        (
            "grant_type=refresh_token&client_id=backoffice&refresh_token=qrt_1",
            "grant_type=refresh_token&client_id=backoffice&refresh_token=********************",
        ),
        ("redis://:pw-1@redis.internal:6379/0", "redis://:********************@redis.internal:6379/0"),
        # Words that only look like the shapes stay as they are.
        ("Qonto's token service did not answer in time.", "Qonto's token service did not answer in time."),
        ("basic details, https://example.com/a@b", "basic details, https://example.com/a@b"),
    ],
)
def test_credentials_are_recognised_by_their_shape(text, expected):
    assert error_reports.redact_text(text, []) == expected


def test_every_secret_looking_string_setting_is_searched_for(settings):
    settings.STRIPE_WEBHOOK_SECRET = "whsec_0123456789"
    settings.QONTO_STAGING_TOKEN = "short"
    found = error_reports.configured_secrets()
    assert "whsec_0123456789" in found
    assert "short" not in found, "too short to search for"
    assert settings.QONTO_TOKEN_URL not in found, "a URL setting describes a secret, it is none"

"""The shared HTTP client: the environment's proxy and CA settings, read once per host."""

import pytest
import responses

from integrations import base
from integrations.mkp.client import DEFAULT_BASE_URL, MijnKlantportaalClient

INVOICES = f"{DEFAULT_BASE_URL}/customer-invoices"


@pytest.fixture
def environment(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    base._proxies_for.cache_clear()
    yield monkeypatch
    base._proxies_for.cache_clear()


def test_the_proxy_of_the_environment_is_used_and_no_proxy_is_honoured(environment):
    environment.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    environment.setenv("NO_PROXY", "files.example")
    assert base.environment_proxies(INVOICES)["https"] == "http://proxy.internal:3128"
    assert base.environment_proxies("https://files.example/download/1.pdf") == {}


@responses.activate
def test_every_request_carries_the_proxies_and_the_ca_bundle_of_the_environment(environment):
    environment.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    environment.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/company-ca.pem")
    responses.get(INVOICES, json={"data": [], "current_page": 1, "next_page_url": None})
    client = MijnKlantportaalClient(api_key="key")
    client.list_invoices()
    sent = responses.calls[0].request.req_kwargs
    assert sent["proxies"]["https"] == "http://proxy.internal:3128"
    assert sent["verify"] == "/etc/ssl/company-ca.pem"
    assert client.session.trust_env is False, "the environment is not read again for every request"


@responses.activate
def test_without_proxy_settings_requests_go_direct(environment):
    responses.get(INVOICES, json={"data": [], "current_page": 1, "next_page_url": None})
    MijnKlantportaalClient(api_key="key").list_invoices()
    assert not responses.calls[0].request.req_kwargs["proxies"]

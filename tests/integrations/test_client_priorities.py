"""The clients at the HTTP boundary: the priority they ask the limiter with, a 429 that was not
applied, and a Qonto import answer that does not name every file sent."""

import pytest
import responses
from responses import matchers

from integrations import errors
from integrations.mkp.client import DEFAULT_BASE_URL as MKP_BASE_URL
from integrations.mkp.client import MijnKlantportaalClient
from integrations.qonto.client import DEFAULT_BASE_URL as QONTO_BASE_URL
from integrations.qonto.client import QontoClient
from integrations.ratelimit import SCAN, STAFF, RateLimiter
from integrations.types import PdfFile

PDF = b"%PDF-1.7\n%%EOF\n"


class Recorder(RateLimiter):
    def __init__(self):
        self.asked = []

    def try_acquire(self, key, windows, priority=STAFF):
        self.asked.append((priority, windows))
        return 0.0


@pytest.fixture
def mocked():
    with responses.RequestsMock() as rsps:
        yield rsps


@pytest.mark.parametrize("priority", [STAFF, SCAN])
def test_the_client_asks_the_limiter_with_its_priority_and_its_margined_windows(mocked, priority):
    mocked.get(
        f"{MKP_BASE_URL}/customer-invoices", json={"data": [], "current_page": 1, "next_page_url": None}
    )
    limiter = Recorder()
    MijnKlantportaalClient(api_key="k", rate_limiter=limiter, priority=priority).list_invoices(page=1)
    ((asked, windows),) = limiter.asked
    assert asked == priority
    assert [w.limit for w in windows] == [57]


def test_a_429_from_the_provider_is_a_refusal_with_its_retry_after(mocked):
    mocked.post(
        f"{MKP_BASE_URL}/customer-invoices",
        status=429,
        json={"code": 429, "message": "Too many requests."},
        headers={"retry-after": "3"},
    )
    client = MijnKlantportaalClient(api_key="k")
    with pytest.raises(errors.ProviderRateLimited) as caught:
        client.request("POST", "customer-invoices", data={"invoiceNumber": "1"})
    assert caught.value.retry_after == 3.0
    assert not caught.value.outcome_unknown


def _files():
    return [PdfFile(name="1-a.pdf", content=PDF), PdfFile(name="2-b.pdf", content=PDF)]


def test_an_import_answer_that_does_not_name_a_file_sent_is_a_typed_error(mocked):
    mocked.post(
        f"{QONTO_BASE_URL}/v2/client_invoices/bulk",
        json={"client_invoices": [{"invoice_id": "inv-1", "file_name": "1-a.pdf"}]},
        match=[matchers.header_matcher({"X-Qonto-Idempotency-Key": "key-1"})],
    )
    client = QontoClient(login="org", secret_key="secret")
    with pytest.raises(errors.ProviderIncompleteAnswer) as caught:
        client.import_invoices(_files(), idempotency_key="key-1")
    assert caught.value.answered == [("1-a.pdf", "inv-1")]
    assert "2-b.pdf" in str(caught.value)
    assert caught.value.retryable and caught.value.outcome_unknown


def test_a_complete_import_answer_is_returned_as_it_came(mocked):
    answer = [
        {"invoice_id": "inv-2", "file_name": "2-b.pdf"},
        {"invoice_id": "inv-1", "file_name": "1-a.pdf"},
    ]
    mocked.post(f"{QONTO_BASE_URL}/v2/client_invoices/bulk", json={"client_invoices": answer})
    client = QontoClient(login="org", secret_key="secret")
    assert client.import_invoices(_files()) == [("2-b.pdf", "inv-2"), ("1-a.pdf", "inv-1")]

"""MijnKlantportaal's webhook records: list (paged), create."""

import pytest
import responses
from responses import matchers

from integrations import errors
from integrations.mkp.client import DEFAULT_BASE_URL, MijnKlantportaalClient

API_KEY = "mkp_live_4f9cS3cr3tK3y"
WEBHOOKS = f"{DEFAULT_BASE_URL}/webhooks"


def record(number: int, event_type: str, url: str = "https://bo.example.com/webhooks/mkp/") -> dict:
    return {
        "id": f"wbh_{number:014d}",
        "type": event_type,
        "url": url,
        "secret": f"OUJX2prdBbJxR77BZl{number:02d}",
        "createdAt": "2024-04-29T21:00:00+02:00",
    }


def page(items: list, number: int, next_page: int | None) -> dict:
    return {
        "current_page": number,
        "data": items,
        "next_page_url": f"{WEBHOOKS}?page={next_page}" if next_page else None,
        "per_page": 15,
        "path": WEBHOOKS,
    }


@pytest.fixture
def client():
    return MijnKlantportaalClient(api_key=API_KEY)


@responses.activate
def test_list_webhooks_follows_the_pages(client):
    for number, items, next_page in (
        (1, [record(1, "invoice-paid")], 2),
        (2, [record(2, "invoice-created")], None),
    ):
        responses.get(
            WEBHOOKS,
            match=[
                matchers.query_param_matcher({"page": str(number)}),
                matchers.header_matcher({"Authorization": f"Bearer {API_KEY}"}),
            ],
            json=page(items, number, next_page),
        )
    records = [webhook for p in client.iter_webhooks() for webhook in p.items]
    assert [(w.remote_id, w.event_type) for w in records] == [
        ("wbh_00000000000001", "invoice-paid"),
        ("wbh_00000000000002", "invoice-created"),
    ]
    assert records[0].secret == "OUJX2prdBbJxR77BZl01"
    assert "OUJX" not in repr(records[0])


@responses.activate
def test_create_webhook_sends_url_and_type(client):
    responses.post(
        WEBHOOKS,
        match=[
            matchers.json_params_matcher(
                {"url": "https://bo.example.com/webhooks/mkp/", "type": "invoice-paid"}
            )
        ],
        json=record(7, "invoice-paid"),
        status=201,
    )
    created = client.create_webhook(url="https://bo.example.com/webhooks/mkp/", event_type="invoice-paid")
    assert created.remote_id == "wbh_00000000000007" and created.secret == "OUJX2prdBbJxR77BZl07"


@responses.activate
def test_a_refused_create_is_a_typed_error(client):
    responses.post(WEBHOOKS, json={"message": "The url must be a valid URL."}, status=422)
    with pytest.raises(errors.ProviderValidationError, match="valid URL"):
        client.create_webhook(url="nope", event_type="invoice-paid")


@responses.activate
def test_a_record_without_id_is_a_typed_error(client):
    responses.post(WEBHOOKS, json={"type": "invoice-paid", "url": "x"}, status=201)
    with pytest.raises(errors.ProviderBadResponse):
        client.create_webhook(url="https://bo.example.com/webhooks/mkp/", event_type="invoice-paid")

"""Payments made at the providers reach the mirror through their webhooks alone: the sandbox sends
signed deliveries over real HTTP to the product's endpoints (pytest-django's live server), a real
Celery worker on PostgreSQL and Redis processes them, and no sync runs meanwhile."""

import time

import pytest
import requests
from django.urls import reverse

from invoices.models import Invoice, InvoiceStatus, Provider, SyncRun, WebhookDelivery, WebhookSubscription
from invoices.sync import MODE_CUSTOMERS, MODE_FULL, sync_provider
from invoices.webhooks.events import QONTO_INVOICES
from invoices.webhooks.registration import webhooks_register
from tests.integration.conftest import wait_for
from tests.invoices.helpers import remote_state, seed, set_config

pytestmark = pytest.mark.services

QONTO_OAUTH = {"Authorization": "Bearer sandbox-qonto-token"}  # the sandbox's all-scopes token


def mirror(sandbox, settings, *, invoices: int) -> None:
    """Seed both providers and mirror them. Set-up, not what is measured: outside the request
    budget the worker uses (MijnKlantportaal's 57 a minute would otherwise go to the mirroring)."""
    seed(sandbox, invoices=invoices, customers=5)
    budget, settings.RATE_LIMIT_URL = settings.RATE_LIMIT_URL, "off"
    for provider in Provider.values:
        for mode in (MODE_CUSTOMERS, MODE_FULL):
            run = sync_provider(provider=provider, mode=mode)
            assert run.status == SyncRun.Status.SUCCEEDED, run.error
    settings.RATE_LIMIT_URL = budget


def register(sandbox, live_server, settings) -> None:
    """MijnKlantportaal's six records through the product's registration; a Qonto subscription made
    with the sandbox's OAuth token and kept as the product's registration keeps it."""
    budget, settings.RATE_LIMIT_URL = settings.RATE_LIMIT_URL, "off"
    registration = webhooks_register(provider=Provider.MKP, url=live_server.url + reverse("webhook_mkp"))
    settings.RATE_LIMIT_URL = budget
    assert len(registration.created) == 6
    callback = live_server.url + reverse("webhook_qonto")
    answer = requests.post(
        f"{sandbox.qonto_base_url}/v2/webhook_subscriptions",
        json={"callback_url": callback, "types": [QONTO_INVOICES]},
        headers=QONTO_OAUTH,
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    WebhookSubscription.objects.create(
        provider=Provider.QONTO,
        remote_id=created["id"],
        event_types=created["types"],
        callback_url=callback,
        secret=created["secret"],
    )


def unpaid(sandbox, provider: str, count: int) -> list[str]:
    rows = remote_state(sandbox, provider)
    ids = [r["id"] for r in rows if (not r["paid"] if provider == Provider.MKP else r["status"] == "unpaid")]
    assert len(ids) >= count, f"the seed has only {len(ids)} unpaid {provider} invoices"
    return ids[:count]


def sandbox_get(sandbox, path: str) -> dict:
    answer = requests.get(f"{sandbox.admin_url}{path}", timeout=10)
    answer.raise_for_status()
    return answer.json()


def provider_requests(sandbox) -> dict[str, int]:
    counted = sandbox_get(sandbox, "/stats")["requests"]
    return {Provider.MKP: counted["mkp"], Provider.QONTO: counted["qonto"]}


def pay_and_wait(sandbox, chosen: dict[str, list[str]], *, timeout: float) -> dict:
    """Pay the chosen invoices at the sandbox and wait until all are paid here; what it cost."""
    runs = SyncRun.objects.count()
    before = provider_requests(sandbox)
    started = time.monotonic()
    for provider, ids in chosen.items():
        for remote_id in ids:
            requests.post(f"{sandbox.admin_url}/pay/{provider}/{remote_id}", timeout=10).raise_for_status()
    everything = [(p, remote_id) for p, ids in chosen.items() for remote_id in ids]

    def paid_here() -> int:
        return sum(
            Invoice.objects.filter(provider=p, remote_id__in=ids, status=InvoiceStatus.PAID).count()
            for p, ids in chosen.items()
        )

    def state() -> str:
        deliveries = WebhookDelivery.objects.values_list("provider", "verified", "processed_at", "error")
        return f"{paid_here()} of {len(everything)} paid here; deliveries: {list(deliveries)[:20]}"

    wait_for(lambda: paid_here() == len(everything), timeout=timeout, what="every payment", detail=state)
    seconds = time.monotonic() - started
    # Repeats still on their way are processed (as repeats) before anything is counted.
    wait_for(
        lambda: (
            sandbox_get(sandbox, "/webhooks/deliveries")["counts"]["pending"] == 0
            and not WebhookDelivery.objects.filter(processed_at=None).exists()
        ),
        timeout=20,
        what="every delivery sent and processed",
        detail=state,
    )
    after = provider_requests(sandbox)
    assert SyncRun.objects.count() == runs, "a sync ran: the payments must come through the webhooks"
    hub = sandbox_get(sandbox, "/webhooks/deliveries")["counts"]
    stored = WebhookDelivery.objects.all()
    return {
        "seconds": seconds,
        "requests": {p: after[p] - before[p] for p in Provider.values},
        "sent": hub,
        "stored": stored.count(),
        "verified": stored.filter(verified=True).count(),
        "processed": stored.filter(processed_at__isnull=False, duplicate_of=None).count(),
        "duplicates": stored.exclude(duplicate_of=None).count(),
    }


def report(title: str, cost: dict) -> None:
    requests_made = cost["requests"]
    print(
        f"\n{title}: all paid here {cost['seconds']:.1f} s after the first payment at the sandbox;"
        f" provider requests {sum(requests_made.values())} (MijnKlantportaal {requests_made['mkp']},"
        f" Qonto {requests_made['qonto']}); the sandbox sent {cost['sent']['events']} events in"
        f" {cost['sent']['attempts']} attempts; deliveries stored {cost['stored']}, processed"
        f" {cost['processed']}, repeats {cost['duplicates']}"
    )


@pytest.fixture
def receiving(workers, sandbox, live_server, settings):
    """Both providers mirrored, the webhooks registered at the sandbox pointing at the live server,
    and no webhook fault on (nor left on afterwards)."""
    set_config(sandbox, webhook_duplicate=False, webhook_out_of_order=False, webhook_delay_ms=0)
    mirror(sandbox, settings, invoices=120)
    register(sandbox, live_server, settings)
    yield sandbox
    set_config(sandbox, webhook_duplicate=False)


def test_a_hundred_payments_at_the_providers_arrive_through_their_webhooks(receiving, workers):
    chosen = {p: unpaid(receiving, p, 50) for p in Provider.values}
    workers.start(1)

    cost = pay_and_wait(receiving, chosen, timeout=45)

    report("100 payments (50 MijnKlantportaal, 50 Qonto)", cost)
    assert cost["sent"]["events"] == cost["sent"]["delivered"] == 100
    assert cost["stored"] == cost["verified"] == cost["processed"] == 100
    assert cost["duplicates"] == 0
    # One GET of the named invoice per event, and nothing else.
    assert cost["requests"] == {Provider.MKP: 50, Provider.QONTO: 50}


def test_each_event_delivered_twice_is_refreshed_once(receiving, workers):
    chosen = {p: unpaid(receiving, p, 20) for p in Provider.values}
    set_config(receiving, webhook_duplicate=True)
    workers.start(1)

    cost = pay_and_wait(receiving, chosen, timeout=45)

    report("40 payments, each event delivered twice", cost)
    assert cost["sent"]["events"] == cost["sent"]["delivered"] == 80
    assert cost["stored"] == cost["verified"] == 80
    assert (cost["processed"], cost["duplicates"]) == (40, 40)
    assert cost["requests"] == {Provider.MKP: 20, Provider.QONTO: 20}

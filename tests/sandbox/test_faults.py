"""Fault injection: every kind on a fresh server, before/after on writes, filters, repeatability."""

from __future__ import annotations

import time

import pytest
import requests

from integrations.sandbox import FAULT_KINDS, FaultInjector
from integrations.sandbox.faults import parse_fault_spec

from .conftest import MKP_AUTH, QONTO_KEY_AUTH, TIMEOUT, pdf


def set_faults(sandbox, **settings) -> dict:
    response = requests.post(f"{sandbox.admin_url}/faults", json=settings, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def mkp_list(sandbox, timeout=TIMEOUT) -> requests.Response:
    return requests.get(f"{sandbox.mkp_base_url}/customer-invoices", headers=MKP_AUTH, timeout=timeout)


def qonto_list(sandbox, timeout=TIMEOUT) -> requests.Response:
    return requests.get(
        f"{sandbox.qonto_base_url}/v2/client_invoices", headers=QONTO_KEY_AUTH, timeout=timeout
    )


@pytest.mark.parametrize("call", [mkp_list, qonto_list], ids=["mkp", "qonto"])
@pytest.mark.parametrize("kind", ["500", "502", "503"])
def test_server_errors(sandbox, call, kind):
    set_faults(sandbox, probabilities={kind: 1.0})
    response = call(sandbox)
    assert response.status_code == int(kind)
    if kind == "500":
        assert response.json()  # the provider's own error format
    else:
        assert response.headers["Content-Type"].startswith("text/html")


def test_slow_answers_late_but_normally(sandbox):
    set_faults(sandbox, probabilities={"slow": 1.0}, slow_seconds=0.3)
    started = time.monotonic()
    response = mkp_list(sandbox)
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200
    assert "data" in response.json()


@pytest.mark.parametrize("call", [mkp_list, qonto_list], ids=["mkp", "qonto"])
def test_timeout_holds_the_request_past_the_client_timeout(sandbox, call):
    set_faults(sandbox, probabilities={"timeout": 1.0}, timeout_seconds=1.0)
    with pytest.raises(requests.ReadTimeout):
        call(sandbox, timeout=0.3)


@pytest.mark.parametrize("call", [mkp_list, qonto_list], ids=["mkp", "qonto"])
def test_reset_closes_the_connection_without_an_answer(sandbox, call):
    set_faults(sandbox, probabilities={"reset": 1.0})
    with pytest.raises(requests.ConnectionError):
        call(sandbox)


def test_burst429_mkp(sandbox):
    set_faults(sandbox, probabilities={"burst429": 1.0})
    response = mkp_list(sandbox)
    assert response.status_code == 429
    assert response.json() == {"code": 429, "message": "Too many requests."}
    assert int(response.headers["retry-after"]) > 0
    assert int(response.headers["x-ratelimit-reset"]) > time.time() - 1


def test_burst429_qonto(sandbox):
    set_faults(sandbox, probabilities={"burst429": 1.0})
    response = qonto_list(sandbox)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["errors"][0]["code"] == "too_many_requests"


@pytest.mark.parametrize("call", [mkp_list, qonto_list], ids=["mkp", "qonto"])
def test_malformed_json(sandbox, call):
    sandbox.state.seed(invoices=3)
    set_faults(sandbox, probabilities={"malformed": 1.0})
    response = call(sandbox)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        response.json()


@pytest.mark.parametrize("call", [mkp_list, qonto_list], ids=["mkp", "qonto"])
def test_html_page_with_200(sandbox, call):
    set_faults(sandbox, probabilities={"html": 1.0})
    response = call(sandbox)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.lstrip().startswith("<!DOCTYPE html>")


def create_mkp(sandbox, number: str) -> requests.Response:
    customer = next(iter(sandbox.state.data.mkp_customers))
    return requests.post(
        f"{sandbox.mkp_base_url}/customer-invoices",
        data={"customerId": customer, "invoiceNumber": number, "issuedAt": "2026-11-01", "amount": "10.00"},
        files={"pdf": ("x.pdf", pdf(number), "application/pdf")},
        headers=MKP_AUTH,
        timeout=TIMEOUT,
    )


def test_a_fault_before_the_write_changes_nothing(sandbox):
    sandbox.state.seed(customers=1, invoices=0)
    set_faults(sandbox, probabilities={"500": 1.0}, after_share=0.0)
    assert create_mkp(sandbox, "B-1").status_code == 500
    assert sandbox.state.state("mkp") == []


def test_a_fault_after_the_write_keeps_the_change(sandbox):
    sandbox.state.seed(customers=1, invoices=0)
    set_faults(sandbox, probabilities={"503": 1.0}, after_share=1.0)
    assert create_mkp(sandbox, "A-1").status_code == 503
    assert create_mkp(sandbox, "A-1").status_code == 503  # the client retries: a duplicate at the provider
    state = requests.get(f"{sandbox.admin_url}/state", params={"provider": "mkp"}, timeout=TIMEOUT).json()
    assert [row["number"] for row in state["invoices"]] == ["A-1", "A-1"]
    stats = requests.get(f"{sandbox.admin_url}/stats", timeout=TIMEOUT).json()
    assert stats["duplicates"]["mkp"] == {"A-1": 2}
    assert stats["faults"] == {"total": 2, "by_kind": {"503": 2}, "before": 0, "after": 2}


def test_timeout_after_the_write_applies_it_while_the_client_gives_up(sandbox):
    sandbox.state.seed(invoices=20, seed=5)
    invoice = next(inv for inv in sandbox.state.data.qonto_invoices.values() if inv.status == "unpaid")
    set_faults(sandbox, probabilities={"timeout": 1.0}, after_share=1.0, timeout_seconds=1.0)
    with pytest.raises(requests.ReadTimeout):
        requests.post(
            f"{sandbox.qonto_base_url}/v2/client_invoices/{invoice.id}/mark_as_paid",
            headers=QONTO_KEY_AUTH,
            timeout=0.3,
        )
    assert sandbox.state.data.qonto_invoices[invoice.id].status == "paid"


def test_reset_after_a_write_then_the_idempotency_key_replays(sandbox):
    key = {**QONTO_KEY_AUTH, "X-Qonto-Idempotency-Key": "retry-me"}
    files = [("client_invoices", ("r.pdf", pdf("R-1"), "application/pdf"))]
    url = f"{sandbox.qonto_base_url}/v2/client_invoices/bulk"
    set_faults(sandbox, probabilities={"reset": 1.0}, after_share=1.0)
    with pytest.raises(requests.ConnectionError):
        requests.post(url, headers=key, files=files, timeout=TIMEOUT)
    assert len(sandbox.state.data.qonto_invoices) == 1
    set_faults(sandbox, probabilities={})
    retry = requests.post(url, headers=key, files=files, timeout=TIMEOUT)
    assert retry.json()["client_invoices"][0]["invoice_id"] in sandbox.state.data.qonto_invoices
    assert len(sandbox.state.data.qonto_invoices) == 1


def test_reads_always_fail_before(sandbox):
    set_faults(sandbox, probabilities={"500": 1.0}, after_share=1.0)
    mkp_list(sandbox)
    assert sandbox.faults.counts()["before"] == 1


def test_admin_and_file_links_are_never_faulted(sandbox):
    sandbox.state.seed(invoices=1)
    invoice_id = sandbox.state.data.mkp_order[0]
    link = requests.get(
        f"{sandbox.mkp_base_url}/customer-invoices/{invoice_id}/pdf", headers=MKP_AUTH, timeout=TIMEOUT
    ).json()["link"]
    set_faults(sandbox, probabilities={"reset": 1.0})
    assert requests.get(f"{sandbox.admin_url}/stats", timeout=TIMEOUT).status_code == 200
    assert requests.get(link, timeout=TIMEOUT).content.startswith(b"%PDF")


def test_faults_can_target_a_provider_and_methods(sandbox):
    set_faults(sandbox, probabilities={"500": 1.0}, providers=["qonto"])
    assert mkp_list(sandbox).status_code == 200
    assert qonto_list(sandbox).status_code == 500
    set_faults(sandbox, providers=["mkp", "qonto"], methods=["POST", "PATCH"])
    assert mkp_list(sandbox).status_code == 200
    assert qonto_list(sandbox).status_code == 200


def test_a_seed_makes_the_sequence_repeatable():
    def run() -> list:
        injector = FaultInjector({"500": 0.3, "reset": 0.2, "slow": 0.1}, seed=42, after_share=0.5)
        return [injector.draw(provider="mkp", method=m) for m in ["GET", "POST", "PATCH"] * 30]

    first = run()
    assert first == run()
    assert {f.kind for f in first if f} == {"500", "reset", "slow"}
    assert {f.after for f in first if f and f.kind != "slow"} == {True, False}


def test_fault_settings_are_checked(sandbox):
    for bad in (
        {"probabilities": {"teapot": 0.5}},
        {"probabilities": {"500": 2}},
        {"after_share": -1},
        {"x": 1},
    ):
        response = requests.post(f"{sandbox.admin_url}/faults", json=bad, timeout=TIMEOUT)
        assert response.status_code == 400
        assert "error" in response.json()
    settings = requests.get(f"{sandbox.admin_url}/faults", timeout=TIMEOUT).json()
    assert settings["probabilities"] == {}
    assert settings["kinds"] == list(FAULT_KINDS)


def test_fault_spec_of_the_command_line():
    assert parse_fault_spec("500=0.05, timeout=0.02,") == {"500": 0.05, "timeout": 0.02}
    for bad in ("500", "500=x", "boom=0.1", "500=1.5"):
        with pytest.raises(ValueError):
            parse_fault_spec(bad)

"""The /_sandbox endpoints: config, reset, seed, stats, state, and changes made at the provider."""

from __future__ import annotations

import requests

from .conftest import MKP_AUTH, TIMEOUT


def admin(sandbox, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{sandbox.admin_url}{path}", timeout=TIMEOUT, **kwargs)


def test_index_names_the_urls_and_credentials(sandbox):
    body = admin(sandbox, "GET", "").json()
    assert body["mkp"] == {"base_url": sandbox.mkp_base_url, "authorization": "Bearer sandbox-mkp-key"}
    assert body["qonto"]["base_url"] == sandbox.qonto_base_url
    assert "POST /_sandbox/faults" in body["endpoints"]


def test_seed_stats_and_reset(sandbox):
    seeded = admin(sandbox, "POST", "/seed", json={"invoices": 40, "customers": 4, "seed": 1}).json()
    assert (seeded["invoices"], seeded["customers"]) == (40, 4)
    assert seeded["summary"]["invoices"]["mkp"]["total"] == 40
    requests.get(f"{sandbox.mkp_base_url}/customers", headers=MKP_AUTH, timeout=TIMEOUT)
    requests.get(f"{sandbox.mkp_base_url}/customers", timeout=TIMEOUT)

    stats = admin(sandbox, "GET", "/stats").json()
    assert stats["requests"] == {
        "total": 2,
        "mkp": 2,
        "qonto": 0,
        "by_route": {"mkp.list_customers": 2},
        "by_status": {"200": 1, "401": 1},
    }
    mkp = stats["invoices"]["mkp"]
    assert mkp["total"] == 40 == mkp["open"] + mkp["overdue"] + mkp["paid"]
    qonto = stats["invoices"]["qonto"]
    assert qonto["total"] == 40 == sum(qonto[s] for s in ("draft", "unpaid", "paid", "canceled"))
    assert stats["customers"] == {"mkp": 4, "qonto": 4}
    assert stats["duplicates"] == {"mkp": {}, "qonto": {}}

    assert admin(sandbox, "POST", "/reset").json() == {"reset": True}
    stats = admin(sandbox, "GET", "/stats").json()
    assert stats["requests"]["total"] == 0
    assert stats["invoices"]["mkp"]["total"] == stats["invoices"]["qonto"]["total"] == 0


def test_seeding_twice_keeps_numbers_unique(sandbox):
    admin(sandbox, "POST", "/seed", json={"invoices": 30})
    admin(sandbox, "POST", "/seed", json={"invoices": 30})
    assert admin(sandbox, "GET", "/stats").json()["duplicates"] == {"mkp": {}, "qonto": {}}


def test_bad_seed_and_config_requests(sandbox):
    assert admin(sandbox, "POST", "/seed", json={"invoices": "many"}).status_code == 400
    assert admin(sandbox, "POST", "/seed", data="not json").status_code == 400
    assert admin(sandbox, "POST", "/config", json={"rate_limit": "no"}).status_code == 400
    assert admin(sandbox, "POST", "/config", json={"unknown": 1}).status_code == 400
    assert admin(sandbox, "GET", "/nothing").status_code == 404


def test_config_changes_at_runtime(sandbox):
    config = admin(sandbox, "POST", "/config", json={"mkp_license_limit": 0, "mkp_key": "rotated"}).json()
    assert config["mkp_license_limit"] == 0
    assert admin(sandbox, "GET", "/config").json()["mkp_key"] == "rotated"
    old_key = requests.get(f"{sandbox.mkp_base_url}/customers", headers=MKP_AUTH, timeout=TIMEOUT)
    assert old_key.status_code == 401
    new_key = requests.get(
        f"{sandbox.mkp_base_url}/customers", headers={"Authorization": "Bearer rotated"}, timeout=TIMEOUT
    )
    assert new_key.status_code == 200


def test_state_dump_and_changes_at_the_provider(sandbox):
    sandbox.state.seed(invoices=10, seed=9)
    mkp_rows = admin(sandbox, "GET", "/state", params={"provider": "mkp"}).json()
    assert mkp_rows["count"] == 10
    row = mkp_rows["invoices"][0]
    assert set(row) >= {"id", "number", "paid", "paidAt", "amount"}
    assert (
        admin(sandbox, "GET", "/state", params={"provider": "mkp", "number": row["number"]}).json()["count"]
        == 1
    )

    changed = admin(sandbox, "POST", f"/state/mkp/{row['id']}", json={"paidAt": "2026-02-01T10:00:00+01:00"})
    assert changed.json()["paidAt"] == "2026-02-01T10:00:00+01:00"
    assert changed.json()["paid"] is True

    qonto_row = admin(sandbox, "GET", "/state", params={"provider": "qonto"}).json()["invoices"][0]
    assert set(qonto_row) >= {"id", "number", "status", "paid_at", "amount", "updated_at"}
    canceled = admin(
        sandbox, "POST", f"/state/qonto/{qonto_row['id']}", json={"status": "canceled", "paid_at": None}
    )
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["updated_at"] > qonto_row["updated_at"]
    assert (
        admin(sandbox, "POST", f"/state/qonto/{qonto_row['id']}", json={"status": "gone"}).status_code == 400
    )

    assert admin(sandbox, "DELETE", f"/state/mkp/{row['id']}").json() == {"deleted": True}
    gone = requests.get(
        f"{sandbox.mkp_base_url}/customer-invoices/{row['id']}", headers=MKP_AUTH, timeout=TIMEOUT
    )
    assert gone.status_code == 404
    assert admin(sandbox, "DELETE", f"/state/mkp/{row['id']}").status_code == 404
    assert admin(sandbox, "DELETE", f"/state/qonto/{qonto_row['id']}").json() == {"deleted": True}
    assert admin(sandbox, "GET", "/state", params={"provider": "nope"}).status_code == 400


def test_a_record_can_be_shown_with_hostile_fields_and_as_stored_again(sandbox):
    admin(sandbox, "POST", "/seed", json={"invoices": 3, "customers": 1, "seed": 1})
    [first, *_] = admin(sandbox, "GET", "/state", params={"provider": "mkp"}).json()["invoices"]
    hostile = {"amount": "NaN", "id": {"not": "an id"}}
    assert admin(sandbox, "POST", f"/raw/mkp/{first['id']}", json={"fields": hostile}).json() == {
        "id": first["id"],
        "fields": hostile,
    }
    listed = requests.get(f"{sandbox.mkp_base_url}/customer-invoices", headers=MKP_AUTH, timeout=TIMEOUT)
    shown = listed.json()["data"][0]
    assert (shown["amount"], shown["id"], shown["invoiceNumber"]) == (
        "NaN",
        {"not": "an id"},
        first["number"],
    )

    admin(sandbox, "POST", f"/raw/mkp/{first['id']}", json={"fields": None})
    fetched = requests.get(
        f"{sandbox.mkp_base_url}/customer-invoices/{first['id']}", headers=MKP_AUTH, timeout=TIMEOUT
    ).json()
    assert (fetched["id"], fetched["amount"]) == (first["id"], first["amount"])


def test_a_hostile_qonto_record_is_a_change_and_unknown_records_are_refused(sandbox):
    admin(sandbox, "POST", "/seed", json={"invoices": 2, "customers": 1, "seed": 1})
    [invoice, _] = admin(sandbox, "GET", "/state", params={"provider": "qonto"}).json()["invoices"]
    admin(sandbox, "POST", f"/raw/qonto/{invoice['id']}", json={"fields": {"number": "N" * 300}})
    [changed] = [
        row
        for row in admin(sandbox, "GET", "/state", params={"provider": "qonto"}).json()["invoices"]
        if row["id"] == invoice["id"]
    ]
    assert changed["updated_at"] > invoice["updated_at"], "incremental lists pick the change up"
    assert admin(sandbox, "POST", "/raw/qonto/nothing", json={"fields": {}}).status_code == 404
    assert admin(sandbox, "POST", "/raw/other/x", json={"fields": {}}).status_code == 404
    assert admin(sandbox, "POST", f"/raw/qonto/{invoice['id']}", json={"fields": [1]}).status_code == 400

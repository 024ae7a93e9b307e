"""``python -m integrations.sandbox`` as a user runs it, and the loopback-only rule."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from integrations.sandbox import SandboxServer
from integrations.sandbox.__main__ import parse_webhook_faults

ROOT = Path(__file__).resolve().parents[2]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "integrations.sandbox", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def read_banner(process: subprocess.Popen) -> str:
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith((" Seeded ", " Data  ")):
            break
    return "".join(lines)


def test_runs_prints_the_banner_and_stops_on_sigterm():
    process = start(
        "--port", "0", "--seed-invoices", "20", "--mkp-key", "k1", "--faults", "500=0.5", "--fault-seed", "3", "--quiet"
    )  # fmt: skip
    try:
        banner = read_banner(process)
        assert "LOCAL SANDBOX" in banner
        assert "Bearer k1" in banner
        assert "sandbox-org:sandbox-secret" in banner
        assert "500=0.5" in banner
        mkp_url = re.search(r"MijnKlantportaal\s+(http://127\.0\.0\.1:\d+/mkp/v1)", banner).group(1)
        assert re.search(r"Qonto\s+http://127\.0\.0\.1:\d+/qonto\b", banner)
        statuses = {
            requests.get(
                f"{mkp_url}/customers", headers={"Authorization": "Bearer k1"}, timeout=5
            ).status_code
            for _ in range(12)
        }
        assert statuses == {200, 500}  # seeded faults strike some requests, not all
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "Sandbox stopped." in out


def test_a_state_file_keeps_the_data_between_runs(tmp_path):
    state = tmp_path / "sandbox-data.pickle"
    headers = {"Authorization": "Bearer sandbox-mkp-key"}

    def run_once(seed: str) -> tuple[str, list[str], str]:
        process = start("--port", "0", "--seed-invoices", seed, "--state-file", str(state), "--quiet")
        try:
            banner = read_banner(process)
            mkp_url = re.search(r"MijnKlantportaal\s+(http://127\.0\.0\.1:\d+/mkp/v1)", banner).group(1)
            page = requests.get(f"{mkp_url}/customer-invoices", headers=headers, timeout=5).json()
        finally:
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=10)
        assert process.returncode == 0
        return banner, [invoice["id"] for invoice in page["data"]], out

    first_banner, first_ids, first_out = run_once("12")
    assert "Seeded            12 invoices" in first_banner
    assert f"its data is kept in {state}" in first_out
    second_banner, second_ids, _ = run_once("3")
    assert f"loaded from {state}: 12 MijnKlantportaal and 12 Qonto invoices" in second_banner
    assert second_ids == first_ids, "the same invoices, not a new seed"


def test_a_damaged_state_file_is_refused_with_a_clear_message(tmp_path):
    state = tmp_path / "sandbox-data.pickle"
    state.write_bytes(b"not a sandbox file")
    process = start("--port", "0", "--state-file", str(state))
    _, err = process.communicate(timeout=10)
    assert process.returncode == 2
    assert "is not a sandbox data file; delete it" in err


def test_refuses_any_host_but_the_loopback():
    process = start("--host", "0.0.0.0", "--port", "0")
    _, err = process.communicate(timeout=10)
    assert process.returncode == 2
    assert "only listens on 127.0.0.1" in err
    with pytest.raises(ValueError):
        SandboxServer(host="192.168.1.10")


def test_python_api_urls():
    with SandboxServer(host="localhost") as sandbox:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/mkp/v1", sandbox.mkp_base_url)
        assert sandbox.qonto_base_url == f"http://127.0.0.1:{sandbox.port}/qonto"
        assert sandbox.admin_url == f"http://127.0.0.1:{sandbox.port}/_sandbox"
        assert requests.get(sandbox.admin_url, timeout=5).status_code == 200


def test_an_unreadable_state_file_is_named_not_taken_for_a_port_problem(tmp_path):
    process = start("--port", "0", "--state-file", str(tmp_path))  # a folder, not a file
    _, err = process.communicate(timeout=10)
    assert process.returncode == 2
    assert f"cannot read {tmp_path}" in err
    assert "Cannot listen" not in err


@pytest.mark.parametrize(("text", "ms"), [("80ms", 80), ("0.2s", 200), ("15", 15), (" 1.5 s ", 1500)])
def test_latency_is_given_in_milliseconds_or_seconds(text, ms):
    from integrations.sandbox.__main__ import build_parser

    assert build_parser().parse_args(["--latency", text]).latency == ms


def test_a_bad_latency_is_refused_plainly(capsys):
    from integrations.sandbox.__main__ import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--latency", "fast"])
    assert "'fast' is not a latency such as 80ms or 0.2s" in capsys.readouterr().err


def test_every_api_answer_waits_for_the_latency():
    import time

    with SandboxServer(rate_limit=False, latency_ms=150, seed_invoices=1) as server:
        headers = {"Authorization": "Bearer sandbox-mkp-key"}
        started = time.monotonic()
        answer = requests.get(f"{server.mkp_base_url}/customer-invoices", headers=headers, timeout=10)
        took = time.monotonic() - started
        assert answer.status_code == 200
        assert took >= 0.15
        started = time.monotonic()
        requests.get(f"{server.admin_url}/stats", timeout=10).raise_for_status()
        assert time.monotonic() - started < 0.15, "the sandbox's own admin answers at once"


def test_webhook_fault_options_reach_the_config():
    assert parse_webhook_faults(" duplicate,out-of-order ") == {
        "webhook_duplicate": True,
        "webhook_out_of_order": True,
    }
    assert parse_webhook_faults("") == {}
    with pytest.raises(ValueError, match="unknown webhook fault 'late'"):
        parse_webhook_faults("late")

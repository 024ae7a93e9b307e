#!/usr/bin/env python3
"""Webhooks: how fast deliveries are taken in, and how soon a payment at a provider shows here.

    .venv/bin/python benchmarks/webhooks_benchmark.py [--deliveries 1000] [--threads 12]
        [--web-workers 3] [--payments 60] [--latency 80ms]

The product runs as in production: gunicorn with ``--web-workers`` sync workers, a Celery worker,
Redis as the broker and for the request budget, PostgreSQL; the sandbox is a process of its own.

1. A burst of ``--deliveries`` signed Qonto deliveries from ``--threads`` client threads at once
   against ``/webhooks/qonto/``: deliveries stored per second, and each one's answer time (Qonto
   gives up after 1 s). Each names an invoice nobody holds; they are only stored and queued (no
   worker runs during the burst, and their tasks are purged afterwards).
2. ``--payments`` payments made at the sandbox (``POST /_sandbox/pay``), alternately at
   MijnKlantportaal and Qonto, one every ``--interval`` seconds, with the providers' limits on and
   every API answer held ``--latency``: the time from each payment to "paid" in our database
   (median, 95th percentile; watched every 20 ms), and the provider requests the refreshes cost.

It works in a scratch database (``hookproof_webhooks``) that it creates, migrates and drops, and
uses Redis databases 11 (broker) and 12 (request budget), flushed first.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import (
    ROOT,
    CpuUse,
    SandboxProcess,
    cpu_meter,
    free_port,
    point_clients_at,
    process_cpu_seconds,
    scratch_database,
)

QONTO_OAUTH = {"Authorization": "Bearer sandbox-qonto-token"}  # the sandbox's all-scopes token
QONTO_LIMIT = 1.0  # seconds Qonto waits for an answer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=1_000)
    parser.add_argument("--threads", type=int, default=12, help="client threads sending the burst")
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn workers (production: 3)")
    parser.add_argument("--payments", type=int, default=60)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between two payments")
    parser.add_argument("--latency", default="80ms", help="the sandbox holds every API answer this long")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="hookproof_webhooks")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--rate-limit-url", default="redis://127.0.0.1:6379/12")
    return parser.parse_args()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def environment(args: argparse.Namespace, sandbox: SandboxProcess, var: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"{args.server.rstrip('/')}/{args.database}",
        "CELERY_BROKER_URL": args.broker,
        "RATE_LIMIT_URL": args.rate_limit_url,
        "VAR_DIR": str(var),
        "MEDIA_ROOT": str(var / "media"),
        "DJANGO_DEBUG": "false",
        "DJANGO_HTTPS": "false",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "MKP_BASE_URL": sandbox.mkp_base_url,
        "MKP_API_KEY": "sandbox-mkp-key",
        "QONTO_BASE_URL": sandbox.qonto_base_url,
        "QONTO_LOGIN": "sandbox-org",
        "QONTO_SECRET_KEY": "sandbox-secret",
    }


class Process:
    """A child process (gunicorn, a Celery worker) in its own process group, logging to a file."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 (this interpreter's tools, fixed arguments)
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_until(self, ready, what: str, timeout: float = 60) -> None:
        """Wait for ``ready()``; stopped (and the log shown) when it does not come."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise SystemExit(f"{what} stopped:\n{self.log.read_text()[-3000:]}")
                if ready():
                    return
                time.sleep(0.2)
            raise SystemExit(f"{what} did not start within {timeout:.0f} s:\n{self.log.read_text()[-3000:]}")
        except BaseException:
            self.stop()
            raise

    def cpu_seconds(self) -> float:
        """CPU time of the process and its children now running (gunicorn's workers)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return sum(process_cpu_seconds(int(child)) for child in [pid, *children])

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_gunicorn(args: argparse.Namespace, env: dict[str, str], var: Path) -> tuple[Process, str]:
    import requests

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    web = Process(
        [gunicorn, "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(args.web_workers)],
        env,
        var / "gunicorn.log",
    )

    def answers() -> bool:
        try:
            return requests.get(f"{url}/admin/login/", timeout=10).status_code == 200
        except requests.RequestException:  # not listening yet, or still loading on a busy machine
            return False

    web.wait_until(answers, "gunicorn")
    return web, url


def start_worker(env: dict[str, str], var: Path) -> Process:
    log = var / "worker.log"
    name = f"webhooks-bench-{uuid.uuid4().hex[:6]}@%h"
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "info", "-c", "2", "-n", name]
    worker = Process([*command, "--without-mingle", "--without-gossip", "--without-heartbeat"], env, log)
    worker.wait_until(lambda: "ready." in log.read_text(errors="ignore"), "the Celery worker")
    return worker


# 1. The burst --------------------------------------------------------------------------------------
def burst(args: argparse.Namespace, web: Process, url: str) -> None:
    import orjson
    import requests
    from django.db import connection

    from integrations.webhooks import qonto_signature
    from invoices.models import Provider, WebhookDelivery, WebhookSubscription

    secret = "whsec_" + uuid.uuid4().hex
    subscription = WebhookSubscription.objects.create(
        provider=Provider.QONTO,
        remote_id=f"bench-{uuid.uuid4()}",
        event_types=["v1/client-invoices"],
        callback_url=f"{url}/webhooks/qonto/",
        secret=secret,
    )
    local = threading.local()

    def send(number: int) -> tuple[int, float]:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        body = orjson.dumps(
            {
                "id": str(uuid.uuid4()),
                "subscription_id": subscription.remote_id,
                "organization_id": "bench",
                "type": "v1/client-invoices",
                "created_at": "2026-12-07T10:00:00.000Z",
                "data": {"id": f"bench-invoice-{number}", "status": "paid"},
            }
        )
        stamp = int(time.time())
        signature = f"t={stamp},v1={qonto_signature(secret=secret, timestamp=stamp, body=body)}"
        started = time.perf_counter()
        answer = session.post(
            f"{url}/webhooks/qonto/",
            data=body,
            headers={"Content-Type": "application/json", "X-Qonto-Signature": signature},
            timeout=30,
        )
        return answer.status_code, time.perf_counter() - started

    with ThreadPoolExecutor(args.threads) as pool:  # warm every web worker up first (not counted)
        list(pool.map(send, range(args.web_workers * 4)))
    WebhookDelivery.objects.all().delete()
    cpu = CpuUse()
    web_cpu = web.cpu_seconds()
    started = time.perf_counter()
    with cpu_meter(cpu), ThreadPoolExecutor(args.threads) as pool:
        answers = list(pool.map(send, range(args.deliveries)))
    seconds = time.perf_counter() - started
    web_cpu = web.cpu_seconds() - web_cpu
    latencies = [took for _, took in answers]
    statuses = sorted({status for status, _ in answers})
    stored = WebhookDelivery.objects.filter(verified=True).count()
    slow = sum(took > QONTO_LIMIT for took in latencies)
    print(
        f"1. Burst of {args.deliveries:,} signed Qonto deliveries from {args.threads} threads at gunicorn with"
        f" {args.web_workers} workers:\n"
        f"   {stored:,} stored and verified in {seconds:.2f} s = {args.deliveries / seconds:.0f} deliveries/s"
        f" (answers {statuses}); answer time median {statistics.median(latencies) * 1000:.0f} ms, 95th"
        f" percentile {percentile(latencies, 0.95) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms;"
        f" over {QONTO_LIMIT:.0f} s: {slow}\n"
        f"   CPU a delivery: gunicorn {web_cpu / args.deliveries * 1000:.1f} ms, the sending threads"
        f" {cpu.own / args.deliveries * 1000:.1f} ms, the whole machine {cpu.machine / args.deliveries * 1000:.1f}"
        f" ms (PostgreSQL, Redis and whatever else ran too)",
        flush=True,
    )
    subscription.delete()
    WebhookDelivery.objects.all().delete()
    connection.close()


# 2. Payment to paid --------------------------------------------------------------------------------
def prepare_payments(args: argparse.Namespace, sandbox: SandboxProcess, url: str) -> dict[str, list[str]]:
    """Seed both providers, mirror them and register the webhooks: set-up, with limits and latency
    off. Returns the unpaid invoices to pay, per provider."""
    import requests

    from invoices.models import Provider, SyncRun, WebhookSubscription
    from invoices.sync import MODE_CUSTOMERS, MODE_FULL, sync_provider
    from invoices.webhooks.registration import webhooks_register

    each = (args.payments + 1) // 2
    sandbox.admin("POST", "/reset", {})
    sandbox.admin("POST", "/config", {"rate_limit": False, "latency_ms": 0})
    sandbox.admin("POST", "/seed", {"invoices": each * 5, "customers": 10, "seed": 5})
    point_clients_at(sandbox, rate_limit_url="off")
    for provider in Provider.values:
        for mode in (MODE_CUSTOMERS, MODE_FULL):
            run = sync_provider(provider=provider, mode=mode)
            if run.status != SyncRun.Status.SUCCEEDED:
                raise SystemExit(f"mirroring {provider} failed: {run.error}")
    webhooks_register(provider=Provider.MKP, url=f"{url}/webhooks/mkp/")
    callback = f"{url}/webhooks/qonto/"
    answer = requests.post(
        f"{sandbox.qonto_base_url}/v2/webhook_subscriptions",
        json={"callback_url": callback, "types": ["v1/client-invoices"]},
        headers=QONTO_OAUTH,
        timeout=10,
    )
    answer.raise_for_status()
    created = answer.json()
    WebhookSubscription.objects.create(
        provider=Provider.QONTO,
        remote_id=created["id"],
        event_types=created["types"],
        callback_url=callback,
        secret=created["secret"],
    )
    chosen = {}
    for provider in Provider.values:
        rows = sandbox.admin("GET", f"/state?provider={provider}")["invoices"]
        unpaid = [r["id"] for r in rows if (not r["paid"] if provider == "mkp" else r["status"] == "unpaid")]
        if len(unpaid) < each:
            raise SystemExit(f"the seed has only {len(unpaid)} unpaid {provider} invoices, not {each}")
        chosen[provider] = unpaid[:each]
    return chosen


def payments(args: argparse.Namespace, sandbox: SandboxProcess, chosen: dict[str, list[str]], latency_ms):
    import redis
    from django.db import connections

    from invoices.models import Invoice, InvoiceStatus, SyncRun, WebhookDelivery

    redis.Redis.from_url(args.rate_limit_url).flushdb()
    sandbox.admin("POST", "/config", {"rate_limit": True, "latency_ms": latency_ms})
    order = [
        (p, remote_id)
        for pair in zip(*chosen.values(), strict=False)
        for p, remote_id in zip(chosen, pair, strict=True)
    ]
    order = order[: args.payments]
    ids = {
        (provider, remote_id): pk
        for pk, provider, remote_id in Invoice.objects.filter(
            remote_id__in=[remote_id for _, remote_id in order]
        ).values_list("pk", "provider", "remote_id")
    }
    paid_at: dict[int, float] = {}
    made_at: dict[int, float] = {}
    done = threading.Event()

    def watch() -> None:
        try:
            waiting = set(ids.values())
            while waiting and not done.wait(0.02):
                now = time.perf_counter()
                for pk in Invoice.objects.filter(pk__in=waiting, status=InvoiceStatus.PAID).values_list(
                    "pk", flat=True
                ):
                    paid_at[pk] = now
                    waiting.discard(pk)
        finally:
            connections.close_all()

    runs = SyncRun.objects.count()
    stats_before = sandbox.admin("GET", "/stats")["requests"]
    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.perf_counter()
    for number, (provider, remote_id) in enumerate(order):
        time.sleep(max(0.0, started + number * args.interval - time.perf_counter()))
        made_at[ids[(provider, remote_id)]] = time.perf_counter()
        sandbox.admin("POST", f"/pay/{provider}/{remote_id}", {})
    watcher.join(timeout=120)
    done.set()
    watcher.join()
    seconds = time.perf_counter() - started
    stats = sandbox.admin("GET", "/stats")["requests"]
    made = {p: stats[p] - stats_before[p] for p in ("mkp", "qonto")}
    refused = stats["by_status"].get("429", 0) - stats_before["by_status"].get("429", 0)
    per_provider = {}
    for provider in ("mkp", "qonto"):
        pks = [pk for (p, _), pk in ids.items() if p == provider]
        per_provider[provider] = [paid_at[pk] - made_at[pk] for pk in pks if pk in paid_at]
    delays = [d for values in per_provider.values() for d in values]
    stored = WebhookDelivery.objects.count()
    processed = WebhookDelivery.objects.filter(processed_at__isnull=False, duplicate_of=None).count()
    lines = [
        f"2. {len(order)} payments at the sandbox, one every {args.interval:g} s, API latency"
        f" {latency_ms} ms, the providers' limits on:",
        f"   paid here: {len(delays)} of {len(order)}; payment to paid: median"
        f" {statistics.median(delays) * 1000:.0f} ms, 95th percentile {percentile(delays, 0.95) * 1000:.0f}"
        f" ms, max {max(delays) * 1000:.0f} ms",
    ]
    for provider, name in (("mkp", "MijnKlantportaal"), ("qonto", "Qonto")):
        values = per_provider[provider]
        lines.append(
            f"   {name}: median {statistics.median(values) * 1000:.0f} ms, 95th percentile"
            f" {percentile(values, 0.95) * 1000:.0f} ms over {len(values)} payments"
        )
    lines.append(
        f"   provider requests: {made['mkp'] + made['qonto']} for {len(order)} payments ="
        f" {(made['mkp'] + made['qonto']) / len(order):.2f} a payment (MijnKlantportaal {made['mkp']} in"
        f" {seconds:.0f} s, of the 60 a minute its key allows; Qonto {made['qonto']}); refused as over a"
        f" limit: {refused}; deliveries stored {stored}, processed {processed}; sync runs meanwhile:"
        f" {SyncRun.objects.count() - runs}"
    )
    print("\n".join(lines), flush=True)


def main() -> int:
    args = parse_args()
    from integrations.sandbox.__main__ import parse_latency

    latency_ms = round(parse_latency(args.latency))
    os.environ["CELERY_BROKER_URL"] = args.broker
    server = args.server.rstrip("/")
    with tempfile.TemporaryDirectory(prefix="webhooks-bench-") as scratch:
        var = Path(scratch)
        os.environ["VAR_DIR"] = str(var)
        with scratch_database(server, args.database, rate_limit_url=args.rate_limit_url):
            from config.celery import app

            app.control.purge()
            sandbox = SandboxProcess("--seed-invoices", "0", "--latency", args.latency)
            env = environment(args, sandbox, var)
            started: list[Process] = []
            try:
                web, url = start_gunicorn(args, env, var)
                started.append(web)
                burst(args, web, url)
                app.control.purge()  # the burst's tasks name invoices nobody holds
                chosen = prepare_payments(args, sandbox, url)
                point_clients_at(sandbox, rate_limit_url=args.rate_limit_url)
                started.append(start_worker(env, var))
                payments(args, sandbox, chosen, latency_ms)
            finally:
                for process in reversed(started):
                    process.stop()
                sandbox.stop()
                app.control.purge()
    return 0


if __name__ == "__main__":
    sys.exit(main())

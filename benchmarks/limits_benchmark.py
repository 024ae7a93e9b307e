#!/usr/bin/env python3
"""The sync and the outbox against the providers' own limits, with a provider's latency.

    .venv/bin/python benchmarks/limits_benchmark.py [--latency 80ms] [--qonto-invoices 100000]

The rate limits of the providers are the ceiling our users meet, so this measures against them:
the sandbox (its own process) enforces MijnKlantportaal's 60 requests a minute and Qonto's 1,000
per 10 s and 10,000 per 10 minutes, and holds every answer for ``--latency``; our shared limiter
runs on Redis (``--rate-limit-url``, a database of its own that is flushed first), as in
production.

1. Qonto full reconciliation of ``--qonto-invoices`` invoices (100 a page): its time against the
   floor. The floor is the larger of what the latency allows (one request in flight, as the sync
   fetches: requests x latency) and what the limit allows (requests / the allowed rate).
2. MijnKlantportaal full pass of ``--mkp-invoices`` invoices (15 a page): the share of the key's
   60 requests a minute it used in its steady state (from its second minute to its third), and the
   requests the provider refused as over its limit.
3. Bulk mark-paid of ``--payments`` MijnKlantportaal invoices while the quick sync runs every
   minute, as beat runs it: the payments a minute over ``--window`` seconds, with two workers.

It works in a scratch database (``backoffice_limits``) that it creates, migrates and drops.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from datetime import timedelta
from unittest import mock

from harness import (
    CpuUse,
    SandboxProcess,
    clear_mirror,
    cpu_meter,
    point_clients_at,
    scratch_database,
)

MKP_PER_MINUTE = 60
QONTO_PER_10S = 1_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", default="80ms", help="the sandbox holds every answer this long")
    parser.add_argument("--qonto-invoices", type=int, default=100_000)
    parser.add_argument("--mkp-invoices", type=int, default=3_300)
    parser.add_argument("--payments", type=int, default=1_000)
    parser.add_argument("--window", type=float, default=120.0, help="seconds the bulk mark-paid is watched")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="backoffice_limits")
    parser.add_argument("--rate-limit-url", default="redis://127.0.0.1:6379/11")
    return parser.parse_args()


def requests_at(sandbox: SandboxProcess, provider: str) -> tuple[int, int]:
    """The provider's requests so far at the sandbox, and the 429s it answered (each step of this
    benchmark calls one provider)."""
    stats = sandbox.admin("GET", "/stats")["requests"]
    return stats[provider], stats["by_status"].get("429", 0)


def mirror_quickly(sandbox: SandboxProcess, provider: str, rate_limit_url: str) -> None:
    """Mirror what the sandbox holds with every limit off (not measured)."""
    from invoices.sync import MODE_CUSTOMERS, MODE_FULL, sync_provider

    sandbox.admin("POST", "/config", {"rate_limit": False, "latency_ms": 0})
    point_clients_at(sandbox, rate_limit_url="off")
    for mode in (MODE_CUSTOMERS, MODE_FULL):
        run = sync_provider(provider=provider, mode=mode)
        if run.status != run.Status.SUCCEEDED:
            raise SystemExit(f"mirroring {provider} failed: {run.error}")
    point_clients_at(sandbox, rate_limit_url=rate_limit_url)


def limits_on(sandbox: SandboxProcess, latency_ms: int, rate_limit_url: str) -> None:
    import redis

    redis.Redis.from_url(rate_limit_url).flushdb()
    sandbox.admin("POST", "/config", {"rate_limit": True, "latency_ms": latency_ms})


def qonto_full(sandbox: SandboxProcess, n: int, latency: float, rate_limit_url: str, share: float) -> None:
    from invoices.models import Provider
    from invoices.sync import MODE_FULL, sync_provider

    sandbox.admin("POST", "/reset", {})
    sandbox.admin("POST", "/seed", {"invoices": n, "seed": 1})
    limits_on(sandbox, round(latency * 1000), rate_limit_url)
    before, _ = requests_at(sandbox, "qonto")
    cpu = CpuUse()
    started = time.perf_counter()
    with cpu_meter(cpu, sandbox):
        run = sync_provider(provider=Provider.QONTO, mode=MODE_FULL)
    seconds = time.perf_counter() - started
    made, refused = requests_at(sandbox, "qonto")
    made -= before
    floor_latency = made * latency
    floor_rate = made / (QONTO_PER_10S * share / 10)
    floor = max(floor_latency, floor_rate)
    print(
        f"1. Qonto full reconciliation: {run.created + run.updated + run.unchanged:,} invoices, {made:,}"
        f" requests in {seconds:.1f} s ({run.status})\n"
        f"   floor {floor:.1f} s (latency: {made:,} x {latency * 1000:.0f} ms = {floor_latency:.1f} s;"
        f" limit: {made:,} / {QONTO_PER_10S * share / 10:.0f} a second = {floor_rate:.1f} s)\n"
        f"   time / floor = {seconds / floor:.2f} (target at most 1.20); refused by Qonto as over its"
        f" limit: {refused}; CPU {cpu.own:.1f} s here, {cpu.rest:.1f} s PostgreSQL",
        flush=True,
    )


def mkp_full_pass(sandbox: SandboxProcess, n: int, latency: float, rate_limit_url: str) -> None:
    """The share of the key's budget the pass uses in its steady state: from its second minute to
    its third, after the first minute's burst (a sliding window lets a whole minute's requests go
    at once at the start)."""
    from invoices.models import Provider
    from invoices.sync import MODE_FULL, sync_provider

    sandbox.admin("POST", "/reset", {})
    sandbox.admin("POST", "/seed", {"invoices": n, "seed": 2})
    limits_on(sandbox, round(latency * 1000), rate_limit_url)
    before, refused_before = requests_at(sandbox, "mkp")
    marks: dict[int, int] = {}
    done = threading.Event()

    def sample() -> None:
        for minute in (1, 3):
            if done.wait(max(started + minute * 60 - time.perf_counter(), 0)):
                return
            marks[minute] = requests_at(sandbox, "mkp")[0]

    started = time.perf_counter()
    sampler = threading.Thread(target=sample)
    sampler.start()
    run = sync_provider(provider=Provider.MKP, mode=MODE_FULL)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    made, refused = requests_at(sandbox, "mkp")
    made -= before
    steady = (
        f"from minute 1 to minute 3: {marks[3] - marks[1]} requests = {(marks[3] - marks[1]) / 2:.1f} a"
        f" minute = {(marks[3] - marks[1]) / 2 / MKP_PER_MINUTE:.2f} of the key's {MKP_PER_MINUTE}"
        if len(marks) == 2
        else "the pass ended within three minutes: give --mkp-invoices more for the steady state"
    )
    print(
        f"2. MijnKlantportaal full pass: {run.pages:,} pages, {made:,} requests in {seconds:.1f} s"
        f" ({run.status}{': ' + run.error if run.error else ''})\n"
        f"   {steady} (target at least 0.90); refused as over the limit: {refused - refused_before}",
        flush=True,
    )


def bulk_mark_paid(sandbox: SandboxProcess, n: int, window: float, latency: float, rate_limit_url: str):
    from django.db import connections
    from django.utils import timezone

    from invoices import push
    from invoices.models import Invoice, InvoiceStatus, Provider
    from invoices.services import payment
    from invoices.sync import MODE_QUICK, sync_provider

    clear_mirror()
    sandbox.admin("POST", "/reset", {})
    sandbox.admin("POST", "/seed", {"invoices": n * 3, "seed": 3})
    mirror_quickly(sandbox, Provider.MKP, rate_limit_url)
    chosen = list(Invoice.objects.filter(provider=Provider.MKP, status=InvoiceStatus.OPEN).order_by("pk")[:n])
    # The two worker threads below take the pushes instead of a broker.
    with mock.patch("invoices.services.sending.enqueue_push"):
        report = payment.invoices_bulk_mark_paid(
            invoices=chosen, paid_at=timezone.now() - timedelta(hours=1), actor=None
        )
    queue = [invoice.pk for invoice in report.queued]
    limits_on(sandbox, round(latency * 1000), rate_limit_url)
    lock, stop, done, syncs = threading.Lock(), threading.Event(), [], []

    def worker() -> None:
        # A Celery worker: one push a task; a retry waits for its countdown, as the task would.
        try:
            while not stop.is_set():
                with lock:
                    if not queue:
                        return
                    pk = queue.pop(0)
                result = push.push_invoices([pk])
                if result.retry_in is not None:
                    stop.wait(result.retry_in)
                    with lock:
                        queue.append(pk)
                done.extend(result.done)
        finally:
            connections.close_all()

    def beat() -> None:
        try:
            while not stop.is_set():
                syncs.append(sync_provider(provider=Provider.MKP, mode=MODE_QUICK))
                stop.wait(60)
        finally:
            connections.close_all()

    before, refused_before = requests_at(sandbox, "mkp")
    stats_before = sandbox.admin("GET", "/stats")["requests"]["by_route"]
    threads = [
        threading.Thread(target=beat),
        threading.Thread(target=worker),
        threading.Thread(target=worker),
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    stop.wait(window)
    stop.set()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    made, refused = requests_at(sandbox, "mkp")
    by_route = sandbox.admin("GET", "/stats")["requests"]["by_route"]
    patches = by_route.get("mkp.mark_paid", 0) - stats_before.get("mkp.mark_paid", 0)
    scans = sum(run.requests for run in syncs)
    per_minute = patches / seconds * 60
    print(
        f"3. Bulk mark-paid of {len(report.queued):,} MijnKlantportaal invoices, watched for {seconds:.0f} s"
        f" with the quick sync every minute:\n"
        f"   {len(done):,} paid; {patches:,} payment requests = {per_minute:.1f} a minute (target at least"
        f" 48); the quick syncs made {scans:,} requests in {len(syncs)} runs"
        f" ({statistics.mean(run.requests for run in syncs) if syncs else 0:.0f} a run);"
        f" all requests {(made - before) / seconds * 60:.1f} a minute; refused as over the limit:"
        f" {refused - refused_before}",
        flush=True,
    )


def main() -> int:
    args = parse_args()
    from integrations.sandbox.__main__ import parse_latency

    latency = parse_latency(args.latency) / 1000
    server = args.server.rstrip("/")
    with scratch_database(server, args.database, rate_limit_url=args.rate_limit_url):
        from django.conf import settings

        share = 1 - settings.RATE_LIMIT_MARGIN  # of each provider limit our limiter lets through
        sandbox = SandboxProcess("--seed-invoices", "0", "--latency", args.latency)
        print(
            f"latency {latency * 1000:.0f} ms; our limiter at {args.rate_limit_url}, letting through"
            f" {share:.0%} of each provider limit"
        )
        try:
            point_clients_at(sandbox, rate_limit_url=args.rate_limit_url)
            qonto_full(sandbox, args.qonto_invoices, latency, args.rate_limit_url, share)
            clear_mirror()
            mkp_full_pass(sandbox, args.mkp_invoices, latency, args.rate_limit_url)
            bulk_mark_paid(sandbox, args.payments, args.window, latency, args.rate_limit_url)
        finally:
            sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

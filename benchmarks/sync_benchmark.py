#!/usr/bin/env python3
"""How fast the invoice sync mirrors a large account on PostgreSQL, next to two yardsticks.

    .venv/bin/python benchmarks/sync_benchmark.py [--sizes 10000,100000]

For each size N it seeds the local provider sandbox (a separate process, rate limits off) with N
invoices per provider, mirrors the customers (not timed), then measures:

- full sync: ``sync_provider(mode="full")`` for both providers, fetching and parsing included;
  invoices per second, database queries per page, and the memory it took;
- the same full sync again with nothing changed at the providers, and the rows it wrote;
- an incremental Qonto sync with nothing changed: requests made and rows written;
- two yardsticks for the same rows on the same server, each into an empty table shaped like the
  invoice table (columns, indexes, foreign keys): a plain batched ``INSERT ... ON CONFLICT DO
  UPDATE`` (psycopg ``executemany``, batches of 1,000 rows, nothing fetched) and ``COPY``.

The full sync (each time from an empty mirror) and each yardstick run ``--repeat`` times (default
3); the median run is reported, with the range of the rates, and the ratios are those of the
medians. Before each measured step PostgreSQL writes out what earlier steps left dirty in its
buffers (``CHECKPOINT``), so no step pays for another's writes.

It works in a scratch database (``backoffice_bench``) that it creates, migrates and drops, on the
server given by ``--server`` (default: PostgreSQL on 127.0.0.1:5432 as ``postgres``; a superuser,
for ``CREATE DATABASE`` and ``CHECKPOINT``).

Queries are the statements Django sends, on every thread (the page prefetcher's too), divided by
the pages read. Rows written are the inserted, updated and deleted tuples of the invoice table in
``pg_stat_user_tables``; a ``last_seen_at`` stamp counts as an update.

CPU: the CPU seconds each part used during a measurement: this process (every thread of it), the
sandbox process, and the whole machine (``/proc/stat``); what the machine used beyond the first two
is PostgreSQL's here. Dividing the full sync's CPU seconds by the plain upsert's time gives the
CPUs the sync would need, with perfect overlap, to finish as soon as the plain upsert.

Memory: "peak RSS growth" samples the process's resident set every 20 ms during the full sync and
subtracts the size before it; "ru_maxrss delta" is the growth of the kernel's high-water mark over
the same span (0 when an earlier step, such as seeding, went higher).

The sandbox stands for a remote provider, so it runs as its own process (``python -m
integrations.sandbox``) on a free loopback port: neither memory figure includes it and it does not
share the measured interpreter. The CPU time it used (from ``/proc/<pid>/stat``) is given beside
the full sync.

"resync with a Scan" is the same unchanged resync through the sync's page loop with a
``mirror.Scan``, which keeps the unchanged invoices in memory instead of stamping each of them (the
full runs use one too), followed by the count of the invoices the scan did not see.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from harness import (
    CpuUse,
    SandboxProcess,
    clear_mirror,
    cpu_meter,
    point_clients_at,
    scratch_database,
)

COLUMNS = (
    "provider", "remote_id", "number", "customer_id", "customer_remote_id", "customer_name",
    "issue_date", "due_date", "amount", "vat_amount", "currency", "status", "paid_at",
    "remote_created_at", "remote_updated_at", "payment_link", "attachment_id", "removed_at", "raw",
    "pdf", "pdf_name", "pdf_sha256", "send_notification", "sync_state", "pending_action", "outcome_unknown",
    "attempts", "last_error", "last_synced_at", "last_seen_at", "created_at", "updated_at",
)  # fmt: skip
#: What a pull writes on a conflict: the mirrored columns and the sync stamps.
UPSERT_SET = (
    "number", "customer_id", "customer_remote_id", "customer_name", "issue_date", "due_date",
    "amount", "vat_amount", "currency", "status", "paid_at", "remote_created_at",
    "remote_updated_at", "payment_link", "attachment_id", "removed_at", "raw", "last_synced_at",
    "last_seen_at",
)  # fmt: skip
BATCH = 1_000
CPUS = os.cpu_count() or 1
SANDBOX_FLAGS = ("--seed-invoices", "0", "--no-rate-limit")
WRITTEN_TABLES = ("invoices_invoice", "invoices_invoiceevent")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="10000,100000",
        help="invoices per provider, comma-separated (default 10000,100000)",
    )
    parser.add_argument(
        "--server",
        default="postgres://postgres@127.0.0.1:5432",
        help="PostgreSQL server URL, without a database name",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of the full sync and of each yardstick per size; the median is reported (default 3)",
    )
    parser.add_argument("--database", default="backoffice_bench", help="scratch database (dropped first)")
    parser.add_argument(
        "--machinery",
        action="store_true",
        help="also run the full sync with each piece of performance machinery switched off in turn",
    )
    return parser.parse_args()


# Performance machinery, each piece switched off by replacing it for the span of a run -------------
def _machinery_off(name: str):
    from contextlib import nullcontext
    from unittest import mock

    from django.test import override_settings

    from invoices.sync import mirror

    return {
        "page prefetch": lambda: mock.patch("invoices.sync.pages.prefetched", lambda groups: groups),
        "parallel writers": lambda: override_settings(SYNC_WRITERS=1),
        "collector pacing": lambda: mock.patch("invoices.sync.runs.bulk_allocations", nullcontext),
        "PostgreSQL merge": lambda: mock.patch.object(mirror, "_upsert_set_based", mirror._upsert_with_orm),
    }[name]()


MACHINERY = ("page prefetch", "parallel writers", "collector pacing", "PostgreSQL merge")


# Measuring ------------------------------------------------------------------------------------------
class QueryCounter:
    """Counts every statement Django sends, on every thread's connection (the page prefetcher's too)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, execute, sql, params, many, context):
        with self._lock:
            self.count += 1
        return execute(sql, params, many, context)

    def install(self) -> None:
        from django.db import connection
        from django.db.backends.signals import connection_created

        def attach(sender, connection, **kwargs) -> None:
            if self not in connection.execute_wrappers:
                connection.execute_wrappers.append(self)

        connection_created.connect(attach, weak=False)
        attach(None, connection)


class RowStats:
    """Tuples inserted, updated and deleted per table, from pg_stat_user_tables, read on a separate
    connection after the writer flushed its pending statistics."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.monitor = psycopg.connect(dsn, autocommit=True)

    def snapshot(self) -> dict[str, tuple[int, int, int]]:
        from django.db import connection

        with connection.cursor() as cursor:
            # The writer's backend reports its counts as it goes idle after this statement.
            cursor.execute("SELECT pg_stat_force_next_flush()")
        time.sleep(0.1)
        self.monitor.execute("SELECT pg_stat_clear_snapshot()")
        rows = self.monitor.execute(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables WHERE relname = ANY(%s)",
            [list(WRITTEN_TABLES)],
        ).fetchall()
        return {name: (ins, upd, dele) for name, ins, upd, dele in rows}

    @staticmethod
    def written(before: dict, after: dict, table: str) -> tuple[int, int, int]:
        b, a = before.get(table, (0, 0, 0)), after.get(table, (0, 0, 0))
        return a[0] - b[0], a[1] - b[1], a[2] - b[2]


def checkpoint() -> None:
    """Writes out what earlier steps left dirty in PostgreSQL's buffers, so each measured step
    starts from the same state and none pays for the writes of the one before."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def rss_sampler(result: dict):
    """Peak resident set growth over the block, sampled every 20 ms, plus the ru_maxrss delta."""
    start, stop = rss_bytes(), threading.Event()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = [start]

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        stop.set()
        sampler.join()
        peak[0] = max(peak[0], rss_bytes())
        result["rss_growth"] = peak[0] - start
        result["maxrss_delta"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before) * 1024


# One size --------------------------------------------------------------------------------------------
@dataclass
class Pass:
    seconds: float = 0.0
    invoices: int = 0
    pages: int = 0
    requests: int = 0
    queries: int = 0
    cpu: CpuUse = field(default_factory=CpuUse)
    by_provider: dict = field(default_factory=dict)  # provider: (invoices, seconds, sandbox CPU seconds)
    counts: dict = field(default_factory=dict)
    written: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)


def run_syncs(
    steps, counter: QueryCounter, clock: SandboxProcess, stats: RowStats, memory: dict | None = None
):
    """Runs each step (a callable that returns its SyncRun) and measures them together."""
    result = Pass()
    before = stats.snapshot()
    checkpoint()
    queries = counter.count
    started = time.perf_counter()
    runs = []
    with cpu_meter(result.cpu, clock), rss_sampler(memory) if memory is not None else _nothing():
        for step in steps:
            step_started, step_cpu = time.perf_counter(), clock.cpu_seconds
            run = step()
            runs.append(run)
            result.by_provider[run.provider] = (
                run.created + run.updated + run.unchanged,
                time.perf_counter() - step_started,
                clock.cpu_seconds - step_cpu,
            )
    result.seconds = time.perf_counter() - started
    result.queries = counter.count - queries
    for run in runs:
        if run.status != run.Status.SUCCEEDED:
            raise SystemExit(f"{run.provider} {run.kind} sync {run.status}: {run.error}")
        result.pages += run.pages
        result.requests += run.requests
        result.invoices += run.created + run.updated + run.unchanged
        for name in ("created", "updated", "unchanged", "removed"):
            result.counts[name] = result.counts.get(name, 0) + getattr(run, name)
    after = stats.snapshot()
    for table in WRITTEN_TABLES:
        result.written[table] = RowStats.written(before, after, table)
    return result


def sync_step(provider: str, mode: str):
    from invoices.sync import sync_provider

    return lambda: sync_provider(provider=provider, mode=mode)


def scan_step(provider: str, unseen: dict):
    """A full pass through the sync's page loop with a Scan, then the rows it did not see."""

    def step():
        from django.utils import timezone

        from invoices.models import Invoice, Provider, SyncRun
        from invoices.providers import client_for
        from invoices.sync.mirror import Scan
        from invoices.sync.pages import RunRecorder, full_run_writers, pull_pages

        client = client_for(provider)
        run = SyncRun.objects.create(provider=provider, kind="full (scan)")
        scan = Scan()
        pages = client.iter_invoices() if provider == Provider.MKP else client.iter_invoices(per_page=100)
        pull_pages(
            pages, provider, RunRecorder(run, client), lambda: True, scan=scan, writers=full_run_writers()
        )
        candidates = Invoice.objects.filter(
            provider=provider,
            remote_id__isnull=False,
            removed_at__isnull=True,
            last_seen_at__lt=scan.started_at,
        )
        unseen[provider] = scan.unseen(candidates).count()
        SyncRun.objects.filter(pk=run.pk).update(
            status=SyncRun.Status.SUCCEEDED, requests=client.request_count, finished_at=timezone.now()
        )
        run.refresh_from_db()
        return run

    return step


@contextmanager
def _nothing():
    yield


def yardstick_rows() -> list[tuple]:
    """The mirrored rows as the sync wrote them, ready to write again."""
    from django.db import connection
    from psycopg.types.json import Jsonb

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM invoices_invoice ORDER BY id")  # noqa: S608
        raw_at = COLUMNS.index("raw")
        return [(*row[:raw_at], Jsonb(row[raw_at]), *row[raw_at + 1 :]) for row in cursor.fetchall()]


def make_table(conn, name: str) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(f"CREATE TABLE {name} (LIKE invoices_invoice INCLUDING ALL)")
    conn.execute(
        f"ALTER TABLE {name} ADD FOREIGN KEY (customer_id) REFERENCES invoices_customer (id)"
        " DEFERRABLE INITIALLY DEFERRED"
    )
    conn.commit()


@dataclass
class Yardstick:
    seconds: float
    cpu: CpuUse


def plain_upsert(dsn: str, rows: list[tuple]) -> Yardstick:
    import psycopg

    with psycopg.connect(dsn) as conn:
        make_table(conn, "bench_plain")
        checkpoint()
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in UPSERT_SET)
        # Column names from this file only; the values travel as parameters.
        sql = (
            f"INSERT INTO bench_plain ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"  # noqa: S608
            f" ON CONFLICT (provider, remote_id) WHERE remote_id IS NOT NULL DO UPDATE SET {sets}"
        )
        started, cpu = time.perf_counter(), CpuUse()
        with cpu_meter(cpu), conn.cursor() as cursor:
            for start in range(0, len(rows), BATCH):
                cursor.executemany(sql, rows[start : start + BATCH])
                conn.commit()
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bench_plain")
        conn.commit()
    return Yardstick(seconds, cpu)


def copy_rows(dsn: str, rows: list[tuple]) -> Yardstick:
    import psycopg

    with psycopg.connect(dsn) as conn:
        make_table(conn, "bench_copy")
        checkpoint()
        started, cpu = time.perf_counter(), CpuUse()
        with (
            cpu_meter(cpu),
            conn.cursor() as cursor,
            cursor.copy(f"COPY bench_copy ({', '.join(COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        conn.commit()
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bench_copy")
        conn.commit()
    return Yardstick(seconds, cpu)


def median(items: list, key):
    """The middle item by ``key`` (the upper middle of an even number)."""
    return sorted(items, key=key)[len(items) // 2]


def bench_size(
    n: int,
    dsn: str,
    counter: QueryCounter,
    stats: RowStats,
    sandbox: SandboxProcess,
    repeat: int,
    machinery: bool = False,
) -> dict:
    from invoices.models import Provider
    from invoices.sync import MODE_CUSTOMERS, MODE_FULL, MODE_QUICK, sync_provider

    started = time.perf_counter()
    sandbox.seed(n)
    print(f"\n== {n:,} invoices per provider (sandbox seeded in {time.perf_counter() - started:.1f} s)")
    out: dict = {"n": n, "unseen": {}}
    point_clients_at(sandbox)
    full = [sync_step(provider, MODE_FULL) for provider in Provider.values]
    out["fulls"] = []
    for _ in range(repeat):
        clear_mirror()
        for provider in Provider.values:
            sync_provider(provider=provider, mode=MODE_CUSTOMERS)
        memory: dict = {}
        result = run_syncs(full, counter, sandbox, stats, memory)
        result.memory = memory
        out["fulls"].append(result)
    out["full"] = median(out["fulls"], key=lambda run: run.seconds)
    out["without"] = {}
    for piece in MACHINERY if machinery else ():
        runs = []
        for _ in range(repeat):
            clear_mirror()
            for provider in Provider.values:
                sync_provider(provider=provider, mode=MODE_CUSTOMERS)
            with _machinery_off(piece):
                runs.append(run_syncs(full, counter, sandbox, stats))
        out["without"][piece] = median(runs, key=lambda run: run.seconds)
    out["resync"] = run_syncs(full, counter, sandbox, stats)
    scans = [scan_step(provider, out["unseen"]) for provider in Provider.values]
    out["scan"] = run_syncs(scans, counter, sandbox, stats)
    out["quick"] = run_syncs([sync_step(Provider.QONTO, MODE_QUICK)], counter, sandbox, stats)
    rows = yardstick_rows()
    out["rows"] = len(rows)
    out["plains"] = [plain_upsert(dsn, rows) for _ in range(repeat)]
    out["copies"] = [copy_rows(dsn, rows) for _ in range(repeat)]
    out["plain"] = median(out["plains"], key=lambda y: y.seconds)
    out["copy"] = median(out["copies"], key=lambda y: y.seconds)
    del rows
    report(out)
    return out


# Output ------------------------------------------------------------------------------------------------
def peak_memory(out: dict) -> dict:
    """The memory figures of the full sync run that grew the most."""
    return max(out["fulls"], key=lambda run: run.memory["rss_growth"]).memory


def spread(runs: list, items: int) -> str:
    """How the rate varied over the runs, when there were several."""
    if len(runs) < 2:
        return ""
    rates = sorted(items / run.seconds for run in runs)
    return f" (median of {len(runs)} runs: {rates[0]:,.0f} to {rates[-1]:,.0f})"


def mb(value: int) -> str:
    return f"{value / 1024 / 1024:.1f} MB"


def cpu_text(cpu: CpuUse, own: str) -> str:
    parts = [f"{own} {cpu.own:.2f}"]
    if cpu.sandbox:
        parts.append(f"the sandbox {cpu.sandbox:.2f}")
    parts.append(f"the rest (PostgreSQL) {cpu.rest:.2f}")
    return f"{cpu.machine:.2f} CPU-s: {', '.join(parts)}"


def written_text(result: Pass) -> str:
    ins, upd, dele = result.written["invoices_invoice"]
    events = sum(result.written["invoices_invoiceevent"])
    return f"{ins + upd + dele:,} invoice rows written ({ins:,} inserted, {upd:,} updated), {events:,} events"


def per_thousand(run: Pass) -> float:
    """CPU seconds per 1,000 invoices of this process and PostgreSQL (not the provider's stand-in)."""
    return (run.cpu.machine - run.cpu.sandbox) / run.invoices * 1000


def report(out: dict) -> None:
    full, resync, scan, quick = out["full"], out["resync"], out["scan"], out["quick"]
    plain, copy, rows = out["plain"], out["copy"], out["rows"]
    full_rate, plain_rate, copy_rate = full.invoices / full.seconds, rows / plain.seconds, rows / copy.seconds
    peak = peak_memory(out)
    lines = [
        f"full sync, both providers     {full.invoices:,} invoices in {full.seconds:.2f} s"
        f" = {full_rate:,.0f} invoices/s{spread(out['fulls'], full.invoices)}"
        f"  ({full.pages:,} pages, {full.requests:,} requests)",
        *(
            f"  {provider:<28}{n:,} invoices in {seconds:.2f} s = {n / seconds:,.0f} invoices/s;"
            f" the sandbox process used {cpu:.2f} s of CPU"
            for provider, (n, seconds, cpu) in full.by_provider.items()
        ),
        f"  CPU                         {cpu_text(full.cpu, 'this process (fetch, parse, write)')};"
        f" {full.cpu.machine / full.seconds / CPUS:.0%} of {CPUS} CPUs",
        f"  queries per page            {full.queries / max(full.pages, 1):.2f}"
        f"  ({full.queries:,} queries / {full.pages:,} pages)",
        f"  memory                      peak RSS growth {mb(peak['rss_growth'])},"
        f" ru_maxrss delta {mb(peak['maxrss_delta'])} (the most of the runs)",
        f"  {written_text(full)}",
        f"resync, nothing changed       {resync.invoices:,} invoices in {resync.seconds:.2f} s"
        f" = {resync.invoices / resync.seconds:,.0f} invoices/s; {written_text(resync)}",
        f"resync with a Scan            {scan.invoices:,} invoices in {scan.seconds:.2f} s"
        f" = {scan.invoices / scan.seconds:,.0f} invoices/s; {written_text(scan)};"
        f" {sum(out['unseen'].values()):,} left unseen",
        f"Qonto incremental, no change  {quick.requests:,} requests, {quick.pages:,} pages,"
        f" {quick.queries:,} queries; {written_text(quick)}",
        f"plain batched upsert          {rows:,} rows in {plain.seconds:.2f} s = {plain_rate:,.0f} rows/s"
        f"{spread(out['plains'], rows)}",
        f"  (INSERT ... ON CONFLICT DO UPDATE, psycopg executemany, {BATCH:,} rows a batch, a commit each);"
        f" CPU {cpu_text(plain.cpu, 'psycopg')}",
        f"COPY                          {rows:,} rows in {copy.seconds:.2f} s = {copy_rate:,.0f} rows/s"
        f"{spread(out['copies'], rows)}",
        f"ratios of the medians         full sync / plain upsert = {full_rate / plain_rate:.2f};"
        f" plain upsert / COPY = {plain_rate / copy_rate:.2f}",
        f"CPU-s per 1,000 invoices     full sync {per_thousand(full):.3f} (this process and PostgreSQL;"
        f" the sandbox's {full.cpu.sandbox / full.invoices * 1000:.3f} apart), plain upsert"
        f" {plain.cpu.machine / rows * 1000:.3f}; full sync / plain upsert ="
        f" {per_thousand(full) / (plain.cpu.machine / rows * 1000):.2f}",
        *(
            f"{piece + ' off':<30}{run.invoices / run.seconds:,.0f} invoices/s, CPU-s per 1,000"
            f" {per_thousand(run):.3f}: time {run.seconds / full.seconds - 1:+.0%},"
            f" CPU {per_thousand(run) / per_thousand(full) - 1:+.0%} (above 0: what the piece saves)"
            for piece, run in out["without"].items()
        ),
        f"CPUs the full sync needs to finish as soon as the plain upsert"
        f"  {full.cpu.machine / plain.seconds:.1f} ({full.cpu.machine:.2f} CPU-s in {plain.seconds:.2f} s;"
        f" this machine has {CPUS})",
    ]
    print("\n".join(lines), flush=True)


def main() -> int:
    args = parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    server = args.server.rstrip("/")
    dsn = f"{server}/{args.database}"
    with scratch_database(server, args.database):
        from django.db import connection

        print(
            f"PostgreSQL {connection.cursor().connection.info.server_version} at {server},"
            f" database {args.database}; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs"
        )
        counter = QueryCounter()
        counter.install()
        stats = RowStats(dsn)
        sandbox = SandboxProcess(*SANDBOX_FLAGS)
        try:
            results = [
                bench_size(n, dsn, counter, stats, sandbox, args.repeat, args.machinery) for n in sizes
            ]
        finally:
            sandbox.stop()
        stats.monitor.close()
        if len(results) > 1:
            print("\nfrom the smallest to the largest size:")
            first, last = results[0]["full"], results[-1]["full"]
            print(
                f"  full sync rate {first.invoices / first.seconds:,.0f} -> {last.invoices / last.seconds:,.0f}"
                f" invoices/s; queries per page {first.queries / first.pages:.2f} ->"
                f" {last.queries / last.pages:.2f}; peak RSS growth {mb(peak_memory(results[0])['rss_growth'])}"
                f" -> {mb(peak_memory(results[-1])['rss_growth'])}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

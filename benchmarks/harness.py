"""What the benchmarks share: a scratch PostgreSQL database, the provider sandbox in a process of
its own (as a remote provider would be), and CPU meters."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# The scratch database -----------------------------------------------------------------------------
def recreate_database(server: str, name: str, *, drop_only: bool = False) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if not drop_only:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def setup_django(server: str, name: str, *, rate_limit_url: str = "off") -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DATABASE_URL"] = f"{server}/{name}"
    os.environ["RATE_LIMIT_URL"] = rate_limit_url
    os.environ.setdefault("DJANGO_HTTPS", "false")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


@contextmanager
def scratch_database(server: str, name: str, *, rate_limit_url: str = "off"):
    """A database made for the run, migrated and Django set up on it; dropped afterwards, and the
    run's duration printed."""
    started = time.perf_counter()
    recreate_database(server, name)
    try:
        setup_django(server, name, rate_limit_url=rate_limit_url)
        yield
    finally:
        from django.db import connections

        connections.close_all()
        recreate_database(server, name, drop_only=True)
        print(f"\nbenchmark took {time.perf_counter() - started:.0f} s")


@dataclass
class CpuUse:
    """CPU seconds used over a span: by the whole machine, this process and the sandbox process."""

    machine: float = 0.0
    own: float = 0.0
    sandbox: float = 0.0

    @property
    def rest(self) -> float:
        """What neither this process nor the sandbox used: PostgreSQL's, on this machine."""
        return max(self.machine - self.own - self.sandbox, 0.0)


def machine_cpu_seconds() -> float:
    """CPU seconds the machine has spent busy since it booted: every state but idle and iowait."""
    with open("/proc/stat") as fh:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fh.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def cpu_meter(result: CpuUse, sandbox: SandboxProcess | None = None):
    """Fills ``result`` with the CPU seconds used during the block."""
    machine, own = machine_cpu_seconds(), time.process_time()
    sandbox_before = sandbox.cpu_seconds if sandbox is not None else 0.0
    try:
        yield result
    finally:
        result.machine = machine_cpu_seconds() - machine
        result.own = time.process_time() - own
        result.sandbox = sandbox.cpu_seconds - sandbox_before if sandbox is not None else 0.0


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SandboxProcess:
    """The provider sandbox in its own process (``python -m integrations.sandbox``), as a remote
    provider would be, on a free loopback port."""

    def __init__(self, *flags: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.mkp_base_url = f"{self.base_url}/mkp/v1"
        self.qonto_base_url = f"{self.base_url}/qonto"
        self.process = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
            [sys.executable, "-m", "integrations.sandbox", "--port", str(self.port), "--quiet", *flags],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.admin("GET", "")
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit("the sandbox process did not start") from None
                time.sleep(0.1)

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        import requests

        response = requests.request(method, f"{self.base_url}/_sandbox{path}", json=body, timeout=600)
        response.raise_for_status()
        return response.json()

    def seed(self, invoices: int) -> None:
        self.admin("POST", "/reset", {})
        self.admin("POST", "/seed", {"invoices": invoices, "seed": 1})

    @property
    def cpu_seconds(self) -> float:
        """User plus system CPU time the sandbox process has used so far."""
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def point_clients_at(sandbox, *, rate_limit_url: str = "off") -> None:
    from django.conf import settings

    settings.MKP_BASE_URL = sandbox.mkp_base_url
    settings.MKP_API_KEY = "sandbox-mkp-key"
    settings.QONTO_BASE_URL = sandbox.qonto_base_url
    settings.QONTO_LOGIN = "sandbox-org"
    settings.QONTO_SECRET_KEY = "sandbox-secret"
    settings.QONTO_ACCESS_TOKEN = ""
    settings.QONTO_REFRESH_TOKEN = ""
    settings.QONTO_STAGING_TOKEN = ""
    settings.RATE_LIMIT_URL = rate_limit_url


def clear_mirror() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE invoices_invoiceevent, invoices_actionbatchitem, invoices_invoice,"
            " invoices_customer, invoices_syncrun, invoices_synccursor, invoices_lease,"
            " invoices_providertoken RESTART IDENTITY CASCADE"
        )
        cursor.execute("VACUUM ANALYZE")

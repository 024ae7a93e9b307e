"""Real services: PostgreSQL, a broker (Redis or RabbitMQ) and Celery worker processes.

These tests skip when DATABASE_URL / CELERY_BROKER_URL do not point at such services, and fail
instead when REQUIRE_SERVICES=1 (CI sets it), so a missing service can never pass silently.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import REQUIRE_SERVICES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def real_services():
    missing = []
    if connection.vendor != "postgresql":
        missing.append("PostgreSQL (DATABASE_URL)")
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "amqp://", "pyamqp://")):
        missing.append("Redis or RabbitMQ (CELERY_BROKER_URL)")
    if missing:
        message = f"needs {' and '.join(missing)}"
        if REQUIRE_SERVICES:
            pytest.fail(f"REQUIRE_SERVICES=1 but this run has no {' and no '.join(missing)}")
        pytest.skip(message)


def _database_url() -> str:
    db = connection.settings_dict
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Workers:
    """Celery worker processes on the test database, the test's broker and the sandbox."""

    def __init__(self, env: dict, log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []
        self.started = 0  # workers started so far: each start logs to files of its own

    def start(self, count: int = 1, *, concurrency: int = 2, beat: bool = False) -> None:
        """Start ``count`` workers (and beat) with ``self.env`` as it is now."""
        celery = [sys.executable, "-m", "celery", "-A", "config"]
        logs = [f"worker{n}.log" for n in range(self.started, self.started + count)]
        self.started += count
        for n, log_name in enumerate(logs, start=self.started - count):
            name = f"test{n}-{uuid.uuid4().hex[:6]}@%h"
            cmd = [
                *celery,
                "worker",
                "-l",
                "info",
                "-c",
                str(concurrency),
                "-n",
                name,
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
            ]
            self._spawn(cmd, log_name)
        if beat:
            schedule = self.log_dir / "beat-schedule"
            self._spawn([*celery, "beat", "-l", "info", "-s", str(schedule)], "beat.log")
        self._wait_ready(logs)

    def _spawn(self, cmd: list[str], log_name: str) -> None:
        log = (self.log_dir / log_name).open("ab")
        self.processes.append(
            subprocess.Popen(
                cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )

    def _wait_ready(self, logs: list[str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all("ready." in (self.log_dir / name).read_text(errors="ignore") for name in logs):
                return
            if any(p.poll() is not None for p in self.processes):
                break
            time.sleep(0.2)
        raise RuntimeError(f"Celery workers did not start:\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="ignore")[-4000:] for p in sorted(self.log_dir.glob("*.log")))

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._kill_group(process)
        self.processes = []

    def kill(self) -> None:
        """kill -9 of every worker and its pool processes (each runs in a process group of its own),
        as a machine that dies: nothing is acknowledged, released or written on the way out."""
        for process in self.processes:
            self._kill_group(process)
        self.processes = []

    def restart(self, count: int = 1, **env: str) -> None:
        """Stop the running workers, then start ``count`` new ones with ``env`` changed."""
        self.stop()
        self.env.update(env)
        self.start(count)

    @staticmethod
    def _kill_group(process: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def workers(real_services, transactional_db, sandbox, settings, tmp_path):
    """Start workers with ``workers.start(n)``; all are stopped after the test."""
    from config.celery import app

    app.control.purge()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "RATE_LIMIT_URL": settings.RATE_LIMIT_URL,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "MKP_BASE_URL": settings.MKP_BASE_URL,
        "MKP_API_KEY": settings.MKP_API_KEY,
        "QONTO_BASE_URL": settings.QONTO_BASE_URL,
        "QONTO_LOGIN": settings.QONTO_LOGIN,
        "QONTO_SECRET_KEY": settings.QONTO_SECRET_KEY,
        "PROVIDER_READ_TIMEOUT": str(settings.PROVIDER_READ_TIMEOUT),
        "VAR_DIR": str(tmp_path / "var"),
    }
    running = Workers(env, tmp_path)
    yield running
    running.stop()
    app.control.purge()


def wait_for(check, *, timeout: float = 60, interval: float = 0.25, what: str = "condition", detail=None):
    """Poll ``check`` until it is truthy; on time-out, ``detail()`` says what the state was."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    found = f"\n{detail()}" if detail is not None else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{found}")

"""Leases in the database: a lock every machine sees, that frees itself if its holder dies.

A lease lives for a short TTL and its holder renews it with a heartbeat, so a worker that is
killed (or whose database connections are cut) lets go within one TTL.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import DatabaseError, connection, connections
from django.db.models import Q
from django.utils import timezone

from invoices.models import Lease

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """The holder could not renew its lease in time, or someone else holds it now."""


def new_holder() -> str:
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:12]}"


def acquire(name: str, *, holder: str, ttl: timedelta) -> bool:
    """Take the lease when it is free or expired, or renew it for its holder.

    The row is made sure of with ``INSERT ... ON CONFLICT DO NOTHING`` (a plain INSERT that fails
    writes an error line to the PostgreSQL log, even inside a savepoint), then taken by a
    conditional UPDATE: of two machines racing, the database lets one UPDATE match."""
    now = timezone.now()
    Lease.objects.bulk_create([Lease(name=name, holder="", expires_at=now)], ignore_conflicts=True)
    free_or_ours = Q(expires_at__lte=now) | Q(holder=holder)
    return bool(Lease.objects.filter(free_or_ours, name=name).update(holder=holder, expires_at=now + ttl))


def renew(name: str, *, holder: str, ttl: timedelta) -> bool:
    """Extend a lease its holder still has; False when someone else took it over."""
    return bool(Lease.objects.filter(name=name, holder=holder).update(expires_at=timezone.now() + ttl))


def release(name: str, *, holder: str) -> None:
    Lease.objects.filter(name=name, holder=holder).update(expires_at=timezone.now())


class Heartbeat:
    """Renews a held lease every quarter of its TTL while the work goes on.

    Renewal runs on a daemon thread with its own database connection (closed when it stops), so
    the lease outlives any one wait of the work: a slow page, a wait for the request budget, a
    long write. The work calls :meth:`check` between steps: it raises :class:`LeaseLost` once
    the lease went to someone else or could not be renewed within its TTL (the database was
    unreachable), so the work stops before it writes over a successor.

    Inside a transaction of the caller (tests, mostly) another connection cannot see the lease
    row, so :meth:`check` renews it itself instead of a thread."""

    def __init__(self, name: str, *, holder: str, ttl: timedelta) -> None:
        self.name, self.holder, self.ttl = name, holder, ttl
        self.renewed = time.monotonic()
        self.lost = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        if not connection.in_atomic_block:
            self._thread = threading.Thread(target=self._beat, name=f"heartbeat {self.name}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def check(self) -> None:
        if self._thread is None:
            self._renew()
        if self.lost:
            raise LeaseLost(self.lost)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.ttl.total_seconds() / 4) and not self.lost:
                self._renew()
        finally:
            connections.close_all()  # this thread's own connection must not outlive it

    def _renew(self) -> None:
        try:
            renewed = renew(self.name, holder=self.holder, ttl=self.ttl)
        except DatabaseError as exc:
            logger.warning("Could not renew the lease %s: %s", self.name, exc)
            connection.close()  # the next beat opens a fresh connection
            if time.monotonic() - self.renewed > self.ttl.total_seconds():
                self.lost = f"The run could not renew its lease {self.name} in time (database unreachable)."
            return
        if not renewed:
            self.lost = f"Another run took over the lease {self.name}."
            return
        self.renewed = time.monotonic()


@contextmanager
def lease(name: str, *, ttl: timedelta) -> Iterator[Heartbeat | None]:
    """Yields the heartbeat of the lease when it was taken, None when someone else holds it."""
    holder = new_holder()
    if not acquire(name, holder=holder, ttl=ttl):
        yield None
        return
    try:
        with Heartbeat(name, holder=holder, ttl=ttl) as heartbeat:
            yield heartbeat
    finally:
        release(name, holder=holder)

"""Leases in the database: a lock every machine sees, that frees itself if its holder dies."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from invoices.models import Lease


def new_holder() -> str:
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:12]}"


def acquire(name: str, *, holder: str, ttl: timedelta) -> bool:
    now = timezone.now()
    with transaction.atomic():
        taken = (
            Lease.objects.filter(name=name)
            .filter(Q(expires_at__lte=now) | Q(holder=holder))
            .update(holder=holder, expires_at=now + ttl)
        )
        if taken:
            return True
        try:
            with transaction.atomic():
                Lease.objects.create(name=name, holder=holder, expires_at=now + ttl)
        except IntegrityError:
            return False
        return True


def release(name: str, *, holder: str) -> None:
    Lease.objects.filter(name=name, holder=holder).update(expires_at=timezone.now())


@contextmanager
def lease(name: str, *, ttl: timedelta) -> Iterator[str | None]:
    """Yields the holder id when the lease was taken, None when someone else holds it."""
    holder = new_holder()
    if not acquire(name, holder=holder, ttl=ttl):
        yield None
        return
    try:
        yield holder
    finally:
        release(name, holder=holder)

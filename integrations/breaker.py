"""A circuit breaker shared by every process and machine that calls a provider.

After a provider refuses our credentials, calling again with the same credentials cannot succeed and
may get the egress IP throttled (Qonto throttles after 200 responses 401 within an hour). A client
trips the breaker under a key derived from the credentials and checks it before every request, so
one refusal pauses every worker until the credentials change (new credentials, new key).

The backends mirror :mod:`integrations.ratelimit` and can share its storage (a store that cannot be
reached raises :class:`integrations.errors.RateLimiterUnavailable`, as the limiter does):

- ``redis://...``: ``SET key 1 EX seconds`` (for several machines).
- ``sqlite:///path``: a small table in a SQLite file, the rate limiter's file included.
- :class:`MemoryBreaker`: this process only, the default when nothing is configured.

Keys must never contain a secret: build them with :func:`fingerprint`.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from integrations.errors import RateLimiterUnavailable


def fingerprint(*parts: str) -> str:
    """SHA-256 hex digest of the parts, safe to use as a storage key for credentials."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


class CircuitBreaker:
    def is_open(self, key: str) -> bool:
        """True while calls under ``key`` are paused."""
        raise NotImplementedError

    def trip(self, key: str, seconds: float) -> None:
        """Pause calls under ``key`` for ``seconds``."""
        raise NotImplementedError

    def reset(self, key: str) -> None:
        """Allow calls under ``key`` again (an operator's "try again")."""
        raise NotImplementedError


class MemoryBreaker(CircuitBreaker):
    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def is_open(self, key: str) -> bool:
        with self._lock:
            return self._until.get(key, 0.0) > time.monotonic()

    def trip(self, key: str, seconds: float) -> None:
        with self._lock:
            self._until[key] = time.monotonic() + seconds

    def reset(self, key: str) -> None:
        with self._lock:
            self._until.pop(key, None)


class RedisBreaker(CircuitBreaker):
    def __init__(self, url: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=5.0)
        self.errors = (redis.RedisError,)

    @staticmethod
    def _name(key: str) -> str:
        return f"breaker:{key}"

    def _call(self, command: str, *args, **kwargs):
        try:
            return getattr(self.redis, command)(*args, **kwargs)
        except self.errors as exc:
            raise RateLimiterUnavailable.because(exc) from exc

    def is_open(self, key: str) -> bool:
        return bool(self._call("exists", self._name(key)))

    def trip(self, key: str, seconds: float) -> None:
        self._call("set", self._name(key), b"1", ex=max(1, math.ceil(seconds)))

    def reset(self, key: str) -> None:
        self._call("delete", self._name(key))


class SqliteBreaker(CircuitBreaker):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS breakers (key TEXT PRIMARY KEY, until REAL NOT NULL)")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                yield db
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise RateLimiterUnavailable.because(exc) from exc

    def is_open(self, key: str) -> bool:
        with self._db() as db:
            row = db.execute("SELECT until FROM breakers WHERE key = ?", (key,)).fetchone()
        return row is not None and row[0] > time.time()

    def trip(self, key: str, seconds: float) -> None:
        now = time.time()
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM breakers WHERE until <= ?", (now,))
            db.execute(
                "INSERT INTO breakers (key, until) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET until = excluded.until",
                (key, now + seconds),
            )
            db.execute("COMMIT")

    def reset(self, key: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM breakers WHERE key = ?", (key,))


def breaker_from_url(url: str) -> CircuitBreaker | None:
    """Same URLs as ``rate_limiter_from_url``: ``redis://``/``rediss://``/``unix://`` → Redis;
    ``sqlite:///path`` → SQLite file; ``off`` or empty → None (clients then keep a per-process breaker).
    """
    if not url or url == "off":
        return None
    scheme = urlparse(url).scheme
    if scheme in ("redis", "rediss", "unix"):
        return RedisBreaker(url)
    if scheme == "sqlite":
        return SqliteBreaker(url[len("sqlite:///") :] if url.startswith("sqlite:///") else urlparse(url).path)
    raise ValueError(f"Unsupported breaker URL scheme: {scheme!r}")

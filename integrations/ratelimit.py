"""A request budget shared by every process and machine that calls a provider.

Sliding-window logs: a request is allowed only when every window of the provider has room, so the
documented limits (MijnKlantportaal 60 a minute per key; Qonto 1,000 per 10 s and 10,000 per
10 min) are never exceeded, whatever the number of workers.

- ``redis://...``: one Lua script per attempt, atomic, on the Redis clock (for several machines).
- ``sqlite:///path``: a small SQLite file with ``BEGIN IMMEDIATE`` (the embedded default, for
  processes on one machine).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse


@dataclass(frozen=True)
class Window:
    limit: int
    seconds: float


class RateLimiter:
    def try_acquire(self, key: str, windows: tuple[Window, ...]) -> float:
        """Take one request from every window: 0.0 when granted, else the seconds to wait."""
        raise NotImplementedError

    def acquire(self, key: str, windows: tuple[Window, ...], *, max_wait: float) -> float | None:
        """Wait up to ``max_wait`` seconds for a slot. None when granted, else the seconds still to wait."""
        deadline = time.monotonic() + max_wait
        while True:
            wait = self.try_acquire(key, windows)
            if wait <= 0:
                return None
            if time.monotonic() + wait > deadline:
                return wait
            time.sleep(wait)


_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local freeing = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local w = tonumber(freeing[2]) + window - now
    if w < 1 then w = 1 end
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('PEXPIRE', key, tonumber(ARGV[2 * i + 1]))
end
return 0
"""


class RedisRateLimiter(RateLimiter):
    def __init__(self, url: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url)
        self.script = self.redis.register_script(_LUA)

    def try_acquire(self, key: str, windows: tuple[Window, ...]) -> float:
        keys = [f"ratelimit:{key}:{w.limit}/{w.seconds}" for w in windows]
        args: list = [uuid.uuid4().hex]
        for w in windows:
            args += [w.limit, int(w.seconds * 1000)]
        return int(self.script(keys=keys, args=args)) / 1000.0


class SqliteRateLimiter(RateLimiter):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            db.execute("CREATE TABLE IF NOT EXISTS hits (bucket TEXT NOT NULL, at REAL NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS hits_bucket_at ON hits (bucket, at)")
        finally:
            db.close()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def try_acquire(self, key: str, windows: tuple[Window, ...]) -> float:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            now = time.time()
            wait = 0.0
            for w in windows:
                bucket = f"{key}:{w.limit}/{w.seconds}"
                db.execute("DELETE FROM hits WHERE bucket = ? AND at <= ?", (bucket, now - w.seconds))
                rows = db.execute(
                    "SELECT at FROM hits WHERE bucket = ? ORDER BY at DESC LIMIT 1 OFFSET ?",
                    (bucket, w.limit - 1),
                ).fetchone()
                if rows is not None:
                    wait = max(wait, rows[0] + w.seconds - now, 0.001)
            if wait == 0.0:
                db.executemany(
                    "INSERT INTO hits (bucket, at) VALUES (?, ?)",
                    [(f"{key}:{w.limit}/{w.seconds}", now) for w in windows],
                )
            db.execute("COMMIT")
            return wait
        finally:
            db.close()


def rate_limiter_from_url(url: str) -> RateLimiter | None:
    """``redis://`` or ``rediss://`` → Redis; ``sqlite:///path`` → SQLite file; ``off`` or empty → None."""
    if not url or url == "off":
        return None
    scheme = urlparse(url).scheme
    if scheme in ("redis", "rediss"):
        return RedisRateLimiter(url)
    if scheme == "sqlite":
        return SqliteRateLimiter(
            url[len("sqlite:///") :] if url.startswith("sqlite:///") else urlparse(url).path
        )
    raise ValueError(f"Unsupported RATE_LIMIT_URL scheme: {scheme!r}")

"""A request budget shared by every process and machine that calls a provider.

Sliding-window logs: a request is allowed only when every window of the provider has room, so the
limits the clients pass (the provider's documented limits less a margin: MijnKlantportaal 60 a
minute per key, Qonto 1,000 per 10 s and 10,000 per 10 min) are never exceeded, whatever the
number of workers.

**Staff work first.** Each request has a priority:

- ``STAFF`` (pushes, refreshes, look-ups, PDFs: the default) may use the whole window.
- ``SCAN`` (the syncs) may only take a slot while it leaves a reserve free: as many slots as staff
  work used in the window, at least ``SCAN_RESERVE`` of it, and none at all while a staff request
  is waiting for a slot (a staff request refused marks the key "staff waiting" until its wait is
  over). So an idle back-office leaves almost the whole budget to the scan, and a bulk action
  takes the budget from the scan within a window; the scan slows down instead of stopping it.

Backends, with the same rule:

- ``redis://...``: one Lua script per attempt, atomic, on the Redis clock (for several machines).
- ``sqlite:///path``: a small SQLite file with ``BEGIN IMMEDIATE`` (the embedded default, for
  processes on one machine).

A store that cannot be reached raises :class:`integrations.errors.RateLimiterUnavailable`: our own
infrastructure is down, nothing was sent.
"""

from __future__ import annotations

import math
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from integrations.errors import RateLimiterUnavailable

STAFF = "staff"
SCAN = "scan"
PRIORITIES = (STAFF, SCAN)
#: The share of each window the scan always leaves free for staff work.
SCAN_RESERVE = 0.02


@dataclass(frozen=True)
class Window:
    limit: int
    seconds: float

    def less(self, margin: float) -> Window:
        """This window with ``margin`` (a share, 0.1 = 10%) kept free, at least one request left."""
        return Window(max(1, math.floor(self.limit * (1.0 - margin) + 1e-9)), self.seconds)

    @property
    def reserve(self) -> int:
        """The slots the scan leaves free at least (none of a window of one)."""
        return min(max(1, math.ceil(self.limit * SCAN_RESERVE)), self.limit - 1)


class RateLimiter:
    def try_acquire(self, key: str, windows: tuple[Window, ...], priority: str = STAFF) -> float:
        """Take one request from every window: 0.0 when granted, else the seconds to wait."""
        raise NotImplementedError

    def acquire(
        self, key: str, windows: tuple[Window, ...], *, max_wait: float, priority: str = STAFF
    ) -> float | None:
        """Wait up to ``max_wait`` seconds for a slot. None when granted, else the seconds still to wait."""
        if priority not in PRIORITIES:
            raise ValueError(f"Unknown priority {priority!r}")
        deadline = time.monotonic() + max_wait
        while True:
            wait = self.try_acquire(key, windows, priority)
            if wait <= 0:
                return None
            if time.monotonic() + wait > deadline:
                return wait
            time.sleep(wait)


# KEYS[1]: the "staff waiting" marker; then per window: every grant, staff grants.
# ARGV: member, priority, then per window: limit, window in ms, reserve.
_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local staff = ARGV[2] == 'staff'
local waiting = redis.call('PTTL', KEYS[1])
local wait = 0
local windows = (#KEYS - 1) / 2
for i = 1, windows do
  local all, mine = KEYS[2 * i], KEYS[2 * i + 1]
  local limit = tonumber(ARGV[3 * i])
  local window = tonumber(ARGV[3 * i + 1])
  redis.call('ZREMRANGEBYSCORE', all, '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', mine, '-inf', now - window)
  local count = redis.call('ZCARD', all)
  local cap = limit
  if not staff then
    local reserve = math.max(tonumber(ARGV[3 * i + 2]), redis.call('ZCARD', mine))
    cap = limit - reserve
    if waiting > 0 then cap = 0 end
  end
  if count >= cap then
    local w = 1
    if waiting > 0 and not staff then
      w = waiting
    elseif count > 0 then
      -- the slot whose expiry brings the count under the cap (below a cap of 0: the oldest)
      local index = 0
      if cap > 0 then index = count - cap end
      local freeing = redis.call('ZRANGE', all, index, index, 'WITHSCORES')
      w = tonumber(freeing[2]) + window - now
    end
    if w < 1 then w = 1 end
    if w > wait then wait = w end
  end
end
if wait > 0 then
  if staff then redis.call('SET', KEYS[1], '1', 'PX', math.ceil(wait) + 1000) end
  return wait
end
for i = 1, windows do
  local window = tonumber(ARGV[3 * i + 1])
  redis.call('ZADD', KEYS[2 * i], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[2 * i], window)
  if staff then
    redis.call('ZADD', KEYS[2 * i + 1], now, ARGV[1])
    redis.call('PEXPIRE', KEYS[2 * i + 1], window)
  end
end
return 0
"""


class RedisRateLimiter(RateLimiter):
    def __init__(self, url: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=5.0)
        self.script = self.redis.register_script(_LUA)
        self.errors = (redis.RedisError,)

    def try_acquire(self, key: str, windows: tuple[Window, ...], priority: str = STAFF) -> float:
        keys = [f"ratelimit:{key}:staff-waiting"]
        args: list = [uuid.uuid4().hex, priority]
        for w in windows:
            # Keyed by the window's length, not its limit: processes with another margin share it.
            keys += [f"ratelimit:{key}:{w.seconds}s", f"ratelimit:{key}:{w.seconds}s:staff"]
            args += [w.limit, int(w.seconds * 1000), w.reserve]
        try:
            return int(self.script(keys=keys, args=args)) / 1000.0
        except self.errors as exc:
            raise RateLimiterUnavailable.because(exc) from exc


class SqliteRateLimiter(RateLimiter):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = self._connect()
            try:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS grants "
                    "(bucket TEXT NOT NULL, at REAL NOT NULL, staff INTEGER NOT NULL)"
                )
                db.execute("CREATE INDEX IF NOT EXISTS grants_bucket_at ON grants (bucket, at)")
                db.execute("CREATE TABLE IF NOT EXISTS waiting (key TEXT PRIMARY KEY, until REAL NOT NULL)")
            finally:
                db.close()
        except (OSError, sqlite3.Error) as exc:
            raise RateLimiterUnavailable.because(exc) from exc

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def try_acquire(self, key: str, windows: tuple[Window, ...], priority: str = STAFF) -> float:
        try:
            return self._try_acquire(key, windows, priority == STAFF)
        except sqlite3.Error as exc:
            raise RateLimiterUnavailable.because(exc) from exc

    def _try_acquire(self, key: str, windows: tuple[Window, ...], staff: bool) -> float:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            now = time.time()
            row = db.execute("SELECT until FROM waiting WHERE key = ?", (key,)).fetchone()
            waiting = max((row[0] - now) if row else 0.0, 0.0)
            wait = 0.0
            for w in windows:
                bucket = f"{key}:{w.seconds}s"
                db.execute("DELETE FROM grants WHERE bucket = ? AND at <= ?", (bucket, now - w.seconds))
                count, staff_count = db.execute(
                    "SELECT count(*), coalesce(sum(staff), 0) FROM grants WHERE bucket = ?", (bucket,)
                ).fetchone()
                cap = w.limit
                if not staff:
                    cap = 0 if waiting > 0 else w.limit - max(w.reserve, staff_count)
                if count < cap:
                    continue
                if not staff and waiting > 0:
                    wait = max(wait, waiting)
                    continue
                # The slot whose expiry brings the count under the cap (below a cap of 0: the oldest).
                freeing = db.execute(
                    "SELECT at FROM grants WHERE bucket = ? ORDER BY at LIMIT 1 OFFSET ?",
                    (bucket, count - cap if cap > 0 else 0),
                ).fetchone()
                wait = max(wait, (freeing[0] + w.seconds - now) if freeing else 0.0, 0.001)
            if wait > 0.0 and staff:
                db.execute(
                    "INSERT INTO waiting (key, until) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET until = excluded.until",
                    (key, now + wait + 1.0),
                )
            elif wait == 0.0:
                db.executemany(
                    "INSERT INTO grants (bucket, at, staff) VALUES (?, ?, ?)",
                    [(f"{key}:{w.seconds}s", now, int(staff)) for w in windows],
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

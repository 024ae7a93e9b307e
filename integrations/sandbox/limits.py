"""Sliding-window request limits, as both providers apply them (the server side of the budget)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    #: Requests left in the tightest window after this one.
    remaining: int
    #: Whole seconds until a refused request would be accepted (0 when allowed).
    retry_after: int


class SlidingWindowLimiter:
    """A log of accepted request times per key; a request is accepted only when every window
    ``(limit, seconds)`` has room. Refused requests are not logged (they do not extend the wait)."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()

    def hit(self, key: str, windows: list[tuple[int, float]]) -> Decision:
        now = self._clock()
        longest = max(seconds for _, seconds in windows)
        with self._lock:
            log = self._hits.setdefault(key, deque())
            while log and log[0] <= now - longest:
                log.popleft()
            waits, remaining = [], []
            for limit, seconds in windows:
                start = now - seconds
                # Entries are sorted; count those inside this window from the right.
                inside = _count_after(log, start)
                remaining.append((limit - inside, limit))
                if inside >= limit:
                    oldest_inside = log[len(log) - inside]
                    waits.append(oldest_inside + seconds - now)
            left, limit = min(remaining)
            if waits:
                return Decision(False, limit, 0, max(1, math.ceil(max(waits))))
            log.append(now)
            return Decision(True, limit, left - 1, 0)


def _count_after(log: deque[float], start: float) -> int:
    lo, hi = 0, len(log)
    while lo < hi:  # first index whose time is > start
        mid = (lo + hi) // 2
        if log[mid] > start:
            hi = mid
        else:
            lo = mid + 1
    return len(log) - lo

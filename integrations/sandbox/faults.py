"""Fault injection for API requests (never for ``/_sandbox`` nor file downloads).

Each kind has a probability; one random draw per request picks at most one kind (probabilities are
taken in the order of ``FAULT_KINDS`` and add up; past 1.0 the later kinds get what is left).
On a write (POST, PATCH, PUT, DELETE) a second draw decides whether the fault strikes BEFORE the
handler runs (nothing changes) or AFTER it ran (the change is kept, the client gets the fault):
``after_share`` is the probability of "after". Reads always fail before. A seeded generator
makes a run repeatable for a client that sends its requests one at a time.

Kinds:
    500, 502, 503   that status (500 in the provider's error format, 502/503 as a gateway page)
    slow            wait ``slow_seconds``, then the normal answer
    timeout         hold the request ``timeout_seconds``; before: then a 504 with nothing changed;
                    after: the change is made first and the normal answer comes too late
    reset           close the socket with an RST, no HTTP answer
    burst429        a 429 with ``Retry-After`` although the budget is not spent
    malformed       200 with JSON cut in half
    html            200 with an HTML page
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass

FAULT_KINDS = ("500", "502", "503", "slow", "timeout", "reset", "burst429", "malformed", "html")
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
PROVIDERS = ("mkp", "qonto")


@dataclass(frozen=True)
class Fault:
    kind: str
    after: bool


def parse_fault_spec(spec: str) -> dict[str, float]:
    """``"500=0.05,timeout=0.02"`` -> ``{"500": 0.05, "timeout": 0.02}`` (ValueError when wrong)."""
    probabilities: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kind, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected KIND=PROBABILITY, got {item!r}")
        try:
            probabilities[kind.strip()] = float(value)
        except ValueError:
            raise ValueError(f"probability of {kind.strip()!r} is not a number: {value!r}") from None
    _check_probabilities(probabilities)
    return probabilities


def _check_probabilities(probabilities: object) -> dict[str, float]:
    if not isinstance(probabilities, dict):
        raise ValueError("probabilities must be an object of kind -> probability")
    for kind, value in probabilities.items():
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"probability of {kind!r} must be a number from 0 to 1")
    return {kind: float(value) for kind, value in probabilities.items()}


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number of seconds")
    return float(value)


class FaultInjector:
    def __init__(
        self,
        probabilities: dict[str, float] | None = None,
        *,
        after_share: float = 0.5,
        seed: int | None = None,
        slow_seconds: float = 2.0,
        timeout_seconds: float = 35.0,
        providers: tuple[str, ...] = PROVIDERS,
        methods: tuple[str, ...] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self.probabilities: dict[str, float] = {}
        self.after_share = 0.5
        self.seed = seed
        self.slow_seconds = slow_seconds
        self.timeout_seconds = timeout_seconds
        self.providers = providers
        self.methods = methods
        self._rng = random.Random(seed)
        self.injected: Counter = Counter()
        self.configure(
            {
                "probabilities": probabilities or {},
                "after_share": after_share,
                "providers": list(providers),
                "methods": list(methods) if methods else None,
            }
        )

    def to_json(self) -> dict:
        with self._lock:
            return {
                "probabilities": dict(self.probabilities),
                "after_share": self.after_share,
                "seed": self.seed,
                "slow_seconds": self.slow_seconds,
                "timeout_seconds": self.timeout_seconds,
                "providers": list(self.providers),
                "methods": list(self.methods) if self.methods else None,
                "kinds": list(FAULT_KINDS),
            }

    def configure(self, data: dict) -> None:
        """Apply the fields given (all checked first). ``probabilities`` replaces the whole map;
        ``seed`` restarts the generator."""
        known = {
            "probabilities",
            "after_share",
            "seed",
            "slow_seconds",
            "timeout_seconds",
            "providers",
            "methods",
        }
        if unknown := set(data) - known:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        changes: dict = {}
        if "probabilities" in data:
            changes["probabilities"] = _check_probabilities(data["probabilities"])
        if "after_share" in data:
            share = data["after_share"]
            if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
                raise ValueError("after_share must be a number from 0 to 1")
            changes["after_share"] = float(share)
        if "seed" in data:
            if data["seed"] is not None and (
                isinstance(data["seed"], bool) or not isinstance(data["seed"], int)
            ):
                raise ValueError("seed must be an integer or null")
            changes["seed"] = data["seed"]
        for name in ("slow_seconds", "timeout_seconds"):
            if name in data:
                changes[name] = _check_seconds(name, data[name])
        if "providers" in data:
            providers = data["providers"]
            if not isinstance(providers, list) or not set(providers) <= set(PROVIDERS):
                raise ValueError(f"providers must be a list within {list(PROVIDERS)}")
            changes["providers"] = tuple(providers)
        if "methods" in data:
            methods = data["methods"]
            if methods is not None and not (
                isinstance(methods, list) and all(isinstance(m, str) for m in methods)
            ):
                raise ValueError("methods must be a list of HTTP methods or null (all)")
            changes["methods"] = tuple(m.upper() for m in methods) if methods else None
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)
            if "seed" in changes:
                self._rng = random.Random(self.seed)

    def draw(self, *, provider: str, method: str) -> Fault | None:
        """The fault for this request, if any, counted in ``injected``."""
        with self._lock:
            if not self.probabilities or provider not in self.providers:
                return None
            if self.methods is not None and method not in self.methods:
                return None
            roll, total = self._rng.random(), 0.0
            for kind in FAULT_KINDS:
                total += self.probabilities.get(kind, 0.0)
                if roll < total:
                    break
            else:
                return None
            after = method in WRITE_METHODS and kind != "slow" and self._rng.random() < self.after_share
            self.injected[kind] += 1
            self.injected["after" if after else "before"] += 1
            return Fault(kind, after)

    def counts(self) -> dict:
        with self._lock:
            by_kind = {kind: self.injected[kind] for kind in FAULT_KINDS if self.injected[kind]}
            return {
                "total": sum(by_kind.values()),
                "by_kind": by_kind,
                "before": self.injected["before"],
                "after": self.injected["after"],
            }

    def reset_counts(self) -> None:
        with self._lock:
            self.injected.clear()

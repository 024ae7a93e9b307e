"""Checks of the providers' webhook signatures: pure functions, no Django.

Each takes the signature header as received, the raw body and the candidate secrets (keyed by
whatever the caller uses to name them), and returns the key of the secret that matches or raises
a typed error from :mod:`integrations.errors`. Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from typing import TypeVar

from integrations import errors

K = TypeVar("K")

#: Qonto: "reject if timestamp older than 5 minutes".
QONTO_TOLERANCE_SECONDS = 300
QONTO_SIGNATURE_HEADER = "X-Qonto-Signature"
MKP_SIGNATURE_HEADER = "X-Webhook-Signature"
_QONTO_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_QONTO_SIGNATURE = re.compile(r"[0-9a-f]{64}")


def qonto_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<raw body>"``, as Qonto signs a delivery."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _qonto_header(header: str | None) -> tuple[int, list[str]]:
    """``t=<timestamp>,v1=<hex>[,v1=<hex>]`` -> (timestamp, signatures)."""
    timestamp, signatures = None, []
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        value = value.strip()
        if name == "t" and _QONTO_TIMESTAMP.fullmatch(value):
            timestamp = int(value)
        elif name == "v1" and _QONTO_SIGNATURE.fullmatch(value.lower()):
            signatures.append(value.lower())
    if timestamp is None or not signatures:
        raise errors.WebhookSignatureMissing(
            f"No readable {QONTO_SIGNATURE_HEADER} header (t=<timestamp>,v1=<signature>)."
        )
    return timestamp, signatures


def verify_qonto_signature(
    *,
    header: str | None,
    body: bytes,
    secrets: Mapping[K, str],
    now: float | None = None,
    tolerance: float = QONTO_TOLERANCE_SECONDS,
) -> K:
    """The key of the secret that signed this delivery. A timestamp more than ``tolerance``
    seconds from ``now`` (either way) is refused before any secret is tried."""
    timestamp, signatures = _qonto_header(header)
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise errors.WebhookSignatureExpired(
            f"The signature's timestamp is {int(now - timestamp)} seconds old; "
            f"at most {int(tolerance)} are accepted."
        )
    for key, secret in secrets.items():
        if not secret:
            continue
        expected = qonto_signature(secret=secret, timestamp=timestamp, body=body)
        if any(hmac.compare_digest(expected, given) for given in signatures):
            return key
    raise errors.WebhookSignatureMismatch("The signature does not match any of our Qonto webhook secrets.")


def mkp_signature_matches(*, header: str, body: bytes, secret: str) -> bool:
    """MijnKlantportaal's documentation says only that the record's secret "will be added to the
    X-Webhook-Signature header": the header is compared with the secret itself. Should it turn out
    to carry an HMAC of the body, this function is the one place to change."""
    return hmac.compare_digest(header.encode("utf-8"), secret.encode("utf-8"))


def verify_mkp_signature(*, header: str | None, body: bytes, secrets: Mapping[K, str]) -> K:
    """The key of the webhook record whose secret this delivery carries."""
    header = (header or "").strip()
    if not header:
        raise errors.WebhookSignatureMissing(f"No {MKP_SIGNATURE_HEADER} header.")
    for key, secret in secrets.items():
        if secret and mkp_signature_matches(header=header, body=body, secret=secret):
            return key
    raise errors.WebhookSignatureMismatch(
        f"The {MKP_SIGNATURE_HEADER} header matches none of our MijnKlantportaal webhook secrets."
    )

"""Run settings of the sandbox: credentials, limits, switches. Changeable at runtime through
``POST /_sandbox/config`` (see :mod:`integrations.sandbox.admin`)."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass


@dataclass
class SandboxConfig:
    mkp_key: str = "sandbox-mkp-key"
    qonto_login: str = "sandbox-org"
    qonto_secret: str = "sandbox-secret"
    qonto_token: str = "sandbox-qonto-token"
    #: When set, Qonto requests without this ``X-Qonto-Staging-Token`` get the HTML login page.
    qonto_staging_token: str | None = None
    #: Every API answer is held this long first, as a provider across the internet takes to answer.
    latency_ms: int = 0
    #: Master switch of both providers' rate limits.
    rate_limit: bool = True
    mkp_requests_per_minute: int = 60
    qonto_requests_per_10s: int = 1_000
    qonto_requests_per_10min: int = 10_000
    #: Invoices a calendar month (Amsterdam) before MKP answers 426; None = no limit.
    mkp_license_limit: int | None = None
    #: Refuse an MKP invoice number already used (422). MKP does not document it, so off by default.
    mkp_unique_numbers: bool = False
    mkp_max_pdf_bytes: int = 10 * 1024 * 1024
    mkp_pdf_link_seconds: int = 900
    qonto_attachment_url_seconds: int = 1_800
    qonto_idempotency_seconds: int = 1_800
    organization_id: str = "6a1c3c8e-5b0e-4d3f-9f6e-2f5b7c1d0a11"
    membership_id: str = "0b7d3f52-8c4e-4a9d-b1e2-5d6f7a8b9c01"
    #: The one OAuth application registered at the sandboxed Qonto (see :mod:`.oauth`).
    qonto_client_id: str = "sandbox-client"
    qonto_client_secret: str = "sandbox-client-secret"
    #: The authorize page answers "denied" (``error=access_denied``) instead of approving.
    qonto_oauth_deny: bool = False
    qonto_access_token_seconds: int = 3_600
    qonto_code_seconds: int = 600
    qonto_refresh_token_seconds: int = 90 * 86_400
    #: How long a refresh token still works after its first use (Qonto: 60 s).
    qonto_refresh_grace_seconds: int = 60
    #: Webhook delivery (see :mod:`.webhooks`): attempts per delivery, the first retry's delay
    #: (doubled after each failed attempt), the receiver's time to answer (Qonto allows 1 s).
    webhook_max_attempts: int = 5
    webhook_retry_ms: int = 2_000
    webhook_timeout_ms: int = 1_000
    #: Webhook faults: every delivery waits this long first; each event is sent twice; every
    #: other event is held back until the next one to the same URL went out; signatures are wrong.
    webhook_delay_ms: int = 0
    webhook_duplicate: bool = False
    webhook_out_of_order: bool = False
    webhook_bad_signature: bool = False

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def update(self, data: dict) -> None:
        """Set the given fields after checking every one of them; ValueError names the first bad one."""
        hints = typing.get_type_hints(type(self))
        checked = {}
        for name, value in data.items():
            if name not in hints:
                raise ValueError(f"unknown setting {name!r}")
            allowed = typing.get_args(hints[name]) if isinstance(hints[name], types.UnionType) else ()
            base = next((t for t in allowed if t is not type(None)), hints[name])
            if value is None and type(None) in allowed:
                checked[name] = None
            elif isinstance(value, base) and not (base is int and isinstance(value, bool)):
                if base is int and value < 0:
                    raise ValueError(f"{name} must not be negative")
                checked[name] = value
            else:
                raise ValueError(f"{name} must be {base.__name__}{' or null' if allowed else ''}")
        for name, value in checked.items():
            setattr(self, name, value)

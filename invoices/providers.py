"""Builds the provider clients from settings. The one place that knows which client serves which
provider and where shared coordination (rate limits, the 401 breaker, OAuth tokens) is stored."""

from __future__ import annotations

from datetime import datetime
from functools import cache

from django.conf import settings
from django.db import transaction

from integrations.breaker import breaker_from_url
from integrations.mkp.client import MijnKlantportaalClient
from integrations.qonto.client import QontoClient
from integrations.ratelimit import STAFF, rate_limiter_from_url
from invoices.models import Provider, ProviderToken


@cache
def _rate_limiter(url: str):
    return rate_limiter_from_url(url)


@cache
def _breaker(url: str):
    return breaker_from_url(url)


class DatabaseTokenStore:
    """Rotated OAuth tokens, shared by every worker through the database."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def load(self) -> dict | None:
        token = ProviderToken.objects.filter(provider=self.provider).first()
        return token.data if token else None

    def save(self, tokens: dict) -> None:
        data = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in tokens.items()}
        with transaction.atomic():
            ProviderToken.objects.update_or_create(provider=self.provider, defaults={"data": data})


def is_configured(provider: str) -> bool:
    if provider == Provider.MKP:
        return bool(settings.MKP_API_KEY)
    return bool(
        (settings.QONTO_LOGIN and settings.QONTO_SECRET_KEY)
        or settings.QONTO_ACCESS_TOKEN
        or qonto_connected()
    )


def qonto_connected() -> bool:
    """Tokens from "Connect Qonto" (or renewed ones) are in the shared store."""
    tokens = DatabaseTokenStore(Provider.QONTO).load() or {}
    return bool(tokens.get("access_token") or tokens.get("refresh_token"))


def client_for(provider: str, *, max_wait: float = 2.0, priority: str = STAFF):
    """A client of ``provider``. ``priority``: ``STAFF`` (the default: pushes, refreshes, look-ups)
    or ``SCAN`` (the syncs, which take only what staff work leaves; see integrations.ratelimit)."""
    limiter = _rate_limiter(settings.RATE_LIMIT_URL)
    timeout = (settings.PROVIDER_CONNECT_TIMEOUT, settings.PROVIDER_READ_TIMEOUT)
    budget = {"priority": priority, "margin": settings.RATE_LIMIT_MARGIN, "max_wait": max_wait}
    if provider == Provider.MKP:
        return MijnKlantportaalClient(
            api_key=settings.MKP_API_KEY,
            base_url=settings.MKP_BASE_URL,
            rate_limiter=limiter,
            timeout=timeout,
            **budget,
        )
    if provider == Provider.QONTO:
        return QontoClient(
            base_url=settings.QONTO_BASE_URL,
            login=settings.QONTO_LOGIN,
            secret_key=settings.QONTO_SECRET_KEY,
            access_token=settings.QONTO_ACCESS_TOKEN,
            refresh_token=settings.QONTO_REFRESH_TOKEN,
            client_id=settings.QONTO_CLIENT_ID,
            client_secret=settings.QONTO_CLIENT_SECRET,
            token_url=settings.QONTO_TOKEN_URL,
            staging_token=settings.QONTO_STAGING_TOKEN,
            token_store=DatabaseTokenStore(provider),
            breaker=_breaker(settings.RATE_LIMIT_URL),
            rate_limiter=limiter,
            timeout=timeout,
            **budget,
        )
    raise ValueError(f"Unknown provider {provider!r}")

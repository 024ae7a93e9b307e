"""Qonto credentials: the API key header, and OAuth access tokens renewed before they expire.

Qonto's refresh tokens rotate: each renewal returns a new refresh token, and the old one stops
working 60 seconds after its first use. Every worker must therefore read and write the tokens
through one shared :class:`TokenStore`; :class:`MemoryTokenStore` only suits tests and a single
process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import quote, urlencode, urlsplit

import requests

from integrations import errors
from integrations.base import retry_after_seconds
from integrations.breaker import fingerprint

PROVIDER = "qonto"
DEFAULT_TOKEN_URL = "https://oauth.qonto.com/oauth2/token"
DEFAULT_AUTHORIZE_URL = "https://oauth.qonto.com/oauth2/auth"
#: Renew the access token when it expires within this margin (Qonto: "proactive refresh").
REFRESH_MARGIN = timedelta(minutes=5)
#: Qonto's access tokens live one hour; used when the answer leaves ``expires_in`` out.
DEFAULT_LIFETIME = 3600


class TokenStore(Protocol):
    """Where the current tokens live, shared by every worker (a database row, a cache entry).

    ``save`` receives ``{"access_token": str, "refresh_token": str, "expires_at": aware datetime,
    "origin": str}``; ``load`` returns that dict (``expires_at`` may also be an ISO 8601 string) or
    None. A dict without ``origin`` (written by an OAuth connect flow, say) is always used.
    """

    def load(self) -> dict | None: ...

    def save(self, tokens: dict) -> None: ...


class MemoryTokenStore:
    def __init__(self, tokens: dict | None = None) -> None:
        self.tokens = dict(tokens) if tokens else None

    def load(self) -> dict | None:
        return dict(self.tokens) if self.tokens else None

    def save(self, tokens: dict) -> None:
        self.tokens = dict(tokens)


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str = ""
    expires_at: datetime | None = None


class TokenRefreshRefused(errors.ProviderConfigurationError):
    """The token service refused the refresh token or the client credentials."""


class AuthorizationRefused(errors.ProviderConfigurationError):
    """The token service refused an authorization code (used, expired, for another redirect
    address) or our client credentials."""


class TokenServiceUnavailable(errors.ProviderError):
    """The token service timed out, failed or answered nonsense. The API request was not sent, so
    its outcome is known (nothing happened); trying again later may help. Deliberately not a
    ``ProviderTimeout``: the base client would retry the whole request, renewal included."""

    retryable = True

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message, provider=PROVIDER, status_code=status_code)


def api_key_header(login: str, secret_key: str) -> str:
    """Qonto's API key scheme: the raw ``login:secret-key``, no ``Basic``, no base64."""
    return f"{login}:{secret_key}"


def _aware(value: datetime | str | None) -> datetime | None:
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if value else None
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError("token expiry must be timezone-aware")
    return value


class OAuthTokens:
    """The tokens of one Qonto OAuth connection: read from the store, renewed ahead of expiry."""

    def __init__(
        self,
        *,
        access_token: str = "",
        refresh_token: str = "",
        client_id: str = "",
        client_secret: str = "",
        token_url: str = DEFAULT_TOKEN_URL,
        expires_at: datetime | None = None,
        store: TokenStore | None = None,
    ) -> None:
        self.configured = Tokens(access_token, refresh_token, _aware(expires_at))
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_url = token_url
        self.store = store if store is not None else MemoryTokenStore()
        # Tokens in the store that grew out of other configured tokens are stale once the
        # configuration changes (the account was connected again).
        self.origin = fingerprint("qonto-oauth-origin", access_token, refresh_token)

    def current(self) -> Tokens:
        stored = self.store.load()
        configured = self.configured.access_token or self.configured.refresh_token
        if stored and (not configured or stored.get("origin") in (None, self.origin)):
            return Tokens(
                stored.get("access_token") or "",
                stored.get("refresh_token") or "",
                _aware(stored.get("expires_at")),
            )
        return self.configured

    def can_refresh(self, tokens: Tokens) -> bool:
        return bool(tokens.refresh_token and self.client_id and self.client_secret)

    def fresh(self, tokens: Tokens, session: requests.Session, timeout: tuple[float, float]) -> Tokens:
        """``tokens``, renewed first when the access token expires within :data:`REFRESH_MARGIN`.

        An unknown expiry with refresh credentials renews once, so the expiry becomes known instead
        of being discovered through a 401.
        """
        now = datetime.now(UTC)
        expiring = tokens.expires_at is None or tokens.expires_at - now <= REFRESH_MARGIN
        if tokens.access_token and not expiring:
            return tokens
        if self.can_refresh(tokens):
            return self.refresh(tokens, session, timeout)
        if not tokens.access_token or (tokens.expires_at is not None and tokens.expires_at <= now):
            raise errors.ProviderConfigurationError(
                "The Qonto access token is missing or expired, and no refresh token, client id and "
                "client secret are configured to renew it. Connect the Qonto account again.",
                provider=PROVIDER,
            )
        return tokens

    def refresh(self, tokens: Tokens, session: requests.Session, timeout: tuple[float, float]) -> Tokens:
        """Renew the tokens and save them, the rotated refresh token included.

        A transport failure or a 5xx is retried once at once: the old refresh token stays valid for
        60 seconds after its first use, so a renewal whose answer was lost can still be redone.
        """
        form = {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": tokens.refresh_token,
        }
        for attempt in (1, 2):
            try:
                response = self._post(session, form, timeout)
            except TokenServiceUnavailable:
                if attempt == 2:
                    raise
                continue
            if response.status_code < 500 or attempt == 2:
                break
        renewed = self._parse(response, tokens)
        self.store.save(
            {
                "access_token": renewed.access_token,
                "refresh_token": renewed.refresh_token,
                "expires_at": renewed.expires_at,
                "origin": self.origin,
            }
        )
        return renewed

    def _post(self, session: requests.Session, form: dict, timeout: tuple[float, float]) -> requests.Response:
        return _post_form(session, self.token_url, form, timeout)

    def _parse(self, response: requests.Response, tokens: Tokens) -> Tokens:
        return _tokens_from_answer(
            response,
            refused=TokenRefreshRefused,
            refused_message="Qonto refused to renew the access token ({code}). Connect the Qonto account again.",
            previous_refresh_token=tokens.refresh_token,
        )


# The authorization code grant ("Connect Qonto") ------------------------------------------------
def authorize_url(
    *, authorize_url: str, client_id: str, redirect_uri: str, scopes: tuple[str, ...], state: str
) -> str:
    """Where to send the staff member's browser to let Qonto ask for consent."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
        },
        quote_via=quote,
    )
    separator = "&" if urlsplit(authorize_url).query else "?"
    return f"{authorize_url}{separator}{query}"


def exchange_code(
    *,
    code: str,
    redirect_uri: str,
    client_id: str,
    client_secret: str,
    token_url: str = DEFAULT_TOKEN_URL,
    timeout: tuple[float, float] = (5.0, 30.0),
    session: requests.Session | None = None,
) -> Tokens:
    """Trade the code Qonto sent back to ``redirect_uri`` for tokens (``grant_type=authorization_code``).

    Raises :class:`AuthorizationRefused` when Qonto refuses the code or our client credentials
    (``invalid_grant``, ``invalid_client``), :class:`TokenServiceUnavailable` when the token service
    cannot be reached in ``timeout`` or fails. A code is used once, so nothing is retried.
    """
    form = {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "client_secret": client_secret,
        "code": code,
        "redirect_uri": redirect_uri,
    }
    session = session or requests.Session()
    response = _post_form(session, token_url, form, timeout)
    return _tokens_from_answer(
        response,
        refused=AuthorizationRefused,
        refused_message="Qonto refused the authorization ({code}). Start Connect Qonto again.",
    )


def _post_form(
    session: requests.Session, url: str, form: dict, timeout: tuple[float, float]
) -> requests.Response:
    try:
        return session.post(url, data=form, headers={"Accept": "application/json"}, timeout=timeout)
    except requests.Timeout as exc:
        raise TokenServiceUnavailable("Qonto's token service did not answer in time.") from exc
    except requests.ConnectionError as exc:
        raise TokenServiceUnavailable("The connection to Qonto's token service failed.") from exc


def _tokens_from_answer(
    response: requests.Response,
    *,
    refused: type[errors.ProviderError],
    refused_message: str,
    previous_refresh_token: str = "",
) -> Tokens:
    """The tokens of a token service answer, or a typed error. ``refused_message`` names the
    OAuth error code as ``{code}``; the answer's own description is never shown (it may echo input)."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    if status in (400, 401):
        code = str(body.get("error") or f"HTTP {status}")[:64]
        raise refused(refused_message.format(code=code), provider=PROVIDER, status_code=status)
    if status == 429:
        raise errors.ProviderRateLimited(
            "Qonto's token service asks us to slow down.",
            retry_after=retry_after_seconds(response),
            provider=PROVIDER,
            status_code=status,
        )
    if status >= 500:
        raise TokenServiceUnavailable(
            f"Qonto's token service had an internal error (HTTP {status}).", status_code=status
        )
    if status >= 300:
        raise errors.ProviderError(
            f"Unexpected answer from Qonto's token service (HTTP {status}).",
            provider=PROVIDER,
            status_code=status,
        )
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise TokenServiceUnavailable(
            "Qonto's token service answered without an access token.", status_code=status
        )
    try:
        lifetime = int(body.get("expires_in") or DEFAULT_LIFETIME)
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME
    return Tokens(
        access_token=access_token,
        # Qonto rotates refresh tokens; keep the old one only if the answer carries none.
        refresh_token=str(body.get("refresh_token") or previous_refresh_token),
        expires_at=datetime.now(UTC) + timedelta(seconds=lifetime),
    )

"""Qonto's OAuth 2.0 server (``oauth.qonto.com/oauth2/...``), served under ``/qonto/oauth2``.

    GET  /qonto/oauth2/auth?client_id&redirect_uri&scope&response_type=code&state
    POST /qonto/oauth2/token   (form: grant_type=authorization_code|refresh_token, client_id,
                                client_secret, code + redirect_uri, or refresh_token)

The sandbox has one registered application (``qonto_client_id`` / ``qonto_client_secret`` in
:class:`SandboxConfig`) and approves at once: the authorize request is answered with a 302 to
``redirect_uri?code=...&scope=...&state=...`` without a consent page (``qonto_oauth_deny``
answers ``error=access_denied`` instead). Any absolute http(s) ``redirect_uri`` is accepted; an
unknown client or a bad ``redirect_uri`` gets a 400 page, never a redirect. ``state`` is required
(at least 8 characters, as Qonto's server refuses shorter ones).

Tokens as Qonto documents them: a code lives 10 minutes and is used once (a second use is
refused and revokes the tokens the code gave); access tokens live an hour
(``"expires_in": 3600``); a refresh token is issued only with the ``offline_access`` scope, lives
90 days and rotates: each use returns a new one, and the used one keeps working for 60 seconds.
No ``id_token`` is issued (``openid`` is accepted and ignored). Errors are ``{"error", "error_description"}``: 401 ``invalid_client``, 400 ``invalid_grant``,
``invalid_request``, ``unsupported_grant_type``. Client credentials are read from the form or
from HTTP Basic.

The Qonto API (:mod:`.qonto`) accepts these access tokens as ``Bearer``; only the webhook
subscription endpoints check a scope (``webhook``). The fixed ``qonto_token`` of the config is a
token with every scope. Codes and tokens are kept with the data (``--state-file``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
from dataclasses import dataclass
from html import escape
from urllib.parse import parse_qs, urlencode, urlsplit

from integrations.sandbox.config import SandboxConfig
from integrations.sandbox.store import Store
from integrations.sandbox.web import Request, Response, Router, html_response, json_response

PREFIX = "/qonto/oauth2"
SCOPES = (
    "offline_access", "openid", "organization.read", "client_invoices.read", "client_invoice.write",
    "client.read", "client.write", "attachment.read", "attachment.write", "webhook",
    "einvoicing.read",
)  # fmt: skip
MIN_STATE_LENGTH = 8


@dataclass(slots=True)
class OAuthGrant:
    kind: str  # "code", "access" or "refresh"
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float  # Unix time
    #: The code the grant descends from: reusing a code revokes everything it gave.
    family: str
    redirect_uri: str = ""
    #: A code: when it was exchanged; a refresh token: its first use.
    used_at: float | None = None


def _token_error(status: int, error: str, description: str) -> Response:
    return json_response(
        status,
        {"error": error, "error_description": description},
        {"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def _page(status: int, message: str) -> Response:
    return html_response(
        status,
        f"<!DOCTYPE html><html><head><title>Qonto - Error</title></head>"
        f"<body><h1>An error occurred</h1><p>{escape(message)}</p></body></html>",
    )


class QontoOAuth:
    prefix = PREFIX

    def __init__(self, store: Store, config: SandboxConfig) -> None:
        self.store = store
        self.config = config
        self.router = Router()
        self.router.add("GET", "/auth", "oauth_authorize", self.authorize)
        self.router.add("POST", "/token", "oauth_token", self.token)

    def handle(self, req: Request, path: str) -> Response:
        route, params, allowed = self.router.match(req.method, path)
        if route is None:
            if allowed:
                return _token_error(405, "invalid_request", f"Use {' or '.join(allowed)}.")
            return _token_error(404, "not_found", "No such OAuth endpoint.")
        req.params = params
        return route.handler(req)

    def route_name(self, method: str, path: str) -> str:
        route, _, _ = self.router.match(method, path)
        return f"qonto.{route.name}" if route else "qonto.oauth_unknown"

    # Scopes of a bearer token, for the API -----------------------------------------------------
    def scopes_of(self, token: str) -> tuple[str, ...] | None:
        """The scopes of a valid access token; None when it is unknown or expired."""
        if hmac.compare_digest(token, self.config.qonto_token):
            return SCOPES
        with self.store.lock:
            grant = self.store.data.oauth_grants.get(token)
            if grant is None or grant.kind != "access" or grant.expires_at <= time.time():
                return None
            return grant.scopes

    # Authorize ---------------------------------------------------------------------------------
    def authorize(self, req: Request) -> Response:
        if not hmac.compare_digest(req.arg("client_id") or "", self.config.qonto_client_id):
            return _page(400, "The requested OAuth 2.0 client does not exist.")
        redirect_uri = req.arg("redirect_uri") or ""
        parts = urlsplit(redirect_uri)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            return _page(400, "The redirect_uri is missing or not an absolute http(s) URL.")
        state = req.arg("state") or ""
        scopes = tuple((req.arg("scope") or "").split())
        if req.arg("response_type") != "code":
            return _redirect(redirect_uri, error="unsupported_response_type", state=state)
        if len(state) < MIN_STATE_LENGTH:
            return _redirect(
                redirect_uri,
                error="invalid_state",
                error_description=f"The state is missing or has fewer than {MIN_STATE_LENGTH} characters.",
                state=state,
            )
        if unknown := [s for s in scopes if s not in SCOPES]:
            return _redirect(
                redirect_uri,
                error="invalid_scope",
                error_description=f"The requested scope is invalid: {' '.join(unknown)}.",
                state=state,
            )
        if self.config.qonto_oauth_deny:
            return _redirect(
                redirect_uri,
                error="access_denied",
                error_description="The resource owner denied the request.",
                state=state,
            )
        code = "ory_ac_" + secrets.token_urlsafe(32)
        with self.store.lock:
            self._purge()
            self.store.data.oauth_grants[code] = OAuthGrant(
                kind="code",
                client_id=self.config.qonto_client_id,
                scopes=scopes,
                expires_at=time.time() + self.config.qonto_code_seconds,
                family=code,
                redirect_uri=redirect_uri,
            )
        return _redirect(redirect_uri, code=code, scope=" ".join(scopes), state=state)

    # Token -------------------------------------------------------------------------------------
    def token(self, req: Request) -> Response:
        content_type = (req.headers.get_content_type() or "").lower()
        if content_type != "application/x-www-form-urlencoded":
            return _token_error(400, "invalid_request", "The body must be application/x-www-form-urlencoded.")
        form = {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}
        client_id, client_secret = _basic(req.header("Authorization") or "") or (
            form.get("client_id", ""),
            form.get("client_secret", ""),
        )
        if not (
            hmac.compare_digest(client_id, self.config.qonto_client_id)
            and hmac.compare_digest(client_secret, self.config.qonto_client_secret)
        ):
            return _token_error(
                401,
                "invalid_client",
                "Client authentication failed (e.g., unknown client, no client authentication "
                "included, or unsupported authentication method).",
            )
        grant_type = form.get("grant_type", "")
        with self.store.lock:
            self._purge()
            if grant_type == "authorization_code":
                return self._exchange_code(form)
            if grant_type == "refresh_token":
                return self._refresh(form)
        return _token_error(
            400, "unsupported_grant_type", "The authorization grant type is not supported by the server."
        )

    def _exchange_code(self, form: dict) -> Response:
        grants = self.store.data.oauth_grants
        code = form.get("code", "")
        if not code:
            return _token_error(400, "invalid_request", "The code is missing.")
        grant = grants.get(code)
        if grant is None or grant.kind != "code":
            return _invalid_grant("The authorization code is unknown or expired.")
        if grant.used_at is not None:
            for value in [v for v, g in grants.items() if g.family == grant.family and g.kind != "code"]:
                del grants[value]
            return _invalid_grant("The authorization code has already been used.")
        if form.get("redirect_uri", "") != grant.redirect_uri:
            return _invalid_grant("The redirect_uri does not match the one of the authorization request.")
        grant.used_at = time.time()
        return self._issue(grant)

    def _refresh(self, form: dict) -> Response:
        token = form.get("refresh_token", "")
        if not token:
            return _token_error(400, "invalid_request", "The refresh_token is missing.")
        grant = self.store.data.oauth_grants.get(token)
        now = time.time()
        if grant is None or grant.kind != "refresh":
            return _invalid_grant("The refresh token is unknown, expired or revoked.")
        if grant.used_at is None:
            grant.used_at = now
        elif now - grant.used_at >= self.config.qonto_refresh_grace_seconds:
            return _invalid_grant("The refresh token has already been used.")
        return self._issue(grant)

    def _issue(self, grant: OAuthGrant) -> Response:
        now = time.time()
        access = "ory_at_" + secrets.token_urlsafe(32)
        lifetime = self.config.qonto_access_token_seconds
        grants = self.store.data.oauth_grants
        grants[access] = OAuthGrant("access", grant.client_id, grant.scopes, now + lifetime, grant.family)
        body: dict = {
            "access_token": access,
            "expires_in": lifetime,
            "scope": " ".join(grant.scopes),
            "token_type": "bearer",
        }
        if "offline_access" in grant.scopes:
            refresh = "ory_rt_" + secrets.token_urlsafe(32)
            grants[refresh] = OAuthGrant(
                "refresh",
                grant.client_id,
                grant.scopes,
                now + self.config.qonto_refresh_token_seconds,
                grant.family,
            )
            body["refresh_token"] = refresh
        return json_response(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _purge(self) -> None:
        """Drop expired grants (called holding the store lock). Used codes stay until they expire,
        so that a second use is told apart from an unknown code."""
        now = time.time()
        grants = self.store.data.oauth_grants
        for value in [v for v, g in grants.items() if g.expires_at <= now]:
            del grants[value]


def _invalid_grant(description: str) -> Response:
    return _token_error(400, "invalid_grant", description)


def _redirect(redirect_uri: str, **params: str) -> Response:
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return Response(302, b"", "text/plain", {"Location": f"{redirect_uri}{separator}{urlencode(params)}"})


def _basic(header: str) -> tuple[str, str] | None:
    if header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, client_secret = decoded.partition(":")
    return (client_id, client_secret) if sep else None

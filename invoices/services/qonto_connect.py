""" "Connect Qonto": the OAuth authorization code flow that gives the back-office Qonto tokens.

The start sends the staff member to Qonto with a random ``state`` kept in their session (single
use, 10 minutes); Qonto sends them back to the admin with a code and that state; the code is
exchanged for tokens, which go to the token store every worker reads, so the next Qonto request
of any worker uses them. Codes, tokens and the client secret are never shown or logged.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Mapping, MutableMapping

from django.conf import settings
from django.core.exceptions import ValidationError

from integrations import errors
from integrations.qonto.auth import AuthorizationRefused, authorize_url, exchange_code
from invoices.messages import provider_error_message
from invoices.models import Provider
from invoices.providers import DatabaseTokenStore

SESSION_KEY = "qonto_connect"
STATE_SECONDS = 600
#: What the back-office does at Qonto: mirror and write client invoices and clients, read their
#: attachments, read the organization (its IBAN), manage webhook subscriptions, and keep access
#: (a refresh token). Spelled as Qonto's OAuth server expects (note ``client_invoices.read``).
SCOPES = (
    "offline_access",
    "organization.read",
    "client_invoices.read",
    "client_invoice.write",
    "client.read",
    "client.write",
    "attachment.read",
    "attachment.write",
    "webhook",
)

STATE_REFUSED = (
    "This answer from Qonto does not belong to a Connect Qonto started in this session, or it was "
    "used already. Nothing was changed: click Connect Qonto again."
)


def qonto_connect_start(*, session: MutableMapping, redirect_uri: str) -> str:
    """The address of Qonto's consent page; a new ``state`` replaces any pending one."""
    if not (settings.QONTO_CLIENT_ID and settings.QONTO_CLIENT_SECRET):
        raise ValidationError(
            "Connecting Qonto needs the OAuth application's QONTO_CLIENT_ID and QONTO_CLIENT_SECRET; "
            "ask an administrator to set them."
        )
    state = secrets.token_urlsafe(32)
    session[SESSION_KEY] = {
        "state": state,
        "expires": time.time() + STATE_SECONDS,
        "redirect_uri": redirect_uri,
    }
    return authorize_url(
        authorize_url=settings.QONTO_AUTHORIZE_URL,
        client_id=settings.QONTO_CLIENT_ID,
        redirect_uri=redirect_uri,
        scopes=SCOPES,
        state=state,
    )


def qonto_connect_finish(*, session: MutableMapping, params: Mapping[str, str]) -> None:
    """Check the ``state`` Qonto sent back, exchange the code, store the tokens.

    Any refusal is a ValidationError in plain words; the state is used up either way, and nothing
    is asked of Qonto unless the state matches and has not expired.
    """
    pending = session.pop(SESSION_KEY, None)
    state = params.get("state") or ""
    if (
        not isinstance(pending, dict)
        or not state
        or not hmac.compare_digest(state.encode(), str(pending.get("state", "")).encode())
    ):
        raise ValidationError(STATE_REFUSED)
    if float(pending.get("expires", 0)) < time.time():
        raise ValidationError(
            "Connect Qonto took longer than 10 minutes, so its answer is refused. Nothing was changed: "
            "click Connect Qonto again."
        )
    error = (params.get("error") or "")[:64]
    if error == "access_denied":
        raise ValidationError("Qonto was not connected: the access was refused at Qonto.")
    if error:
        raise ValidationError(f"Qonto was not connected: Qonto answered {error!r}.")
    code = params.get("code") or ""
    if not code:
        raise ValidationError("Qonto was not connected: its answer carries no authorization code.")
    try:
        tokens = exchange_code(
            code=code,
            redirect_uri=str(pending.get("redirect_uri", "")),
            client_id=settings.QONTO_CLIENT_ID,
            client_secret=settings.QONTO_CLIENT_SECRET,
            token_url=settings.QONTO_TOKEN_URL,
            timeout=(settings.PROVIDER_CONNECT_TIMEOUT, settings.PROVIDER_READ_TIMEOUT),
        )
    except AuthorizationRefused as exc:
        raise ValidationError(f"Qonto was not connected: {exc}") from exc
    except errors.ProviderError as exc:
        raise ValidationError(provider_error_message(exc)) from exc
    # Without an "origin": tokens from a connection are used whatever tokens the settings hold.
    DatabaseTokenStore(Provider.QONTO).save(
        {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expires_at": tokens.expires_at,
        }
    )

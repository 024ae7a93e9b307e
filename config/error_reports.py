"""What Django's error page and error mails may show: never a credential.

Django's own filter hides settings and request headers whose names look secret, and, with DEBUG
off only, the variables marked with ``sensitive_variables``. A provider call keeps its credentials
in local variables of code that does not import Django (``integrations/``), and rotated OAuth
tokens live in the database, not in the settings. So this filter works with DEBUG on as well, and
cleanses every frame variable (and the settings, request headers and POST data) by

- its name: a variable, setting, header or dict key whose name looks secret is hidden whole;
- its text: every configured secret (each string setting whose name looks secret, of at least
  8 characters, but for names such as ``*_URL`` and ``*_NAME``), ``Bearer <token>`` and the other authorization schemes, the value of an
  ``Authorization`` header, ``access_token=...`` or ``'client_secret': '...'`` pairs and the
  password in a URL are replaced, wherever they appear in the variable's text.

The rules go by names and shapes, never by a database query: the page must render when the
database is what failed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from django.conf import settings
from django.template.defaultfilters import pprint
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

SUBSTITUTE = SafeExceptionReporterFilter.cleansed_substitute
#: Names of variables, settings, headers and keys whose whole value is hidden.
HIDDEN_NAMES = re.compile("API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HEADER|CREDENTIAL|COOKIE", re.I)
#: A configured secret shorter than this is not searched for in text (it would match too much).
MIN_SECRET_LENGTH = 8
#: Settings named like this describe a secret rather than hold one (``QONTO_TOKEN_URL``,
#: ``CSRF_COOKIE_NAME``): their values are not searched for (a password in a URL is, by shape).
NOT_A_SECRET = re.compile(r"_(URL|NAME|PATH|MODEL|DOMAIN|SAMESITE)$")
MAX_DEPTH = 6

#: "Bearer <token>" in any case; "Basic <credentials>" capitalised only ("basic" is a common word).
_SCHEME_TOKEN = re.compile(r"\b((?i:bearer)|Basic)(\s+)[^\s'\"\\,;)}\]]+")
_AUTHORIZATION = re.compile(r"(authorization['\"]?\s*[:=]\s*(?:b?['\"])?)[^'\"\\\r\n]+", re.I)
_SECRET_PAIR = re.compile(
    r"(\b[\w-]*(?:TOKEN|SECRET|PASS|KEY|SIGNATURE|CREDENTIAL|COOKIE)[\w-]*['\"]?\s*[:=]\s*(?:b?['\"])?)"
    r"[^\s'\"\\&,;)}\]]+",
    re.I,
)
_URL_PASSWORD = re.compile(r"(://[^:/@\s'\"]*:)[^@/\s'\"]+(@)")


def configured_secrets() -> list[str]:
    """Every string setting whose name looks secret, longest first, in the forms text shows it in."""
    found: set[str] = set()
    for name in dir(settings):
        if not name.isupper() or not HIDDEN_NAMES.search(name) or NOT_A_SECRET.search(name):
            continue
        value = getattr(settings, name, None)
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
            found.update({value, repr(value)[1:-1], quote(value, safe=""), quote_plus(value)})
    return sorted(found, key=len, reverse=True)


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every configured secret and anything shaped like a credential replaced."""
    for secret in configured_secrets() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, SUBSTITUTE)
    text = _SCHEME_TOKEN.sub(rf"\1\2{SUBSTITUTE}", text)
    text = _AUTHORIZATION.sub(rf"\1{SUBSTITUTE}", text)
    text = _SECRET_PAIR.sub(rf"\1{SUBSTITUTE}", text)
    return _URL_PASSWORD.sub(rf"\1{SUBSTITUTE}\2", text)


class Shown:
    """A frame variable as the error page shows it: its text, already cleansed."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class SecretsFilter(SafeExceptionReporterFilter):
    hidden_settings = HIDDEN_NAMES

    def is_active(self, request: Any) -> bool:
        # DEBUG on is where the frame variables are shown: ``sensitive_variables`` and
        # ``sensitive_post_parameters`` count there too.
        return True

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        return redact_text(cleansed) if isinstance(cleansed, str) else cleansed

    def get_post_parameters(self, request: Any) -> Any:
        parameters = super().get_post_parameters(request)
        if not parameters:
            return parameters
        cleansed = parameters.copy()
        for name, values in parameters.lists():
            if self.hidden_settings.search(name):
                cleansed.setlist(name, [SUBSTITUTE for _ in values])
            else:
                cleansed.setlist(name, [redact_text(v) if isinstance(v, str) else v for v in values])
        return cleansed

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        secrets = configured_secrets()
        return [
            (name, self.cleanse_variable(name, value, secrets))
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]

    def cleanse_variable(self, name: str, value: Any, secrets: list[str]) -> Any:
        if isinstance(name, str) and self.hidden_settings.search(name):
            return SUBSTITUTE
        if isinstance(value, Shown) or (isinstance(value, str) and value == SUBSTITUTE):
            return value
        return Shown(redact_text(pprint(self._cleanse_keys(value, 0)), secrets))

    def _cleanse_keys(self, value: Any, depth: int) -> Any:
        """Mappings (and the lists and tuples holding them) with the values of secret-looking keys hidden."""
        if depth >= MAX_DEPTH:
            return value
        try:
            if isinstance(value, Mapping):
                return {
                    k: SUBSTITUTE
                    if isinstance(k, str) and self.hidden_settings.search(k)
                    else self._cleanse_keys(v, depth + 1)
                    for k, v in value.items()
                }
            if isinstance(value, list):
                return [self._cleanse_keys(v, depth + 1) for v in value]
            if isinstance(value, tuple) and type(value) is tuple:
                return tuple(self._cleanse_keys(v, depth + 1) for v in value)
        except Exception:  # a mapping that cannot be read is shown as its text, still redacted
            return value
        return value


class SecretsExceptionReporter(ExceptionReporter):
    """The error report with the exception messages and the query string cleansed as well."""

    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        secrets = configured_secrets()
        for key in ("exception_value", "exception_notes", "request_insecure_uri"):
            if isinstance(data.get(key), str):
                data[key] = redact_text(data[key], secrets)
        for frame in data.get("frames", []):
            if frame.get("exc_cause") is not None:
                frame["exc_cause"] = redact_text(str(frame["exc_cause"]), secrets)
        if "request_GET_items" in data:
            data["request_GET_items"] = [
                (k, SUBSTITUTE if HIDDEN_NAMES.search(k) else redact_text(str(v), secrets))
                for k, v in data["request_GET_items"]
            ]
        return data

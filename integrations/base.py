"""The one HTTP client every provider client builds on.

A ``requests.Session`` with a timeout on every request, the provider's auth headers, the shared
rate limiter before every request (retries included; the provider's limits less a margin, at the
client's priority: staff work or the scan), bounded retries for reads only, and every failure
turned into a typed error from :mod:`integrations.errors`.
"""

from __future__ import annotations

import logging
import os
import random
import time
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

from integrations import errors
from integrations.ratelimit import STAFF, RateLimiter, Window

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
#: The share of every documented limit left unused: clocks differ, and the provider counts too.
DEFAULT_MARGIN = 0.05
READ_METHODS = frozenset({"GET", "HEAD"})
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})


class BaseClient:
    provider = ""
    #: Windows of the provider's documented request budget, shared by every worker. An instance
    #: spends these less its margin (``self.windows``).
    windows: tuple[Window, ...] = ()

    def __init__(
        self,
        *,
        base_url: str,
        rate_limiter: RateLimiter | None = None,
        rate_limit_key: str = "",
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        read_retries: int = 2,
        max_wait: float = 2.0,
        priority: str = STAFF,
        margin: float = DEFAULT_MARGIN,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.rate_limiter = rate_limiter
        self.rate_limit_key = rate_limit_key or self.provider
        self.windows = tuple(w.less(margin) for w in type(self).windows)
        self.priority = priority
        self.timeout = timeout
        self.read_retries = read_retries
        self.max_wait = max_wait
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = "invoice-backoffice/1.0"
        # requests would read the proxy variables and ~/.netrc again for every request, close to a
        # millisecond of CPU each time, as much as parsing a MijnKlantportaal page. They are read
        # once instead (``environment_proxies``); our own auth headers are all the credentials the
        # providers need.
        self.session.trust_env = False
        if self.session.verify is True:
            self.session.verify = (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            )
        self.request_count = 0

    # Hooks for the provider clients ---------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def error_for(self, response: requests.Response) -> errors.ProviderError:
        """Turn an error response into a typed error; providers override ``error_text``."""
        status = response.status_code
        message, trace_id, details = self.error_text(response)
        kwargs = {"provider": self.provider, "status_code": status, "trace_id": trace_id, "details": details}
        if status == 429:
            return errors.ProviderRateLimited(
                message or "The provider asks us to slow down.",
                retry_after=retry_after_seconds(response),
                **kwargs,
            )
        if status in (401, 403):
            return errors.ProviderUnauthorized(
                message or "The provider refused our credentials. Check the API key in the configuration.",
                **kwargs,
            )
        if status == 404:
            return errors.ProviderNotFound(message or "The provider does not know this object.", **kwargs)
        if status == 426:
            return errors.ProviderLicenseLimit(
                message or "The monthly invoice limit of the licence is reached.", **kwargs
            )
        if status in (400, 409, 422):
            return errors.ProviderValidationError(message or "The provider refused the data.", **kwargs)
        if status >= 500:
            return errors.ProviderServerError(
                message or f"The provider had an internal error (HTTP {status}).", **kwargs
            )
        return errors.ProviderError(
            message or f"Unexpected answer from the provider (HTTP {status}).", **kwargs
        )

    def error_text(self, response: requests.Response) -> tuple[str, str, Any]:
        """(plain message, trace id, structured details) from an error body."""
        return "", "", None

    # The request loop -----------------------------------------------------------------------
    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, expect_json: bool = True, **kwargs: Any) -> Any:
        method = method.upper()
        attempts = 1 + (self.read_retries if method in READ_METHODS else 0)
        for attempt in range(1, attempts + 1):
            try:
                response = self.send(method, path, **kwargs)
                if response.status_code in TRANSIENT_STATUSES:
                    raise self.error_for(response)
            except (errors.ProviderServerError, errors.ProviderTimeout, errors.ProviderConnectionError):
                if attempt == attempts:
                    raise
                time.sleep(min(4.0, 0.25 * 2**attempt) * random.uniform(0.5, 1.0))
                continue
            return self.decode(response, expect_json=expect_json)
        raise AssertionError("unreachable")  # pragma: no cover

    def send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        # Credentials first: a call refused locally must not spend the shared budget.
        headers = {**self.auth_headers(), **kwargs.pop("headers", {})}
        if self.rate_limiter is not None and self.windows:
            try:
                wait = self.rate_limiter.acquire(
                    self.rate_limit_key, self.windows, max_wait=self.max_wait, priority=self.priority
                )
            except errors.RateLimiterUnavailable as exc:
                exc.provider = self.provider
                raise
            if wait is not None:
                raise errors.ProviderRateLimited(
                    "Our shared request budget for this provider is spent for now.",
                    provider=self.provider,
                    retry_after=wait,
                )
        self.request_count += 1
        try:
            url = self.url(path)
            return self.session.request(
                method, url, headers=headers, timeout=self.timeout, proxies=environment_proxies(url), **kwargs
            )
        except requests.ConnectTimeout as exc:
            unreachable = errors.ProviderConnectionError(
                "Could not reach the provider in time.", provider=self.provider
            )
            unreachable.outcome_unknown = False  # the request never left
            raise unreachable from exc
        except requests.Timeout as exc:
            raise errors.ProviderTimeout(
                "The provider did not answer in time.", provider=self.provider
            ) from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise errors.ProviderConnectionError(
                "The connection to the provider failed.", provider=self.provider
            ) from exc
        except requests.RequestException as exc:
            raise errors.ProviderBadResponse(
                "The provider's answer could not be read.", provider=self.provider
            ) from exc

    def decode(self, response: requests.Response, *, expect_json: bool) -> Any:
        if response.status_code >= 400:
            raise self.error_for(response)
        if not expect_json:
            return response.content
        if not response.content:
            return {}
        content_type = response.headers.get("Content-Type", "")
        if "html" in content_type.lower() or response.content.lstrip()[:1] == b"<":
            raise errors.ProviderConfigurationError(
                "The provider answered with a web page instead of API data. "
                "Check the base URL and, for a sandbox, its staging token.",
                provider=self.provider,
                status_code=response.status_code,
            )
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise errors.ProviderBadResponse(
                "The provider sent an answer that is not valid JSON.",
                provider=self.provider,
                status_code=response.status_code,
            ) from exc

    def download(self, url: str) -> bytes:
        """Fetch a file from a short-lived link the provider handed out (no auth header)."""
        try:
            response = self.session.get(url, timeout=self.timeout, proxies=environment_proxies(url))
        except requests.RequestException as exc:
            raise errors.ProviderConnectionError("The file download failed.", provider=self.provider) from exc
        if response.status_code >= 400:
            # A signed link that expired or was refused: asking the provider for a new one helps.
            raise errors.ProviderBadResponse(
                f"The provider's download link did not work (HTTP {response.status_code}).",
                provider=self.provider,
                status_code=response.status_code,
            )
        return response.content

    def download_pdf(self, url: str, *, of: str) -> bytes:
        """A file that must be a PDF: anything else is refused before it is kept or shown."""
        content = self.download(url)
        if b"%PDF-" not in content[:1024]:
            raise errors.ProviderBadResponse(f"The file of {of} is not a PDF.", provider=self.provider)
        return content


def environment_proxies(url: str) -> dict[str, str]:
    """The proxies the environment (``HTTPS_PROXY``, ``NO_PROXY``, ...) gives for a URL's host."""
    parts = urlsplit(url)
    return _proxies_for(parts.scheme, parts.netloc)


@cache
def _proxies_for(scheme: str, netloc: str) -> dict[str, str]:
    return requests.utils.get_environ_proxies(f"{scheme}://{netloc}/")


def retry_after_seconds(response: requests.Response, default: float = 60.0) -> float:
    """Seconds from a ``Retry-After`` header (seconds form) or ``X-RateLimit-Reset`` (epoch)."""
    value = response.headers.get("Retry-After")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None and when.tzinfo is not None:
                return max(when.timestamp() - time.time(), 0.0)
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(float(reset) - time.time(), 0.0)
        except ValueError:
            pass
    return default

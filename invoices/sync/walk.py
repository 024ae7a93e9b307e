"""Reading a provider's list inside a run: page by page from a position, each page tried again
when its failure may pass, and the position known at every moment, so a run that stops can be
resumed where it stopped."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from time import monotonic, sleep

from django.conf import settings

from integrations import errors
from integrations.types import Page
from invoices.models import Provider
from invoices.sync.cursors import cursor, save_cursor

logger = logging.getLogger(__name__)


def wait_before_retry(exc: errors.ProviderError, attempt: int, *, patient: bool = False) -> float | None:
    """Seconds to wait before asking for the page again after ``attempt`` tries, None to give up.

    Tried again: what may pass (5xx, timeout, reset, an answer that is not JSON, a web page instead
    of the API, the provider's 429 with a short ``Retry-After``). A ``patient`` walk (a full run)
    also waits for our shared request budget however long it takes, without counting attempts."""
    if isinstance(exc, errors.ProviderRateLimited):
        if exc.status_code is None:  # our own shared budget, not the provider's answer
            return exc.retry_after if patient else None
        short = exc.retry_after <= settings.SYNC_SHORT_RETRY_AFTER_SECONDS
        return exc.retry_after if (patient or short) and attempt < settings.SYNC_PAGE_ATTEMPTS else None
    web_page = isinstance(exc, errors.ProviderConfigurationError) and exc.status_code is not None
    if not (exc.retryable or web_page) or attempt >= settings.SYNC_PAGE_ATTEMPTS:
        return None
    backoff = min(settings.SYNC_PAGE_BACKOFF_SECONDS * 2 ** (attempt - 1), 30.0)
    return backoff * random.uniform(0.5, 1.0)


class PageWalk:
    """The pages of one list from ``start``: ``next`` is the first page not handed out yet (None
    once the last page was), ``last`` the last page handed out.

    ``fetch(page=n)`` reads one page (a client's ``list_...`` method with its filters bound)."""

    def __init__(self, fetch: Callable[..., Page], start: int = 1, *, patient: bool = False) -> None:
        self.fetch = fetch
        self.next: int | None = start
        self.last: Page | None = None
        self.patient = patient

    def pages(self, *, limit: int | None = None, seconds: float | None = None) -> Iterator[Page]:
        """The next pages: at most ``limit``, and after ``seconds`` no more than the first."""
        deadline = None if seconds is None else monotonic() + seconds
        taken = 0
        while self.next is not None and (limit is None or taken < limit):
            if deadline is not None and taken and monotonic() >= deadline:
                return
            page = self._fetch(self.next)
            self.last, self.next = page, page.next_page
            taken += 1
            yield page

    def _fetch(self, number: int) -> Page:
        attempt = 1
        while True:
            try:
                return self.fetch(page=number)
            except errors.ProviderError as exc:
                wait = wait_before_retry(exc, attempt, patient=self.patient)
                if wait is None:
                    raise
                logger.info("Page %s again in %.1f s (attempt %s failed: %s)", number, wait, attempt, exc)
                sleep(wait)
                if not (isinstance(exc, errors.ProviderRateLimited) and exc.status_code is None):
                    attempt += 1


def customer_pages(client, provider: str) -> Iterator[Page]:
    """Every page of a provider's customers, from where the last run that did not finish stopped.
    The caller writes each page before it asks for the next: the position is saved then."""
    position = cursor(provider, "customers_page")
    fetch = client.list_customers if provider == Provider.MKP else client.list_clients
    walk = PageWalk(fetch, int(position.value or 1))
    for page in walk.pages():
        yield page
        save_cursor(position, str(walk.next or ""))

"""The look-up of a MijnKlantportaal create whose answer was lost.

MijnKlantportaal has no idempotency key and no filter by number: whether our create went through
can only be learnt from its list, which is in creation order (a create that went through sits on
the last pages). So the look-up reads it newest first, at most ``MKP_LOOKUP_PAGES_PER_ATTEMPT``
pages an attempt, and keeps the next page to read on the row (``Invoice.lookup_next_page``): the
next attempt, or staff's "Send again", goes on where this one stopped. Each attempt counts toward
``PUSH_MAX_ATTEMPTS`` and ends within ``ATTEMPT_SECONDS``, inside the push's claim.

The first attempt starts on the page after the invoices the mirror knows and reads forward to the
end of the list (what was created since the last sync), then the look-up reads downward to page 1.
Reading downward, a deletion at the provider moves invoices onto pages still to be read, never
onto pages already read. Only a look-up that read page 1 proves the invoice absent.
"""

from __future__ import annotations

import time

from django.conf import settings

from integrations import errors
from integrations.types import RemoteInvoice
from invoices.models import Invoice, Provider

PAGE_SIZE = 15  # invoices on one MijnKlantportaal list page
#: How long one attempt may read, well inside the claim (a claim older than 10 minutes is taken over).
ATTEMPT_SECONDS = 120.0

#: ``lookup_next_page`` of a look-up that read every page.
DONE = 0


class LookupUnfinished(errors.ProviderError):
    """This attempt's pages are spent, or reading one failed: the look-up goes on next attempt.
    Unlike a wait for the budget, it counts as an attempt."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float = 0.0) -> None:
        super().__init__(message, provider=Provider.MKP)
        self.retry_after = retry_after


class FoundUnreadable(errors.ProviderError):
    """The look-up met an invoice with our number that MijnKlantportaal sends in a form the mirror
    cannot hold (quarantined). It exists, so the create is never sent again; staff see why."""


def find_lost_create(client, invoice: Invoice) -> RemoteInvoice | None:
    """The invoice our lost create made, or None when every page was read without finding it.
    Raises :class:`LookupUnfinished` when this attempt could not finish."""
    pages = _Pages(client, invoice, settings.MKP_LOOKUP_PAGES_PER_ATTEMPT)
    try:
        if invoice.lookup_next_page is None:
            start = _first_page_to_read(invoice)
            number: int | None = start
            while number is not None:
                found, number = pages.read(number)
                if found is not None:
                    return found
            _remember(invoice, start - 1)
        while invoice.lookup_next_page > DONE:
            found, _ = pages.read(invoice.lookup_next_page)
            if found is not None:
                return found
            _remember(invoice, invoice.lookup_next_page - 1)
    except (FoundUnreadable, errors.ProviderRateLimited):
        # A wait for the request budget (ours, or a 429) is no attempt: the push reschedules after
        # it and gives the attempt back; the pages read downward so far are kept on the row.
        raise
    except errors.ProviderError as exc:
        raise LookupUnfinished(
            f"Looking for it at MijnKlantportaal was interrupted ({exc}); {_left(invoice)}",
            retry_after=getattr(exc, "retry_after", 0.0),
        ) from exc
    return None


def forget(invoice: Invoice) -> None:
    """A new create is about to be sent: a later look-up starts afresh."""
    _remember(invoice, None)


class _Pages:
    """Reads pages up to this attempt's budget of pages and time."""

    def __init__(self, client, invoice: Invoice, budget: int) -> None:
        self.client, self.invoice, self.left = client, invoice, budget
        self.deadline = time.monotonic() + ATTEMPT_SECONDS

    def read(self, number: int) -> tuple[RemoteInvoice | None, int | None]:
        if self.left <= 0 or time.monotonic() > self.deadline:
            raise LookupUnfinished(
                f"Its answer was lost, so it is looked for at MijnKlantportaal; {_left(self.invoice)}"
            )
        self.left -= 1
        page = self.client.list_invoices(page=number)
        found = next((item for item in page.items if item.number == self.invoice.number), None)
        unreadable = next((p for p in page.problems if _number_of(p.raw) == self.invoice.number), None)
        if found is None and unreadable is not None:
            raise FoundUnreadable(
                f"MijnKlantportaal has an invoice numbered {self.invoice.number} ({unreadable.remote_id}),"
                f" but sends it in a form this back-office cannot hold ({unreadable.message}); see Sync"
                ' problems. It was not sent again. Once MijnKlantportaal corrects it, "Send again"'
                " takes it over.",
                provider=Provider.MKP,
            )
        return found, page.next_page


def _number_of(raw: object) -> object:
    return raw.get("invoiceNumber") if isinstance(raw, dict) else None


def _first_page_to_read(invoice: Invoice) -> int:
    known = (
        Invoice.objects.filter(provider=Provider.MKP, remote_id__isnull=False, removed_at__isnull=True)
        .exclude(pk=invoice.pk)
        .count()
    )
    return known // PAGE_SIZE + 1


def _remember(invoice: Invoice, next_page: int | None) -> None:
    invoice.lookup_next_page = next_page
    Invoice.objects.filter(pk=invoice.pk).update(lookup_next_page=next_page)


def _left(invoice: Invoice) -> str:
    if invoice.lookup_next_page is None:
        return "it goes on with the newest pages."
    return f"pages {invoice.lookup_next_page} down to 1 are still to be read."

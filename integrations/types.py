"""Provider-neutral shapes that the mappers return and the domain consumes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from integrations.errors import ProviderRecordError

T = TypeVar("T")

# Our statuses (see DOMAIN.md). "removed at provider" is recorded by the domain, not here.
STATUS_DRAFT = "draft"
STATUS_OPEN = "open"
STATUS_PAID = "paid"
STATUS_CANCELED = "canceled"


@dataclass(frozen=True)
class RemoteCustomer:
    remote_id: str
    name: str
    email: str = ""
    remote_created_at: datetime | None = None
    remote_updated_at: datetime | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class RemoteInvoice:
    remote_id: str
    number: str
    status: str
    customer_remote_id: str = ""
    customer_name: str = ""
    issue_date: date | None = None
    due_date: date | None = None
    amount: Decimal | None = None
    vat_amount: Decimal | None = None
    currency: str = "EUR"
    paid_at: datetime | None = None
    remote_created_at: datetime | None = None
    remote_updated_at: datetime | None = None
    payment_link: str = ""
    attachment_id: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class RemoteWebhook:
    """A webhook record at the provider: one event type sent to one URL, signed with its secret."""

    remote_id: str
    event_type: str
    url: str
    secret: str = field(default="", repr=False)

    @property
    def event_types(self) -> tuple[str, ...]:
        return (self.event_type,)


@dataclass(frozen=True)
class RemoteSubscription:
    """A Qonto webhook subscription: one or more event types sent to one URL. Qonto shows the
    secret only in the answer that created it; listed subscriptions have none."""

    remote_id: str
    event_types: tuple[str, ...]
    url: str
    secret: str = field(default="", repr=False)


@dataclass(frozen=True)
class PdfFile:
    """A PDF to upload: the name shown at the provider and its bytes."""

    name: str
    content: bytes


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list endpoint. ``next_page`` is the number of the next page, or None.

    ``problems`` are the records of the page that the mirror cannot hold, one typed error each;
    they are not in ``items``."""

    items: list[T]
    number: int
    next_page: int | None
    problems: list[ProviderRecordError] = field(default_factory=list)

    @classmethod
    def mapped(
        cls, records: Iterable[Any], parse: Callable[[Any], T], *, number: int, next_page: int | None
    ) -> Page[T]:
        """Each record through ``parse`` on its own: one bad record never fails the page."""
        items, problems = [], []
        for record in records:
            try:
                items.append(parse(record))
            except ProviderRecordError as problem:
                problems.append(problem)
        return cls(items=items, number=number, next_page=next_page, problems=problems)

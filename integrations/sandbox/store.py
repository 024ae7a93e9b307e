"""In-memory state of both sandboxed providers, guarded by one re-entrant lock.

Handlers take ``store.lock`` around every read-modify-write, so a request sees and leaves a
consistent state whatever the number of server threads. Every change of an invoice goes through
:meth:`Store.touch`, which moves ``updated_at`` forward (strictly increasing, millisecond steps).

MijnKlantportaal invoices are kept in creation order: ``GET /customer-invoices`` pages through
them oldest first (the order of their internal auto-increment id, which the ``inv_`` id hides).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import secrets
import string
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from integrations.sandbox import times
from integrations.sandbox.pdf import make_invoice_pdf

if TYPE_CHECKING:
    from integrations.sandbox.oauth import OAuthGrant
    from integrations.sandbox.webhooks import MkpWebhook, QontoSubscription

_ID_ALPHABET = string.ascii_lowercase + string.digits
QONTO_STATUSES = ("draft", "unpaid", "paid", "canceled")


@dataclass(slots=True)
class MkpCustomer:
    id: str
    company_name: str
    address: str
    zip_code: str
    city: str
    country_code: str
    primary_email: str
    phone: str | None
    created_at: datetime


@dataclass(slots=True)
class MkpInvoice:
    id: str
    customer_id: str
    invoice_number: str
    issued_at: date
    due_at: date | None
    amount: Decimal
    paid_at: datetime | None
    created_at: datetime
    updated_at: datetime
    payment_token: str
    send_notification: bool = False
    #: The uploaded file; None for seeded invoices, whose PDF is written on first download.
    pdf: bytes | None = None

    def status(self, today: date) -> str:
        if self.paid_at is not None:
            return "paid"
        return "overdue" if self.due_at is not None and self.due_at < today else "open"


@dataclass(slots=True)
class QontoClient:
    id: str
    name: str
    kind: str
    email: str
    vat_number: str | None
    tax_identification_number: str | None
    address: str
    city: str
    zip_code: str
    country_code: str
    locale: str
    created_at: datetime
    updated_at: datetime
    first_name: str | None = None
    last_name: str | None = None


@dataclass(slots=True)
class QontoInvoice:
    id: str
    number: str | None
    status: str
    client_id: str | None
    issue_date: date
    due_date: date | None
    total: Decimal
    vat: Decimal
    created_at: datetime
    updated_at: datetime
    finalized_at: datetime | None = None
    paid_at: datetime | None = None
    attachment_id: str | None = None
    imported: bool = False
    item_title: str = "Prestation de services"


@dataclass(slots=True)
class Attachment:
    id: str
    file_name: str
    created_at: datetime
    invoice_id: str | None
    #: The uploaded bytes; None for seeded invoices, whose PDF is written on first download.
    content: bytes | None = None


@dataclass(slots=True)
class FileLink:
    """A short-lived download link (MKP ``/pdf`` link, Qonto attachment ``url``)."""

    kind: str  # "mkp" (object_id = invoice id) or "qonto" (object_id = attachment id)
    object_id: str
    expires_at: datetime


@dataclass
class _Data:
    mkp_customers: dict[str, MkpCustomer] = field(default_factory=dict)
    mkp_invoices: dict[str, MkpInvoice] = field(default_factory=dict)
    mkp_order: list[str] = field(default_factory=list)
    mkp_month_counts: Counter = field(default_factory=Counter)
    qonto_clients: dict[str, QontoClient] = field(default_factory=dict)
    qonto_invoices: dict[str, QontoInvoice] = field(default_factory=dict)
    attachments: dict[str, Attachment] = field(default_factory=dict)
    #: sha256 of an imported file -> the Qonto invoice it created (bulk import is idempotent).
    imported_files: dict[str, str] = field(default_factory=dict)
    links: dict[str, FileLink] = field(default_factory=dict)
    #: (provider, year) -> last invoice sequence number handed out by seeding.
    number_seq: Counter = field(default_factory=Counter)
    #: Webhook registrations, in creation order (see :mod:`.webhooks`).
    mkp_webhooks: dict[str, MkpWebhook] = field(default_factory=dict)
    qonto_subscriptions: dict[str, QontoSubscription] = field(default_factory=dict)
    #: Qonto OAuth codes, access and refresh tokens by their value (see :mod:`.oauth`).
    oauth_grants: dict[str, OAuthGrant] = field(default_factory=dict)


class Store:
    def __init__(self, *, rng_seed: int | None = None) -> None:
        self.lock = threading.RLock()
        self.rng = random.Random(rng_seed)
        self._last_tick: datetime | None = None
        self.data = _Data()
        #: Filtered and sorted Qonto invoice lists, dropped on any change to an invoice.
        self._qonto_lists: dict = {}
        #: Object id -> fields shown instead of the stored ones (a hostile record); memory only.
        self.overrides: dict[str, dict] = {}

    def reset(self) -> None:
        with self.lock:
            self.data = _Data()
            self._last_tick = None
            self._qonto_lists.clear()
            self.overrides.clear()

    # Keeping the data between runs -------------------------------------------------------------
    def save(self, path: str) -> None:
        """Write every object to ``path`` (replaced at once: a crash leaves the previous file)."""
        with self.lock:
            content = pickle.dumps(self.data, protocol=pickle.HIGHEST_PROTOCOL)
        partial = f"{path}.partial"
        with open(partial, "wb") as fh:
            fh.write(content)
        os.replace(partial, path)

    def load(self, path: str) -> dict:
        """Replace the data with what :meth:`save` wrote; returns the counts per provider."""
        refused = f"{path} is not a sandbox data file; delete it to start from seeded data"
        try:
            with open(path, "rb") as fh:
                # A file this sandbox wrote itself, in the project's own var/ folder.
                data = pickle.load(fh)  # noqa: S301
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from exc
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as exc:
            raise ValueError(refused) from exc
        if not isinstance(data, _Data):
            raise ValueError(refused)
        for missing in (f for f in fields(_Data) if f.name not in vars(data)):
            setattr(data, missing.name, missing.default_factory())  # a file from an older sandbox
        with self.lock:
            self.data = data
            self._last_tick = None
            self._qonto_lists.clear()
            return {"mkp": len(data.mkp_invoices), "qonto": len(data.qonto_invoices)}

    # Ids and clock -----------------------------------------------------------------------------
    def tick(self) -> datetime:
        """Now (UTC, milliseconds), strictly later than the previous tick."""
        with self.lock:
            now = times.utcnow()
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)
            if self._last_tick is not None and now <= self._last_tick:
                now = self._last_tick + timedelta(milliseconds=1)
            self._last_tick = now
            return now

    def touch(self, obj: MkpInvoice | QontoInvoice | QontoClient) -> None:
        with self.lock:
            obj.updated_at = self.tick()
            self._qonto_lists.clear()

    def mkp_id(self, prefix: str, rng: random.Random | None = None) -> str:
        """``inv_`` / ``cst_`` followed by 14 random lowercase alphanumerics."""
        return prefix + "".join((rng or self.rng).choices(_ID_ALPHABET, k=14))

    def uuid(self, rng: random.Random | None = None) -> str:
        return str(uuid.UUID(int=(rng or self.rng).getrandbits(128), version=4))

    # MijnKlantportaal ------------------------------------------------------------------------
    def add_mkp_customer(self, customer: MkpCustomer) -> MkpCustomer:
        with self.lock:
            self.data.mkp_customers[customer.id] = customer
        return customer

    def add_mkp_invoice(self, invoice: MkpInvoice) -> MkpInvoice:
        with self.lock:
            self.data.mkp_invoices[invoice.id] = invoice
            self.data.mkp_order.append(invoice.id)
            self.data.mkp_month_counts[_month(invoice.created_at)] += 1
        return invoice

    def remove_mkp_customer(self, customer_id: str) -> bool:
        """Delete a customer without invoices; False when unknown or still invoiced."""
        with self.lock:
            if customer_id not in self.data.mkp_customers or any(
                inv.customer_id == customer_id for inv in self.data.mkp_invoices.values()
            ):
                return False
            del self.data.mkp_customers[customer_id]
            return True

    def remove_mkp_invoice(self, invoice_id: str) -> bool:
        with self.lock:
            invoice = self.data.mkp_invoices.pop(invoice_id, None)
            if invoice is None:
                return False
            self.data.mkp_order.remove(invoice_id)
            self.data.mkp_month_counts[_month(invoice.created_at)] -= 1
            return True

    def mkp_invoices_this_month(self) -> int:
        with self.lock:
            return self.data.mkp_month_counts[_month(times.utcnow())]

    def mkp_number_taken(self, number: str) -> bool:
        with self.lock:
            return any(inv.invoice_number == number for inv in self.data.mkp_invoices.values())

    def mkp_pdf(self, invoice: MkpInvoice) -> bytes:
        if invoice.pdf is not None:
            return invoice.pdf
        customer = self.data.mkp_customers.get(invoice.customer_id)
        return make_invoice_pdf(
            number=invoice.invoice_number,
            amount=invoice.amount,
            issue_date=invoice.issued_at,
            due_date=invoice.due_at,
            customer=customer.company_name if customer else "",
        )

    # Qonto ---------------------------------------------------------------------------------
    def add_qonto_client(self, client: QontoClient) -> QontoClient:
        with self.lock:
            self.data.qonto_clients[client.id] = client
        return client

    def add_qonto_invoice(self, invoice: QontoInvoice, attachment: Attachment | None = None) -> QontoInvoice:
        with self.lock:
            self.data.qonto_invoices[invoice.id] = invoice
            self._qonto_lists.clear()
            if attachment is not None:
                self.data.attachments[attachment.id] = attachment
                invoice.attachment_id = attachment.id
                if attachment.content is not None:
                    self.data.imported_files[file_hash(attachment.content)] = invoice.id
        return invoice

    def remove_qonto_client(self, client_id: str) -> bool:
        """Delete a client without invoices; False when unknown or still invoiced."""
        with self.lock:
            if client_id not in self.data.qonto_clients or any(
                inv.client_id == client_id for inv in self.data.qonto_invoices.values()
            ):
                return False
            del self.data.qonto_clients[client_id]
            return True

    def remove_qonto_invoice(self, invoice_id: str) -> bool:
        with self.lock:
            invoice = self.data.qonto_invoices.pop(invoice_id, None)
            if invoice is None:
                return False
            self._qonto_lists.clear()
            attachment = self.data.attachments.pop(invoice.attachment_id or "", None)
            if attachment is not None and attachment.content is not None:
                self.data.imported_files.pop(file_hash(attachment.content), None)
            return True

    def qonto_invoice_list(self, key: Hashable, build: Callable[[], list]) -> list:
        """``build()``'s list of Qonto invoices for ``key`` (the filters and sort of a list request),
        kept until an invoice is added, removed or touched; callers must not change the list. A list
        of N invoices filtered and sorted once, not on every page request."""
        with self.lock:
            rows = self._qonto_lists.get(key)
            if rows is None:
                if len(self._qonto_lists) >= 16:
                    self._qonto_lists.clear()
                rows = self._qonto_lists[key] = build()
            return rows

    def attachment_bytes(self, attachment: Attachment) -> bytes:
        if attachment.content is not None:
            return attachment.content
        invoice = self.data.qonto_invoices.get(attachment.invoice_id or "")
        if invoice is None:
            return make_invoice_pdf(number="?", amount=Decimal("0.00"), issue_date=times.paris_today())
        client = self.data.qonto_clients.get(invoice.client_id or "")
        return make_invoice_pdf(
            number=invoice.number or "",
            amount=invoice.total,
            issue_date=invoice.issue_date,
            due_date=invoice.due_date,
            customer=client.name if client else "",
        )

    # Hostile records ---------------------------------------------------------------------------
    def override(
        self, obj: MkpInvoice | MkpCustomer | QontoInvoice | QontoClient, fields: dict | None
    ) -> None:
        """Show ``fields`` (any JSON, an ``id`` included) in place of the object's own wherever it
        is listed or fetched, as a provider with a bug would; None shows it as stored again. A
        change: the object's ``updated_at`` moves, so incremental lists pick it up."""
        with self.lock:
            if fields:
                self.overrides[obj.id] = fields
            else:
                self.overrides.pop(obj.id, None)
            if hasattr(obj, "updated_at"):
                self.touch(obj)

    def shown(self, object_id: str, body: dict) -> dict:
        """An object's JSON as the API answers it: with its overriding fields, if any."""
        fields = self.overrides.get(object_id)
        return {**body, **fields} if fields else body

    # Download links ----------------------------------------------------------------------------
    def issue_link(self, kind: str, object_id: str, seconds: int) -> tuple[str, datetime]:
        expires_at = times.utcnow().replace(microsecond=0) + timedelta(seconds=seconds)
        token = secrets.token_urlsafe(24)
        with self.lock:
            now = times.utcnow()
            for old in [t for t, link in self.data.links.items() if link.expires_at < now]:
                del self.data.links[old]
            self.data.links[token] = FileLink(kind, object_id, expires_at)
        return token, expires_at

    def link(self, token: str) -> FileLink | None:
        with self.lock:
            return self.data.links.get(token)

    # Seeding and inspection ----------------------------------------------------------------------
    def seed(self, *, customers: int | None = None, invoices: int = 300, seed: int | None = None) -> dict:
        """Add realistic customers/clients and invoices to both providers (see :mod:`.seed`)."""
        from integrations.sandbox.seed import seed_store

        return seed_store(self, customers=customers, invoices=invoices, seed=seed)

    def state(self, provider: str) -> list[dict]:
        """One row per invoice, in creation order, to compare with a local mirror."""
        with self.lock:
            if provider == "mkp":
                return [mkp_row(self.data.mkp_invoices[i]) for i in self.data.mkp_order]
            return [qonto_row(inv) for inv in self.data.qonto_invoices.values()]

    def summary(self) -> dict:
        """Invoices and customers per provider, invoices per status, numbers used more than once."""
        with self.lock:
            today = times.utcnow().astimezone(times.AMSTERDAM).date()
            mkp = Counter(inv.status(today) for inv in self.data.mkp_invoices.values())
            qonto = Counter(inv.status for inv in self.data.qonto_invoices.values())
            mkp_numbers = Counter(inv.invoice_number for inv in self.data.mkp_invoices.values())
            qonto_numbers = Counter(inv.number for inv in self.data.qonto_invoices.values() if inv.number)
            return {
                "invoices": {
                    "mkp": {
                        "total": len(self.data.mkp_invoices),
                        **{s: mkp[s] for s in ("open", "overdue", "paid")},
                    },
                    "qonto": {
                        "total": len(self.data.qonto_invoices),
                        **{s: qonto[s] for s in QONTO_STATUSES},
                    },
                },
                "customers": {"mkp": len(self.data.mkp_customers), "qonto": len(self.data.qonto_clients)},
                "duplicates": {
                    "mkp": {n: c for n, c in sorted(mkp_numbers.items()) if c > 1},
                    "qonto": {n: c for n, c in sorted(qonto_numbers.items()) if c > 1},
                },
            }


def mkp_row(invoice: MkpInvoice) -> dict:
    return {
        "id": invoice.id,
        "number": invoice.invoice_number,
        "customerId": invoice.customer_id,
        "paid": invoice.paid_at is not None,
        "paidAt": times.atom(invoice.paid_at),
        "amount": str(invoice.amount),
        "issuedAt": invoice.issued_at.isoformat(),
        "dueAt": invoice.due_at.isoformat() if invoice.due_at else None,
        "createdAt": times.atom(invoice.created_at),
    }


def qonto_row(invoice: QontoInvoice) -> dict:
    return {
        "id": invoice.id,
        "number": invoice.number,
        "client_id": invoice.client_id,
        "status": invoice.status,
        "paid_at": times.paris_iso(invoice.paid_at),
        "amount": str(invoice.total),
        "issue_date": invoice.issue_date.isoformat(),
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "updated_at": times.paris_iso(invoice.updated_at, milliseconds=True),
    }


def file_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _month(moment: datetime) -> tuple[int, int]:
    local = moment.astimezone(times.AMSTERDAM)
    return local.year, local.month

"""Sandbox endpoints that play the providers' other users, each change sending its webhooks, and
the webhook inspection endpoints (all under ``/_sandbox``, see :mod:`.admin`).

    POST   /_sandbox/pay/<provider>/<id>        a payment: mkp as a customer through the payment link
                                                (invoice-paid), qonto booked (status paid,
                                                v1/client-invoices); {"paid_at": ISO} or now
                                                (Qonto: midnight Paris of that day); 409 if paid
    POST   /_sandbox/chargeback/<provider>/<id> the payment is reversed: unpaid again
                                                (invoice-chargeback / v1/client-invoices); 409 if unpaid
    POST   /_sandbox/customers/<provider>       {"name": "..."} a new customer (customer-created /
                                                v1/clients created) -> {"id", "name"}
    DELETE /_sandbox/customers/<provider>/<id>  the customer is deleted (customer-deleted /
                                                v1/clients deleted); 409 while it has invoices
    GET    /_sandbox/webhooks                   what is registered at both providers, secrets included
    GET    /_sandbox/webhooks/deliveries        {"counts": {"events", "attempts", "delivered",
                                                "failed_attempts", "abandoned", "pending"},
                                                "deliveries": [the last 1,000, oldest first]}

Deleting an invoice (``DELETE /_sandbox/state/<provider>/<id>``) sends invoice-deleted at
MijnKlantportaal and nothing at Qonto, which has no such event.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from integrations.sandbox import times
from integrations.sandbox.store import MkpCustomer, MkpInvoice, QontoClient, mkp_row, qonto_row
from integrations.sandbox.subscriptions import MkpWebhooks
from integrations.sandbox.web import Request, Response, json_response

if TYPE_CHECKING:
    from integrations.sandbox.server import SandboxApp

PROVIDERS = ("mkp", "qonto")


def bad(message: str, status: int = 400) -> Response:
    return json_response(status, {"error": message})


def read_body(req: Request) -> dict | Response:
    """The JSON object of the body ({} when empty), or the 400 to answer."""
    if not req.body.strip():
        return {}
    try:
        body = req.json()
    except ValueError:
        return bad("the body must be JSON")
    return body if isinstance(body, dict) else bad("the body must be a JSON object")


def stored_invoice(store, provider: str, invoice_id: str):
    """The sandbox's invoice ``invoice_id`` of ``provider``, or the 404 to answer."""
    invoices = {"mkp": store.data.mkp_invoices, "qonto": store.data.qonto_invoices}.get(provider)
    if invoices is None:
        return bad("provider must be mkp or qonto", 404)
    invoice = invoices.get(invoice_id)
    return bad("no such invoice", 404) if invoice is None else invoice


def moment(value: object):
    """An aware datetime, None for null, False when unreadable."""
    if value is None:
        return None
    if not isinstance(value, str):
        return False
    return times.parse_iso_datetime(value) or False


class EventAdmin:
    def __init__(self, app: SandboxApp) -> None:
        self.app = app

    def routes(self) -> tuple:
        return (
            ("POST", "/pay/{provider}/{id}", self.pay),
            ("POST", "/chargeback/{provider}/{id}", self.chargeback),
            ("POST", "/customers/{provider}", self.add_customer),
            ("DELETE", "/customers/{provider}/{id}", self.delete_customer),
            ("GET", "/webhooks", self.webhooks),
            ("GET", "/webhooks/deliveries", self.deliveries),
        )

    # Invoices ------------------------------------------------------------------------------------
    def mkp_paid(self, invoice: MkpInvoice, paid_at: datetime) -> None:
        """A payment through the payment link (called holding the store lock)."""
        invoice.paid_at = paid_at
        self.app.store.touch(invoice)
        self.app.hooks.mkp_event("invoice-paid", invoice.id)

    def pay(self, req: Request) -> Response:
        body = read_body(req)
        if isinstance(body, Response):
            return body
        provider, invoice_id = req.params["provider"], req.params["id"]
        when = moment(body.get("paid_at"))
        if when is False:
            return bad("paid_at must be an ISO 8601 date-time with offset, or null")
        store = self.app.store
        with store.lock:
            invoice = stored_invoice(store, provider, invoice_id)
            if isinstance(invoice, Response):
                return invoice
            if provider == "mkp":
                if invoice.paid_at is not None:
                    return bad("the invoice is paid already", 409)
                self.mkp_paid(invoice, when or times.utcnow().replace(microsecond=0))
                return json_response(200, mkp_row(invoice))
            if invoice.status != "unpaid":
                return bad(f"only an unpaid invoice can be paid; this one is {invoice.status}", 409)
            day = (when or times.utcnow()).astimezone(times.PARIS).date()
            invoice.status = "paid"
            invoice.paid_at = datetime(day.year, day.month, day.day, tzinfo=times.PARIS)
            store.touch(invoice)
            self.app.qonto.invoice_event(invoice, req.base_url)
            return json_response(200, qonto_row(invoice))

    def chargeback(self, req: Request) -> Response:
        provider, invoice_id = req.params["provider"], req.params["id"]
        store = self.app.store
        with store.lock:
            invoice = stored_invoice(store, provider, invoice_id)
            if isinstance(invoice, Response):
                return invoice
            if provider == "mkp":
                if invoice.paid_at is None:
                    return bad("the invoice is not paid", 409)
                invoice.paid_at = None
                store.touch(invoice)
                self.app.hooks.mkp_event("invoice-chargeback", invoice.id)
                return json_response(200, mkp_row(invoice))
            if invoice.status != "paid":
                return bad("the invoice is not paid", 409)
            invoice.status, invoice.paid_at = "unpaid", None
            store.touch(invoice)
            self.app.qonto.invoice_event(invoice, req.base_url)
            return json_response(200, qonto_row(invoice))

    # Customers -----------------------------------------------------------------------------------
    def add_customer(self, req: Request) -> Response:
        body = read_body(req)
        if isinstance(body, Response):
            return body
        provider, name = req.params["provider"], body.get("name")
        if provider not in PROVIDERS:
            return bad("provider must be mkp or qonto", 404)
        if not isinstance(name, str) or not name.strip():
            return bad("name must be a non-empty string")
        store, name = self.app.store, name.strip()
        with store.lock:
            now = store.tick().replace(microsecond=0)
            if provider == "mkp":
                customer = store.add_mkp_customer(
                    MkpCustomer(
                        id=store.mkp_id("cst_"),
                        company_name=name,
                        address="Kerkstraat 1",
                        zip_code="1017 GC",
                        city="Amsterdam",
                        country_code="NL",
                        primary_email="administratie@example.nl",
                        phone=None,
                        created_at=now,
                    )
                )
                self.app.hooks.mkp_event("customer-created", customer.id)
                return json_response(201, {"id": customer.id, "name": name})
            client = self.app.qonto.add_client(
                QontoClient(
                    id=store.uuid(),
                    name=name,
                    kind="company",
                    email="comptabilite@example.fr",
                    vat_number=None,
                    tax_identification_number=None,
                    address="1 rue de la Paix",
                    city="Paris",
                    zip_code="75002",
                    country_code="FR",
                    locale="fr",
                    created_at=now,
                    updated_at=now,
                )
            )
            return json_response(201, {"id": client.id, "name": name})

    def delete_customer(self, req: Request) -> Response:
        provider, customer_id = req.params["provider"], req.params["id"]
        store = self.app.store
        with store.lock:
            if provider == "mkp":
                known = customer_id in store.data.mkp_customers
                if known and store.remove_mkp_customer(customer_id):
                    self.app.hooks.mkp_event("customer-deleted", customer_id)
                    return json_response(200, {"deleted": True})
            elif provider == "qonto":
                client = store.data.qonto_clients.get(customer_id)
                known = client is not None
                if known and store.remove_qonto_client(customer_id):
                    self.app.qonto.client_event(client, "deleted")
                    return json_response(200, {"deleted": True})
            else:
                return bad("provider must be mkp or qonto", 404)
        return bad("the customer still has invoices", 409) if known else bad("no such customer", 404)

    # Webhooks ------------------------------------------------------------------------------------
    def webhooks(self, req: Request) -> Response:
        with self.app.store.lock:
            data = self.app.store.data
            mkp = [MkpWebhooks.to_json(hook) for hook in data.mkp_webhooks.values()]
            qonto = [
                {**self.app.subscriptions.to_json(s), "secret": s.secret}
                for s in data.qonto_subscriptions.values()
            ]
        return json_response(200, {"mkp": mkp, "qonto": qonto})

    def deliveries(self, req: Request) -> Response:
        return json_response(200, self.app.hooks.to_json())

"""The sandbox's own endpoints under ``/_sandbox`` (never faulted, never rate limited, no auth:
the server only listens on the loopback interface).

    GET  /_sandbox                      index: base URLs, credentials, these endpoints
    GET  /_sandbox/faults               {"probabilities": {"500": 0.05, ...}, "after_share": 0.5,
                                         "seed": 1, "slow_seconds": 2.0, "timeout_seconds": 35.0,
                                         "providers": ["mkp", "qonto"], "methods": null, "kinds": [...]}
    POST /_sandbox/faults               any of those fields (``probabilities`` replaces the map,
                                         ``seed`` restarts the generator) -> the new settings
    GET  /_sandbox/config               the run settings (see SandboxConfig)
    POST /_sandbox/config               any of those fields -> the new settings
    POST /_sandbox/reset                forget every customer, invoice, link, idempotency key, rate
                                         window and counter (faults and settings stay) -> {"reset": true}
    POST /_sandbox/seed                 {"invoices": 300, "customers": null, "seed": null}
                                         -> {"customers", "invoices", "seconds", "summary"}
    GET  /_sandbox/stats                {"requests": {"total", "mkp", "qonto", "by_route", "by_status"},
                                         "faults": {"total", "by_kind", "before", "after"},
                                         "invoices": {"mkp": {"total", "open", "overdue", "paid"},
                                                      "qonto": {"total", "draft", "unpaid", "paid", "canceled"}},
                                         "customers": {"mkp", "qonto"},
                                         "duplicates": {"mkp": {number: count}, "qonto": {...}}}
    GET  /_sandbox/state?provider=mkp   {"provider", "count", "invoices": [{id, number, paid, paidAt,
                                         amount, ...}]} in creation order; ``&number=`` narrows it
    POST /_sandbox/state/<provider>/<id>  a change made at the provider by someone else:
                                         mkp {"paidAt": ATOM or null}; qonto {"status": ..., "paid_at": ISO or null}
    DELETE /_sandbox/state/<provider>/<id>  the invoice disappears at the provider
    POST /_sandbox/raw/<provider>/<id>  {"fields": {...}}: an invoice or customer is listed and
                                         fetched with these fields in place of its own (any JSON,
                                         an id included: a hostile record); {"fields": null}
                                         shows it as stored again. Kept in memory only.

Changes made here send the providers' webhooks (a payment, a chargeback, a deletion; see
:mod:`.webhooks`). Payments, chargebacks, customers and the webhook inspection endpoints are in
:mod:`.admin_events`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from integrations.sandbox.admin_events import bad, moment, read_body, stored_invoice
from integrations.sandbox.store import QONTO_STATUSES, mkp_row, qonto_row
from integrations.sandbox.web import Request, Response, Router, json_response

if TYPE_CHECKING:
    from integrations.sandbox.server import SandboxApp

PREFIX = "/_sandbox"


class AdminApi:
    def __init__(self, app: SandboxApp) -> None:
        self.app = app
        self.router = Router()
        for method, pattern, handler in (
            ("GET", "", self.index),
            ("GET", "/", self.index),
            ("GET", "/faults", self.get_faults),
            ("POST", "/faults", self.set_faults),
            ("GET", "/config", self.get_config),
            ("POST", "/config", self.set_config),
            ("POST", "/reset", self.reset),
            ("POST", "/seed", self.seed),
            ("GET", "/stats", self.stats),
            ("GET", "/state", self.state),
            ("POST", "/state/{provider}/{id}", self.change),
            ("DELETE", "/state/{provider}/{id}", self.delete),
            ("POST", "/raw/{provider}/{id}", self.override),
            *app.events.routes(),
        ):
            self.router.add(method, pattern, handler.__name__, handler)

    def handle(self, req: Request, path: str) -> Response:
        route, params, allowed = self.router.match(req.method, path)
        if route is None:
            return bad(
                f"use {' or '.join(allowed)}" if allowed else "no such sandbox endpoint",
                405 if allowed else 404,
            )
        req.params = params
        return route.handler(req)

    def index(self, req: Request) -> Response:
        config = self.app.config
        return json_response(
            200,
            {
                "sandbox": "Local sandbox of the MijnKlantportaal and Qonto APIs. Not the real services.",
                "mkp": {"base_url": f"{req.base_url}/mkp/v1", "authorization": f"Bearer {config.mkp_key}"},
                "qonto": {
                    "base_url": f"{req.base_url}/qonto",
                    "authorization": [
                        f"{config.qonto_login}:{config.qonto_secret}",
                        f"Bearer {config.qonto_token}",
                    ],
                    "staging_token": config.qonto_staging_token,
                },
                "endpoints": [f"{r.method} {PREFIX}{r.pattern}" for r in self.router.routes[1:]],
            },
        )

    def get_faults(self, req: Request) -> Response:
        return json_response(200, self.app.faults.to_json())

    def set_faults(self, req: Request) -> Response:
        body = read_body(req)
        if isinstance(body, Response):
            return body
        try:
            self.app.faults.configure(body)
        except ValueError as exc:
            return bad(str(exc))
        return json_response(200, self.app.faults.to_json())

    def get_config(self, req: Request) -> Response:
        return json_response(200, self.app.config.to_json())

    def set_config(self, req: Request) -> Response:
        body = read_body(req)
        if isinstance(body, Response):
            return body
        try:
            self.app.config.update(body)
        except ValueError as exc:
            return bad(str(exc))
        return json_response(200, self.app.config.to_json())

    def reset(self, req: Request) -> Response:
        self.app.reset()
        return json_response(200, {"reset": True})

    def seed(self, req: Request) -> Response:
        body = read_body(req)
        if isinstance(body, Response):
            return body
        args = {
            "invoices": body.get("invoices", 300),
            "customers": body.get("customers"),
            "seed": body.get("seed"),
        }
        for name, value in args.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                return bad(f"{name} must be an integer")
        if args["invoices"] is None:
            return bad("invoices must be an integer")
        try:
            result = self.app.store.seed(**args)
        except ValueError as exc:
            return bad(str(exc))
        return json_response(200, {**result, "summary": self.app.store.summary()})

    def stats(self, req: Request) -> Response:
        return json_response(
            200,
            {
                "requests": self.app.stats.to_json(),
                "faults": self.app.faults.counts(),
                **self.app.store.summary(),
            },
        )

    def state(self, req: Request) -> Response:
        provider = req.arg("provider")
        if provider not in ("mkp", "qonto"):
            return bad("provider must be mkp or qonto")
        rows = self.app.store.state(provider)
        if (number := req.arg("number")) is not None:
            rows = [row for row in rows if row["number"] == number]
        return json_response(200, {"provider": provider, "count": len(rows), "invoices": rows})

    def change(self, req: Request) -> Response:
        body = read_body(req)
        if isinstance(body, Response):
            return body
        provider, invoice_id = req.params["provider"], req.params["id"]
        store = self.app.store
        with store.lock:
            invoice = stored_invoice(store, provider, invoice_id)
            if isinstance(invoice, Response):
                return invoice
            if provider == "mkp":
                was_paid = invoice.paid_at is not None
                if "paidAt" in body:
                    paid = moment(body["paidAt"])
                    if paid is False:
                        return bad("paidAt must be an ISO 8601 date-time with offset, or null")
                    invoice.paid_at = paid
                store.touch(invoice)
                if was_paid != (invoice.paid_at is not None):
                    event = "invoice-chargeback" if was_paid else "invoice-paid"
                    self.app.hooks.mkp_event(event, invoice.id)
                return json_response(200, mkp_row(invoice))
            status = body.get("status", invoice.status)
            if status not in QONTO_STATUSES:
                return bad(f"status must be one of {', '.join(QONTO_STATUSES)}")
            paid = moment(body["paid_at"]) if "paid_at" in body else invoice.paid_at
            if paid is False:
                return bad("paid_at must be an ISO 8601 date-time with offset, or null")
            invoice.status, invoice.paid_at = status, paid
            store.touch(invoice)
            self.app.qonto.invoice_event(invoice, req.base_url)
            return json_response(200, qonto_row(invoice))

    def delete(self, req: Request) -> Response:
        provider, invoice_id = req.params["provider"], req.params["id"]
        store = self.app.store
        if provider == "mkp":
            deleted = store.remove_mkp_invoice(invoice_id)
            if deleted:
                self.app.hooks.mkp_event("invoice-deleted", invoice_id)
        elif provider == "qonto":
            deleted = store.remove_qonto_invoice(invoice_id)
        else:
            return bad("provider must be mkp or qonto", 404)
        return json_response(200, {"deleted": True}) if deleted else bad("no such invoice", 404)

    def override(self, req: Request) -> Response:
        body = read_body(req)
        if isinstance(body, Response):
            return body
        fields = body.get("fields")
        if fields is not None and not isinstance(fields, dict):
            return bad("fields must be a JSON object or null")
        provider, object_id = req.params["provider"], req.params["id"]
        data = self.app.store.data
        if provider not in ("mkp", "qonto"):
            return bad("provider must be mkp or qonto", 404)
        objects = (
            (data.mkp_invoices, data.mkp_customers)
            if provider == "mkp"
            else (data.qonto_invoices, data.qonto_clients)
        )
        obj = next((kind[object_id] for kind in objects if object_id in kind), None)
        if obj is None:
            return bad("no such invoice or customer", 404)
        self.app.store.override(obj, fields)
        return json_response(200, {"id": object_id, "fields": fields or None})

"""MijnKlantportaal API v1, served under ``/mkp/v1``.

Shapes follow the provider's pages (``provider-docs/mijnklantportaal-*``): the CustomerInvoice
object, ``{"message": ...}`` errors, the Laravel ``simplePaginate`` envelope (15 a page, absolute
URLs built from the Host header), 426 at the licence's monthly limit, and the documented rate
limit (60 requests a minute per key, sliding window, ``X-RateLimit-*`` headers on every answer).

List order: ``GET /customer-invoices`` and ``GET /customers`` return objects in creation order,
oldest first, i.e. the order of the provider's internal auto-increment id (the order is not
documented; this is what a Laravel ``simplePaginate`` without ``orderBy`` gives).

Validation follows Laravel: empty fields count as missing, every bad field is reported, the
message is the first error plus "(and N more errors)".
"""

from __future__ import annotations

import hmac
import re
import time
from decimal import Decimal

from integrations.sandbox import times
from integrations.sandbox.config import SandboxConfig
from integrations.sandbox.limits import SlidingWindowLimiter
from integrations.sandbox.store import MkpCustomer, MkpInvoice, Store
from integrations.sandbox.web import Request, Response, Router, json_response
from integrations.sandbox.webhooks import WebhookHub

PREFIX = "/mkp/v1"
PER_PAGE = 15
_AMOUNT = re.compile(r"^\d+(\.\d{1,2})?$")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
TOO_MANY = {"code": 429, "message": "Too many requests."}
LICENSE_LIMIT = "The amount of invoices this month reached the license's limit"


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(status, {"message": message}, headers)


def validation_error(errors: list[str]) -> Response:
    """Laravel's 422: the first error, plus "(and N more errors)"."""
    more = len(errors) - 1
    suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    return error(422, errors[0] + suffix)


def server_error_response() -> Response:
    return error(500, "Server Error")


def too_many_response(retry_after: int, limit: int) -> Response:
    return json_response(
        429,
        TOO_MANY,
        {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "retry-after": str(retry_after),
            "x-ratelimit-reset": str(int(time.time()) + retry_after),
        },
    )


class MkpApi:
    prefix = PREFIX

    def __init__(
        self, store: Store, config: SandboxConfig, limiter: SlidingWindowLimiter, hooks: WebhookHub
    ) -> None:
        self.store = store
        self.config = config
        self.limiter = limiter
        self.hooks = hooks
        self.router = Router()
        for method, pattern, name, handler in (
            ("GET", "/customer-invoices", "list_invoices", self.list_invoices),
            ("POST", "/customer-invoices", "create_invoice", self.create_invoice),
            ("GET", "/customer-invoices/{id}", "get_invoice", self.get_invoice),
            ("PATCH", "/customer-invoices/{id}", "mark_paid", self.mark_paid),
            ("GET", "/customer-invoices/{id}/pdf", "pdf_link", self.pdf_link),
            ("GET", "/customers", "list_customers", self.list_customers),
            ("GET", "/customers/{id}", "get_customer", self.get_customer),
        ):
            self.router.add(method, pattern, name, handler)

    # The request pipeline: auth, then the per-key limit, then the route --------------------------
    def handle(self, req: Request, path: str) -> Response:
        header = req.header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), self.config.mkp_key):
            return error(401, "Unauthenticated.")
        rate_headers = {}
        if self.config.rate_limit:
            limit = self.config.mkp_requests_per_minute
            decision = self.limiter.hit(f"mkp:{token.strip()}", [(limit, 60.0)])
            if not decision.allowed:
                return too_many_response(decision.retry_after, limit)
            rate_headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(decision.remaining)}
        route, params, allowed = self.router.match(req.method, path)
        if route is None and allowed:
            response = error(
                405,
                f"The {req.method} method is not supported for route {path.lstrip('/')}. "
                f"Supported methods: {', '.join(allowed)}.",
            )
        elif route is None:
            response = error(404, f"The route {path.lstrip('/')} could not be found.")
        else:
            req.params = params
            response = route.handler(req)
        response.headers.update(rate_headers)
        return response

    def route_name(self, method: str, path: str) -> str:
        route, _, _ = self.router.match(method, path)
        return f"mkp.{route.name}" if route else "mkp.unknown"

    # JSON shapes ------------------------------------------------------------------------------
    def invoice_json(self, invoice: MkpInvoice, base_url: str) -> dict:
        return self.store.shown(invoice.id, self._invoice_fields(invoice, base_url))

    @staticmethod
    def _invoice_fields(invoice: MkpInvoice, base_url: str) -> dict:
        return {
            "id": invoice.id,
            "customerId": invoice.customer_id,
            "invoiceNumber": invoice.invoice_number,
            "issuedAt": invoice.issued_at.isoformat(),
            "dueAt": invoice.due_at.isoformat() if invoice.due_at else None,
            "currency": "EUR",
            "amount": str(invoice.amount),
            "paidAt": times.atom(invoice.paid_at),
            "createdAt": times.atom(invoice.created_at),
            "links": {
                "customer": {
                    "href": f"{base_url}{PREFIX}/customers/{invoice.customer_id}",
                    "type": "application/json",
                },
                "onlinePaymentLink": {
                    "href": f"{base_url}/public/mkp/public-invoice/{invoice.id}/pay/{invoice.payment_token}",
                    "type": "text/html",
                },
            },
        }

    def customer_json(self, customer: MkpCustomer) -> dict:
        return self.store.shown(customer.id, self._customer_fields(customer))

    @staticmethod
    def _customer_fields(customer: MkpCustomer) -> dict:
        return {
            "id": customer.id,
            "companyName": customer.company_name,
            "address": customer.address,
            "zipCode": customer.zip_code,
            "city": customer.city,
            "countryCode": customer.country_code,
            "primaryEmail": customer.primary_email,
            "phone": customer.phone,
            "integration": None,
            "integrationId": None,
            "customerGroups": [],
            "createdAt": times.atom(customer.created_at),
        }

    @staticmethod
    def paginate(req: Request, path: str, fetch, to_json) -> dict:
        """Laravel ``simplePaginate``: no totals; ``next_page_url`` is null on the last page.
        ``fetch(start, count)`` returns up to ``count`` rows from position ``start``."""
        raw = req.arg("page") or ""
        page = int(raw) if raw.isdigit() and int(raw) >= 1 else 1
        start = (page - 1) * PER_PAGE
        window = fetch(start, PER_PAGE + 1)
        data = [to_json(row) for row in window[:PER_PAGE]]
        url = f"{req.base_url}{PREFIX}{path}"
        return {
            "current_page": page,
            "data": data,
            "first_page_url": f"{url}?page=1",
            "from": start + 1 if data else None,
            "next_page_url": f"{url}?page={page + 1}" if len(window) > PER_PAGE else None,
            "path": url,
            "per_page": PER_PAGE,
            "prev_page_url": f"{url}?page={page - 1}" if page > 1 else None,
            "to": start + len(data) if data else None,
        }

    # Customer invoices -------------------------------------------------------------------------
    def list_invoices(self, req: Request) -> Response:
        with self.store.lock:
            data = self.store.data
            body = self.paginate(
                req,
                "/customer-invoices",
                lambda start, count: [data.mkp_invoices[i] for i in data.mkp_order[start : start + count]],
                lambda invoice: self.invoice_json(invoice, req.base_url),
            )
        return json_response(200, body)

    def _invoice(self, req: Request) -> MkpInvoice | None:
        return self.store.data.mkp_invoices.get(req.params["id"])

    def get_invoice(self, req: Request) -> Response:
        with self.store.lock:
            invoice = self._invoice(req)
            if invoice is None:
                return error(404, "No Customer Invoice can be found for the given ID")
            return json_response(200, self.invoice_json(invoice, req.base_url))

    def create_invoice(self, req: Request) -> Response:
        fields, files = _input(req)
        errors: list[str] = []
        value = {name: (fields.get(name) or [""])[0].strip() for name in _CREATE_FIELDS}
        pdf = next(iter(files.get("pdf", [])), None)
        with self.store.lock:
            if not value["customerId"]:
                errors.append("The customer id field is required.")
            elif value["customerId"] not in self.store.data.mkp_customers:
                errors.append("The selected customer id is invalid.")
            if not value["invoiceNumber"]:
                errors.append("The invoice number field is required.")
            elif len(value["invoiceNumber"]) > 255:
                errors.append("The invoice number field must not be greater than 255 characters.")
            elif self.config.mkp_unique_numbers and self.store.mkp_number_taken(value["invoiceNumber"]):
                errors.append("The invoice number has already been taken.")
            issued = times.parse_date(value["issuedAt"])
            if not value["issuedAt"]:
                errors.append("The issued at field is required.")
            elif issued is None:
                errors.append("The issued at field must match the format Y-m-d.")
            due = times.parse_date(value["dueAt"]) if value["dueAt"] else None
            if value["dueAt"] and due is None:
                errors.append("The due at field must match the format Y-m-d.")
            if not value["amount"]:
                errors.append("The amount field is required.")
            elif not _AMOUNT.match(value["amount"]):
                errors.append("The amount field format is invalid.")
            paid = times.parse_mkp_datetime(value["paidAt"]) if value["paidAt"] else None
            if value["paidAt"] and paid is None:
                errors.append("The paid at field must match the format Y-m-d H:i:s.")
            notify = _BOOLEANS.get(value["sendNotification"].lower()) if value["sendNotification"] else False
            if notify is None:
                errors.append("The send notification field must be true or false.")
            if pdf is None:
                errors.append("The pdf field is required.")
            elif not pdf.content.startswith(b"%PDF"):
                errors.append("The pdf field must be a file of type: pdf.")
            elif len(pdf.content) > self.config.mkp_max_pdf_bytes:
                errors.append(
                    f"The pdf field must not be greater than {self.config.mkp_max_pdf_bytes // 1024} kilobytes."
                )
            if errors:
                return validation_error(errors)
            limit = self.config.mkp_license_limit
            if limit is not None and self.store.mkp_invoices_this_month() >= limit:
                return error(426, LICENSE_LIMIT)
            created = self.store.tick().replace(microsecond=0)
            invoice = self.store.add_mkp_invoice(
                MkpInvoice(
                    id=self.store.mkp_id("inv_"),
                    customer_id=value["customerId"],
                    invoice_number=value["invoiceNumber"],
                    issued_at=issued,
                    due_at=due,
                    amount=Decimal(value["amount"]).quantize(Decimal("0.01")),
                    paid_at=paid,
                    created_at=created,
                    updated_at=created,
                    payment_token=self.store.mkp_id(""),
                    send_notification=bool(notify),
                    pdf=pdf.content,
                )
            )
            self.hooks.mkp_event("invoice-created", invoice.id)
            return json_response(201, self.invoice_json(invoice, req.base_url))

    def mark_paid(self, req: Request) -> Response:
        try:
            body = req.json() if req.body else {}
        except ValueError:
            body = {}
        raw = body.get("paidAt") if isinstance(body, dict) else None
        with self.store.lock:
            invoice = self._invoice(req)
            if invoice is None:
                return error(404, "No Customer Invoice can be found for the given ID")
            if raw is None or raw == "":
                return error(422, "The paid at field is required.")
            paid = times.parse_mkp_datetime(raw) if isinstance(raw, str) else None
            if paid is None:
                return error(422, "The paid at field must match the format Y-m-d H:i:s.")
            was_paid, invoice.paid_at = invoice.paid_at is not None, paid
            self.store.touch(invoice)
            if not was_paid:
                self.hooks.mkp_event("invoice-paid", invoice.id)
            return json_response(200, self.invoice_json(invoice, req.base_url))

    def pdf_link(self, req: Request) -> Response:
        with self.store.lock:
            invoice = self._invoice(req)
            if invoice is None:
                return error(404, "No Customer Invoice can be found for the given ID")
            token, expires = self.store.issue_link("mkp", invoice.id, self.config.mkp_pdf_link_seconds)
        return json_response(
            200, {"link": f"{req.base_url}/public/files/{token}", "expiresAt": times.atom(expires)}
        )

    # Customers -------------------------------------------------------------------------------
    def list_customers(self, req: Request) -> Response:
        with self.store.lock:
            rows = list(self.store.data.mkp_customers.values())
            body = self.paginate(
                req, "/customers", lambda start, count: rows[start : start + count], self.customer_json
            )
        return json_response(200, body)

    def get_customer(self, req: Request) -> Response:
        with self.store.lock:
            customer = self.store.data.mkp_customers.get(req.params["id"])
            if customer is None:
                return error(404, "No Customer can be found for the given ID")
            return json_response(200, self.customer_json(customer))


_CREATE_FIELDS = ("customerId", "invoiceNumber", "issuedAt", "dueAt", "amount", "paidAt", "sendNotification")


def _input(req: Request) -> tuple[dict[str, list[str]], dict]:
    """Form fields and files of a create request. Like Laravel, a body that is not multipart
    (JSON, say) is still read for its fields, and then lacks the file."""
    if req.is_multipart:
        try:
            return req.multipart()
        except ValueError:
            return {}, {}
    try:
        body = req.json()
    except ValueError:
        return {}, {}
    if not isinstance(body, dict):
        return {}, {}
    return {name: [_form_text(value)] for name, value in body.items()}, {}


def _form_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

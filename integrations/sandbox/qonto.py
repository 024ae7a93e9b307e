"""Qonto Business API v2 (client invoices, clients, attachments), served under ``/qonto``.

Shapes follow the provider's mark-as-paid page (``provider-docs/qonto-mark-client-invoice-paid.txt``)
and the reference notes: ``{"client_invoice": {...}}``, lists with a ``meta`` block, JSON:API
errors ``{"errors": [{"code", "detail", "source"}], "trace_id"}`` with the same id in the
``X-Tyk-Trace-Id`` header, ``Authorization: <login>:<secret>`` or ``Bearer <token>``, the HTML
login page (status 200) of the real sandbox when ``X-Qonto-Staging-Token`` is required and missing,
1,000 requests per 10 s and 10,000 per 10 min per client address, and ``X-Qonto-Idempotency-Key``
replaying the cached successful answer of a POST for 30 minutes (even when the body differs).

Sandbox choices where the provider is silent:
- ``updated_at`` (seen in real payloads, not in the doc example) has millisecond precision and moves
  forward on every change; the other timestamps have whole seconds. All carry the Paris offset.
- ``mark_as_paid`` records ``paid_at`` as midnight, Paris time, of the date given (today when
  omitted); "the future" is judged against today's date in Paris.
- The list is sorted by ``created_at:desc`` unless ``sort_by`` says otherwise; a page past the
  last one is empty.
- Bulk import reads number, total, dates and client name from the PDF text (see :mod:`.pdf`);
  missing ones fall back to the file name, 0.00 and today. A client name that no client has yet
  creates a client; a PDF without one gives an invoice with ``"client": null``.
"""

from __future__ import annotations

import hmac
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from pathlib import PurePosixPath

from integrations.sandbox import times
from integrations.sandbox.config import SandboxConfig
from integrations.sandbox.limits import SlidingWindowLimiter
from integrations.sandbox.oauth import QontoOAuth
from integrations.sandbox.pdf import read_invoice_pdf
from integrations.sandbox.qonto_shapes import (
    LOGIN_PAGE,
    client_json,
    errors_response,
    invoice_json,
    not_found,
    too_many_response,
)
from integrations.sandbox.store import QONTO_STATUSES, Attachment, QontoClient, QontoInvoice, Store, file_hash
from integrations.sandbox.web import Request, Response, Router, html_response, json_response
from integrations.sandbox.webhooks import WebhookHub, webhook_data

PREFIX = "/qonto"
MAX_FILES = 5
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_TOTAL_BYTES = 15 * 1024 * 1024
_SORTS = {"created_at", "updated_at"}
_CLIENT_SORTS = {"created_at", "updated_at", "name"}


@dataclass
class _Cached:
    expires_at: float
    response: Response


class QontoApi:
    prefix = PREFIX

    def __init__(
        self,
        store: Store,
        config: SandboxConfig,
        limiter: SlidingWindowLimiter,
        hooks: WebhookHub,
        oauth: QontoOAuth,
    ) -> None:
        self.store = store
        self.config = config
        self.limiter = limiter
        self.hooks = hooks
        self.oauth = oauth
        #: Route name -> the OAuth scope it needs; such a route refuses the API key.
        self.required_scopes: dict[str, str] = {}
        self._idempotency: dict[str, _Cached] = {}
        self._idempotency_lock = threading.Lock()
        self.router = Router()
        for method, pattern, name, handler in (
            ("GET", "/v2/client_invoices", "list_invoices", self.list_invoices),
            ("POST", "/v2/client_invoices/bulk", "bulk_import", self.bulk_import),
            ("GET", "/v2/client_invoices/{id}", "get_invoice", self.get_invoice),
            ("POST", "/v2/client_invoices/{id}/mark_as_paid", "mark_paid", self.mark_paid),
            ("GET", "/v2/attachments/{id}", "get_attachment", self.get_attachment),
            ("GET", "/v2/clients", "list_clients", self.list_clients),
            ("GET", "/v2/clients/{id}", "get_client", self.get_client),
        ):
            self.router.add(method, pattern, name, handler)

    def reset(self) -> None:
        with self._idempotency_lock:
            self._idempotency.clear()

    # The request pipeline: staging gate, per-address limits, auth, route, idempotency -----------
    def handle(self, req: Request, path: str) -> Response:
        staging = self.config.qonto_staging_token
        if staging and not hmac.compare_digest(req.header("X-Qonto-Staging-Token") or "", staging):
            return html_response(200, LOGIN_PAGE)
        if self.config.rate_limit:
            windows = [
                (self.config.qonto_requests_per_10s, 10.0),
                (self.config.qonto_requests_per_10min, 600.0),
            ]
            decision = self.limiter.hit(f"qonto:{req.client_ip}", windows)
            if not decision.allowed:
                return too_many_response(decision.retry_after)
        scopes = self._scopes(req.header("Authorization") or "")
        if scopes is None:
            return errors_response(
                401, "unauthorized", "The credentials are missing or invalid.", {"header": "Authorization"}
            )
        route, params, allowed = self.router.match(req.method, path)
        if route is None:
            if allowed:
                return errors_response(405, "method_not_allowed", f"Allowed methods: {', '.join(allowed)}.")
            return errors_response(404, "not_found", "The requested resource does not exist.")
        needed = self.required_scopes.get(route.name)
        if needed and needed not in scopes:
            return self._traced(
                errors_response(
                    403,
                    "forbidden",
                    f"missing required OAuth scope: {needed}"
                    + ("" if scopes else " (this endpoint needs an OAuth access token, not the API key)"),
                )
            )
        req.params = params
        key = req.header("X-Qonto-Idempotency-Key") if req.method == "POST" else None
        if not key:
            return self._traced(route.handler(req))
        with self._idempotency_lock:
            now = time.monotonic()
            for old in [k for k, cached in self._idempotency.items() if cached.expires_at <= now]:
                del self._idempotency[old]
            cached = self._idempotency.get(key)
            if cached is not None:
                return self._traced(replace(cached.response, headers=dict(cached.response.headers)))
            response = self._traced(route.handler(req))
            if 200 <= response.status < 300:
                stored = replace(response, headers=dict(response.headers))
                self._idempotency[key] = _Cached(now + self.config.qonto_idempotency_seconds, stored)
            return response

    def _scopes(self, header: str) -> tuple[str, ...] | None:
        """The OAuth scopes of a Bearer token, ``()`` for the API key, None when neither is valid."""
        if header[:7].lower() == "bearer ":
            return self.oauth.scopes_of(header[7:].strip())
        api_key = f"{self.config.qonto_login}:{self.config.qonto_secret}"
        return () if hmac.compare_digest(header.strip(), api_key) else None

    @staticmethod
    def _traced(response: Response) -> Response:
        response.headers.setdefault("X-Tyk-Trace-Id", uuid.uuid4().hex)
        return response

    def route_name(self, method: str, path: str) -> str:
        route, _, _ = self.router.match(method, path)
        return f"qonto.{route.name}" if route else "qonto.unknown"

    def _invoice_json(self, invoice: QontoInvoice, base_url: str) -> dict:
        client = self.store.data.qonto_clients.get(invoice.client_id or "")
        return self.store.shown(
            invoice.id,
            invoice_json(invoice, client, organization_id=self.config.organization_id, base_url=base_url),
        )

    def _client_json(self, client: QontoClient) -> dict:
        return self.store.shown(client.id, client_json(client, full=True))

    # Changes others see through webhooks ----------------------------------------------------------
    def invoice_event(self, invoice: QontoInvoice, base_url: str) -> None:
        """``v1/client-invoices`` for a created or changed invoice (Qonto sends no event field)."""
        self.hooks.qonto_event("v1/client-invoices", webhook_data(self._invoice_json(invoice, base_url)))

    def client_event(self, client: QontoClient, event: str) -> None:
        """``v1/clients`` with ``data.event`` (created, updated, deleted)."""
        self.hooks.qonto_event("v1/clients", {**webhook_data(self._client_json(client)), "event": event})

    def add_client(self, client: QontoClient) -> QontoClient:
        self.store.add_qonto_client(client)
        self.client_event(client, "created")
        return client

    # Listing helpers ------------------------------------------------------------------------------
    @staticmethod
    def paging(req: Request) -> tuple[int, int] | Response:
        values = []
        for name, default, highest in (("page", 1, None), ("per_page", 100, 100)):
            raw = req.arg(name)
            value = int(raw) if raw is not None and raw.isdigit() else (default if raw is None else -1)
            if value < 1 or (highest is not None and value > highest):
                limit = f" and at most {highest}" if highest else ""
                return errors_response(
                    422,
                    "invalid_parameter",
                    f"{name} must be an integer of at least 1{limit}",
                    {"parameter": name},
                )
            values.append(value)
        return values[0], values[1]

    @staticmethod
    def _sort(req: Request, allowed: set[str]) -> tuple[str, bool] | Response:
        raw = req.arg("sort_by") or "created_at:desc"
        field, _, direction = raw.partition(":")
        if field not in allowed or direction not in ("asc", "desc"):
            options = ", ".join(f"{f}:{d}" for f in sorted(allowed) for d in ("asc", "desc"))
            return errors_response(
                422, "not_in_list", f"sort_by must be one of: {options}", {"parameter": "sort_by"}
            )
        return field, direction == "desc"

    @staticmethod
    def _moment(req: Request, name: str) -> datetime | Response | None:
        raw = req.arg(name)
        if raw is None or raw == "":
            return None
        parsed = times.parse_iso_datetime(raw)
        if parsed is None:
            return errors_response(
                422, "invalid_format", f"{name} must be an ISO 8601 date-time", {"parameter": name}
            )
        return parsed

    @staticmethod
    def page_body(key: str, rows: list, page: int, per_page: int, to_json) -> dict:
        total = len(rows)
        pages = math.ceil(total / per_page)
        chunk = rows[(page - 1) * per_page : page * per_page]
        return {
            key: [to_json(row) for row in chunk],
            "meta": {
                "current_page": page,
                "next_page": page + 1 if page < pages else None,
                "prev_page": page - 1 if page > 1 else None,
                "total_pages": pages,
                "total_count": total,
                "per_page": per_page,
            },
        }

    # Client invoices ------------------------------------------------------------------------------
    def list_invoices(self, req: Request) -> Response:
        paging = self.paging(req)
        if isinstance(paging, Response):
            return paging
        sort = self._sort(req, _SORTS)
        if isinstance(sort, Response):
            return sort
        statuses = None
        if raw_status := req.arg("filter[status]"):
            statuses = {s.strip() for s in raw_status.split(",") if s.strip()}
            if not statuses <= set(QONTO_STATUSES):
                return errors_response(
                    422,
                    "not_in_list",
                    f"status must be one of: {', '.join(QONTO_STATUSES)}",
                    {"parameter": "filter[status]"},
                )
        bounds = {}
        for field in ("created_at", "updated_at"):
            for end in ("from", "to"):
                moment = self._moment(req, f"filter[{field}_{end}]")
                if isinstance(moment, Response):
                    return moment
                bounds[(field, end)] = moment

        def build() -> list:
            rows = [
                inv
                for inv in self.store.data.qonto_invoices.values()
                if (statuses is None or inv.status in statuses) and _within(inv, bounds)
            ]
            field, descending = sort
            rows.sort(key=lambda inv: getattr(inv, field), reverse=descending)
            return rows

        key = (sort, frozenset(statuses) if statuses is not None else None, tuple(bounds.items()))
        with self.store.lock:
            rows = self.store.qonto_invoice_list(key, build)
            body = self.page_body(
                "client_invoices", rows, *paging, lambda inv: self._invoice_json(inv, req.base_url)
            )
        return json_response(200, body)

    def get_invoice(self, req: Request) -> Response:
        with self.store.lock:
            invoice = self.store.data.qonto_invoices.get(req.params["id"])
            if invoice is None:
                return not_found("client invoice", req.params["id"])
            return json_response(200, {"client_invoice": self._invoice_json(invoice, req.base_url)})

    def mark_paid(self, req: Request) -> Response:
        with self.store.lock:
            invoice = self.store.data.qonto_invoices.get(req.params["id"])
            if invoice is None:
                return not_found("client invoice", req.params["id"])
        raw = None
        if req.body.strip():
            try:
                body = req.json()
            except ValueError:
                return errors_response(400, "invalid_body", "The body is not valid JSON.")
            if not isinstance(body, dict):
                return errors_response(400, "invalid_body", "The body must be a JSON object.")
            raw = body.get("paid_at")
        today = times.paris_today()
        if raw is None:
            paid_on = today
        else:
            paid_on = times.parse_date(raw) if isinstance(raw, str) else None
            if paid_on is None:
                return errors_response(
                    422,
                    "invalid_format",
                    "paid_at must be a date in the YYYY-MM-DD format",
                    {"pointer": "/paid_at"},
                )
            if paid_on > today:
                return errors_response(
                    422, "invalid_value", "paid_at cannot be in the future", {"pointer": "/paid_at"}
                )
        with self.store.lock:
            if invoice.status not in ("unpaid", "paid"):
                return errors_response(
                    422,
                    "invalid_status",
                    f"Only unpaid or paid client invoices can be marked as paid; this one is {invoice.status}.",
                    {"pointer": "/status"},
                )
            invoice.status = "paid"
            invoice.paid_at = datetime(paid_on.year, paid_on.month, paid_on.day, tzinfo=times.PARIS)
            self.store.touch(invoice)
            self.invoice_event(invoice, req.base_url)
            return json_response(200, {"client_invoice": self._invoice_json(invoice, req.base_url)})

    def bulk_import(self, req: Request) -> Response:
        try:
            _, files = req.multipart()
        except ValueError:
            return errors_response(400, "invalid_body", "Expected a multipart/form-data body.")
        uploads = files.get("client_invoices", []) + files.get("client_invoices[]", [])
        if not uploads:
            return errors_response(
                422, "missing_file", "At least one file is required.", {"parameter": "client_invoices"}
            )
        if len(uploads) > MAX_FILES:
            return errors_response(
                422,
                "too_many_files",
                f"At most {MAX_FILES} files can be imported at once.",
                {"parameter": "client_invoices"},
            )
        for index, upload in enumerate(uploads):
            pointer = {"pointer": f"/client_invoices/{index}"}
            if len(upload.content) > MAX_FILE_BYTES:
                return errors_response(
                    422, "file_too_large", f"{upload.filename} is larger than 5 MB.", pointer
                )
            if not upload.content.startswith(b"%PDF"):
                return errors_response(
                    422, "invalid_file_type", f"{upload.filename} is not a PDF file.", pointer
                )
        if sum(len(u.content) for u in uploads) > MAX_TOTAL_BYTES:
            return errors_response(422, "request_too_large", "The files weigh more than 15 MB together.")
        # Read the PDFs before taking the lock: parsing is the slow part.
        parsed = [(upload, file_hash(upload.content), read_invoice_pdf(upload.content)) for upload in uploads]
        results = []
        with self.store.lock:
            for upload, digest, fields in parsed:
                existing = self.store.data.imported_files.get(digest)
                invoice_id = existing if existing in self.store.data.qonto_invoices else None
                if invoice_id is None:
                    invoice = self._import(upload.filename, upload.content, fields)
                    self.invoice_event(invoice, req.base_url)
                    invoice_id = invoice.id
                results.append({"invoice_id": invoice_id, "file_name": upload.filename})
        return json_response(200, {"client_invoices": results})

    def _import(self, file_name: str, content: bytes, fields: dict) -> QontoInvoice:
        now = self.store.tick()
        client = self._client_named(fields["customer"], now) if fields["customer"] else None
        invoice = QontoInvoice(
            id=self.store.uuid(),
            number=fields["number"] or PurePosixPath(file_name).stem or file_name,
            status="unpaid",
            client_id=client.id if client else None,
            issue_date=fields["issue_date"] or times.paris_today(),
            due_date=fields["due_date"],
            total=fields["amount"] if fields["amount"] is not None else Decimal("0.00"),
            vat=Decimal("0.00"),
            created_at=now.replace(microsecond=0),
            updated_at=now,
            finalized_at=now.replace(microsecond=0),
            imported=True,
        )
        attachment = Attachment(
            id=self.store.uuid(),
            file_name=file_name,
            created_at=invoice.created_at,
            invoice_id=invoice.id,
            content=content,
        )
        return self.store.add_qonto_invoice(invoice, attachment)

    def _client_named(self, name: str, now: datetime) -> QontoClient:
        for client in self.store.data.qonto_clients.values():
            if client.name.casefold() == name.casefold():
                return client
        slug = re.sub(r"[^a-z0-9]+", "", name.lower()) or "client"
        return self.add_client(
            QontoClient(
                id=self.store.uuid(),
                name=name,
                kind="company",
                email=f"contact@{slug}.example",
                vat_number=None,
                tax_identification_number=None,
                address="",
                city="",
                zip_code="",
                country_code="FR",
                locale="fr",
                created_at=now.replace(microsecond=0),
                updated_at=now,
            )
        )

    # Attachments and clients ----------------------------------------------------------------------
    def get_attachment(self, req: Request) -> Response:
        with self.store.lock:
            attachment = self.store.data.attachments.get(req.params["id"])
            if attachment is None:
                return not_found("attachment", req.params["id"])
            size = len(self.store.attachment_bytes(attachment))
            token, _ = self.store.issue_link("qonto", attachment.id, self.config.qonto_attachment_url_seconds)
            body = {
                "id": attachment.id,
                "created_at": times.paris_iso(attachment.created_at),
                "file_name": attachment.file_name,
                "file_size": str(size),
                "file_content_type": "application/pdf",
                "url": f"{req.base_url}/public/files/{token}",
                "probative_attachment": {"status": "unavailable"},
            }
        return json_response(200, {"attachment": body})

    def list_clients(self, req: Request) -> Response:
        paging = self.paging(req)
        if isinstance(paging, Response):
            return paging
        sort = self._sort(req, _CLIENT_SORTS)
        if isinstance(sort, Response):
            return sort
        name = (req.arg("filter[name]") or "").casefold()
        email = (req.arg("filter[email]") or "").casefold()
        with self.store.lock:
            rows = [
                client
                for client in self.store.data.qonto_clients.values()
                if (not name or name in client.name.casefold())
                and (not email or email == client.email.casefold())
            ]
            field, descending = sort
            rows.sort(key=lambda client: getattr(client, field), reverse=descending)
            body = self.page_body("clients", rows, *paging, self._client_json)
        return json_response(200, body)

    def get_client(self, req: Request) -> Response:
        with self.store.lock:
            client = self.store.data.qonto_clients.get(req.params["id"])
            if client is None:
                return not_found("client", req.params["id"])
            return json_response(200, {"client": self._client_json(client)})


def _within(invoice: QontoInvoice, bounds: dict) -> bool:
    """Inclusive ``filter[created_at_*]`` / ``filter[updated_at_*]`` windows."""
    for (field, end), moment in bounds.items():
        if moment is None:
            continue
        value = getattr(invoice, field)
        if (end == "from" and value < moment) or (end == "to" and value > moment):
            return False
    return True

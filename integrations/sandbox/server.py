"""One HTTP server for both sandboxed providers, on the loopback interface only.

    /mkp/v1/...         MijnKlantportaal (:mod:`.mkp`; its /webhooks in :mod:`.subscriptions`)
    /qonto/oauth2/...   Qonto's OAuth server (:mod:`.oauth`)
    /qonto/v2/...       Qonto (:mod:`.qonto`; its /v2/webhook_subscriptions in :mod:`.subscriptions`)
    /_sandbox/...       the sandbox's own admin endpoints (:mod:`.admin`)
    /public/...         what the providers host outside their API: the short-lived file links
                        (MKP ``/pdf`` link, Qonto attachment ``url``) and the payment pages

Every API request goes through the fault injector (:mod:`.faults`) first; the admin endpoints
and public pages never do. ``SandboxServer`` runs it in a background thread for tests, with the
webhook delivery thread (:mod:`.webhooks`) beside it.
"""

from __future__ import annotations

import logging
import socket
import struct
import sys
import threading
from collections import Counter
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from integrations.sandbox import mkp, qonto, qonto_shapes, times
from integrations.sandbox.admin import AdminApi
from integrations.sandbox.admin_events import EventAdmin
from integrations.sandbox.config import SandboxConfig
from integrations.sandbox.faults import Fault, FaultInjector
from integrations.sandbox.limits import SlidingWindowLimiter
from integrations.sandbox.oauth import QontoOAuth
from integrations.sandbox.store import Store
from integrations.sandbox.subscriptions import MkpWebhooks, QontoSubscriptions
from integrations.sandbox.web import Request, Response, html_response, json_response
from integrations.sandbox.webhooks import WebhookHub

logger = logging.getLogger(__name__)

ALLOWED_HOSTS = ("127.0.0.1", "localhost")
MAX_BODY_BYTES = 64 * 1024 * 1024
BURST_RETRY_AFTER = 2

_GATEWAY_PAGES = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}
_MKP_HTML = """<!DOCTYPE html>
<html lang="nl"><head><meta charset="utf-8"><title>MijnKlantportaal - Inloggen</title></head>
<body><h1>Inloggen</h1><form method="post" action="/login">
<input type="email" name="email"><input type="password" name="password"><button>Inloggen</button>
</form></body></html>
"""


class RequestStats:
    """Counts of API requests by provider, route and answer (``reset`` when there was none)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.by_provider: Counter = Counter()
            self.by_route: Counter = Counter()
            self.by_status: Counter = Counter()

    def count(self, provider: str, route: str, status: str) -> None:
        with self._lock:
            self.by_provider[provider] += 1
            self.by_route[route] += 1
            self.by_status[status] += 1

    def to_json(self) -> dict:
        with self._lock:
            return {
                "total": sum(self.by_provider.values()),
                "mkp": self.by_provider["mkp"],
                "qonto": self.by_provider["qonto"],
                "by_route": dict(sorted(self.by_route.items())),
                "by_status": dict(sorted(self.by_status.items())),
            }


class SandboxApp:
    """Routing, fault injection and the shared state, independent of the socket layer."""

    def __init__(self, config: SandboxConfig, store: Store, faults: FaultInjector) -> None:
        self.config = config
        self.store = store
        self.faults = faults
        self.limiter = SlidingWindowLimiter()
        self.stats = RequestStats()
        self.stopping = threading.Event()
        self.hooks = WebhookHub(store, config)
        self.oauth = QontoOAuth(store, config)
        self.mkp = mkp.MkpApi(store, config, self.limiter, self.hooks)
        self.qonto = qonto.QontoApi(store, config, self.limiter, self.hooks, self.oauth)
        self.mkp_webhooks = MkpWebhooks(self.mkp, store)
        self.subscriptions = QontoSubscriptions(self.qonto, store)
        self.events = EventAdmin(self)
        self.admin = AdminApi(self)

    def reset(self) -> None:
        self.store.reset()
        self.limiter.reset()
        self.qonto.reset()
        self.hooks.reset()
        self.stats.reset()
        self.faults.reset_counts()

    def dispatch(self, req: Request) -> Response:
        path = req.path
        for provider, api in (("mkp", self.mkp), ("qonto", self.oauth), ("qonto", self.qonto)):
            if path == api.prefix or path.startswith(api.prefix + "/"):
                return self._api_call(provider, api, req, path[len(api.prefix) :] or "/")
        if path == "/_sandbox" or path.startswith("/_sandbox/"):
            return self.admin.handle(req, path[len("/_sandbox") :])
        if path.startswith("/public/"):
            return self.public(req, path)
        return json_response(
            404, {"message": "Not found. This sandbox serves /mkp/v1, /qonto and /_sandbox."}
        )

    def _api_call(self, provider: str, api, req: Request, path: str) -> Response:
        if self.config.latency_ms:
            self.stopping.wait(self.config.latency_ms / 1000)
        fault = self.faults.draw(provider=provider, method=req.method)
        if fault is None:
            response = self._run(provider, api, req, path)
        elif fault.kind == "slow":
            self.stopping.wait(self.faults.slow_seconds)
            response = self._run(provider, api, req, path)
        else:
            real = self._run(provider, api, req, path) if fault.after else None
            response = self._fault_response(provider, fault, real)
        status = "reset" if response.reset else str(response.status)
        self.stats.count(provider, api.route_name(req.method, path), status)
        return response

    def _run(self, provider: str, api, req: Request, path: str) -> Response:
        try:
            return api.handle(req, path)
        except Exception:
            logger.exception("sandbox handler failed on %s %s", req.method, req.path)
            return mkp.server_error_response() if provider == "mkp" else qonto_shapes.server_error_response()

    def _fault_response(self, provider: str, fault: Fault, real: Response | None) -> Response:
        kind = fault.kind
        if kind == "500":
            return mkp.server_error_response() if provider == "mkp" else qonto_shapes.server_error_response()
        if kind in ("502", "503"):
            return _gateway_page(int(kind))
        if kind == "timeout":
            self.stopping.wait(self.faults.timeout_seconds)
            return real if real is not None else _gateway_page(504)
        if kind == "reset":
            return Response(0, reset=True)
        if kind == "burst429":
            if provider == "mkp":
                return mkp.too_many_response(BURST_RETRY_AFTER, self.config.mkp_requests_per_minute)
            return qonto_shapes.too_many_response(BURST_RETRY_AFTER)
        if kind == "malformed":
            body = real.body if real is not None and real.body else b'{"data":[{"id":"inv_'
            return Response(200, body[: max(1, len(body) // 2)], "application/json")
        if kind == "html":
            return html_response(200, _MKP_HTML if provider == "mkp" else qonto_shapes.LOGIN_PAGE)
        raise AssertionError(f"unknown fault kind {kind}")

    # Pages the providers host outside their APIs ---------------------------------------------
    def public(self, req: Request, path: str) -> Response:
        parts = path.strip("/").split("/")
        pay_page = len(parts) == 6 and parts[1:3] == ["mkp", "public-invoice"] and parts[4] == "pay"
        if req.method != "GET" and not (pay_page and req.method == "POST"):
            return Response(405, b"Method Not Allowed", "text/plain")
        if len(parts) == 3 and parts[1] == "files":
            return self._file(parts[2])
        if pay_page:
            return self._mkp_pay_page(req, parts[3], parts[5])
        if len(parts) == 4 and parts[1:3] == ["qonto", "invoices"]:
            with self.store.lock:
                invoice = self.store.data.qonto_invoices.get(parts[3])
                if invoice is None:
                    return html_response(404, "<h1>Facture introuvable</h1>")
                return html_response(
                    200,
                    f"<h1>Facture {escape(invoice.number or '')}</h1><p>Montant : {invoice.total} EUR</p>",
                )
        return Response(404, b"Not Found", "text/plain")

    def _mkp_pay_page(self, req: Request, invoice_id: str, token: str) -> Response:
        """The payment link: a page with a "Betalen" button; posting it pays the invoice as the
        customer would (``invoice-paid`` webhook)."""
        with self.store.lock:
            invoice = self.store.data.mkp_invoices.get(invoice_id)
            if invoice is None or invoice.payment_token != token:
                return html_response(404, "<h1>Factuur niet gevonden</h1>")
            if req.method == "POST" and invoice.paid_at is None:
                self.events.mkp_paid(invoice, times.utcnow().replace(microsecond=0))
            title = f"<h1>Factuur {escape(invoice.invoice_number)}</h1>"
            if invoice.paid_at is not None:
                return html_response(200, f"{title}<p>Betaald. Bedankt!</p>")
            return html_response(
                200,
                f'{title}<p>Te betalen: EUR {invoice.amount}</p><form method="post"><button>Betalen</button></form>',
            )

    def _file(self, token: str) -> Response:
        link = self.store.link(token)
        if link is None:
            return Response(404, b"Not Found", "text/plain")
        if link.expires_at < times.utcnow():
            return Response(403, b"Request has expired", "text/plain")
        with self.store.lock:
            if link.kind == "mkp":
                invoice = self.store.data.mkp_invoices.get(link.object_id)
                content = self.store.mkp_pdf(invoice) if invoice else None
                name = f"{invoice.invoice_number}.pdf" if invoice else ""
            else:
                attachment = self.store.data.attachments.get(link.object_id)
                content = self.store.attachment_bytes(attachment) if attachment else None
                name = attachment.file_name if attachment else ""
        if content is None:
            return Response(404, b"Not Found", "text/plain")
        safe_name = name.replace('"', "").encode("ascii", "replace").decode()
        return Response(
            200, content, "application/pdf", {"Content-Disposition": f'inline; filename="{safe_name}"'}
        )


def _gateway_page(status: int) -> Response:
    title = _GATEWAY_PAGES[status]
    return html_response(
        status,
        f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center></body></html>\n",
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ProviderSandbox/1.0"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def _serve(self) -> None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            return self._write(Response(411, b"Length Required", "text/plain"))
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            return self._write(Response(413, b"Payload Too Large", "text/plain"))
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        req = Request(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
            host=self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2]),
            client_ip=self.client_address[0],
        )
        try:
            response = self.server.app.dispatch(req)
        except Exception:  # a sandbox bug: answer, and keep serving
            logger.exception("sandbox failed on %s %s", req.method, req.path)
            response = json_response(500, {"error": "the sandbox failed on this request; see its log"})
        if response.reset:
            self._reset()
        else:
            self._write(response)

    def _write(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
        except OSError:  # the client went away (it timed out, say)
            self.close_connection = True

    def _reset(self) -> None:
        """Abort the connection: SO_LINGER 0 makes close() send an RST, no HTTP answer."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def log_message(self, format: str, *args) -> None:
        if not self.server.quiet:
            sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: SandboxApp, *, quiet: bool) -> None:
        self.app = app
        self.quiet = quiet
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address) -> None:
        if not self.quiet:
            super().handle_error(request, client_address)


class SandboxServer:
    """The sandbox in a background thread, for tests and scripts::

        with SandboxServer(seed_invoices=31) as sandbox:
            requests.get(f"{sandbox.mkp_base_url}/customer-invoices", headers=...)
            sandbox.faults.configure({"probabilities": {"500": 1.0}})
            sandbox.state.data.mkp_invoices  # the store

    ``port=0`` (the default) takes a free port. Keyword arguments not listed are settings of
    :class:`SandboxConfig` (``mkp_license_limit=3``, ``rate_limit=False``...).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        config: SandboxConfig | None = None,
        faults: FaultInjector | None = None,
        seed_invoices: int = 0,
        seed_customers: int | None = None,
        data_seed: int | None = None,
        quiet: bool = True,
        **settings,
    ) -> None:
        if host not in ALLOWED_HOSTS:
            raise ValueError(f"the sandbox only listens on 127.0.0.1, not on {host!r}")
        self.host = "127.0.0.1"
        self.requested_port = port
        self.config = config or SandboxConfig()
        self.config.update(settings)
        self.faults = faults or FaultInjector()
        self.state = Store(rng_seed=data_seed)
        self.seeded = (
            self.state.seed(invoices=seed_invoices, customers=seed_customers) if seed_invoices else None
        )
        self.app = SandboxApp(self.config, self.state, self.faults)
        self.quiet = quiet
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        self.app.stopping.clear()
        self._httpd = _Server((self.host, self.requested_port), self.app, quiet=self.quiet)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="sandbox", daemon=True
        )
        self._thread.start()
        self.app.hooks.start()
        return self

    def stop(self) -> None:
        self.app.stopping.set()  # wakes requests held by the slow and timeout faults
        self.app.hooks.stop()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the sandbox is not started")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def mkp_base_url(self) -> str:
        return f"{self.base_url}{mkp.PREFIX}"

    @property
    def qonto_base_url(self) -> str:
        return f"{self.base_url}{qonto.PREFIX}"

    @property
    def qonto_oauth_url(self) -> str:
        return f"{self.base_url}{self.app.oauth.prefix}"

    @property
    def admin_url(self) -> str:
        return f"{self.base_url}/_sandbox"

"""The whole-request size limit: an upload over UPLOAD_MAX_REQUEST_BYTES is refused unparsed.

Django keeps no more than FILE_UPLOAD_MAX_MEMORY_SIZE of an upload in memory, but it writes every
byte of every file to a temporary file before any form can look at it. This middleware answers
413 with a plain page for a request that says it is larger than the limit, before Django (or
CsrfViewMiddleware, which reads request.POST) parses a byte of it.

Why the body is read and dropped before answering: a browser sends the whole upload before it
reads the answer. If the server answers and closes the connection while the upload is still
arriving, the kernel answers the unread bytes with a reset, and the browser shows "connection
reset" instead of our page (gunicorn's sync worker closes the connection after every response and
lingers for only 64 KB). So the rest of the body is read in small chunks and thrown away, which
costs bandwidth and time but no memory, up to a bound (twice the limit, DRAIN_SECONDS) so that a
huge or endless request cannot hold a worker; past the bound the client may see the reset.

Behind a reverse proxy, set its own body limit (nginx: client_max_body_size) a little above
UPLOAD_MAX_REQUEST_BYTES as well: it refuses before the request reaches a worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme

logger = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
DRAIN_SECONDS = 20.0  # below gunicorn's default worker timeout of 30 s

PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{}</title></head>'
    "<body><h1>{}</h1><p>{}</p></body></html>"
)


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f}".removesuffix(".0")


class RequestSizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.UPLOAD_MAX_REQUEST_BYTES
        declared = request.META.get("CONTENT_LENGTH")
        if declared in (None, "") and "HTTP_TRANSFER_ENCODING" in request.META:
            return self._length_required(request, limit)
        try:
            length = int(declared or 0)
        except ValueError:
            length = 0  # as Django reads it: an unreadable length means no body is parsed
        if length <= limit:
            return self.get_response(request)
        logger.warning("refused a request of %d bytes to %s (limit %d)", length, request.path, limit)
        _discard(request.read, min(length, 2 * limit))
        return self._too_large(request, length, limit)

    def _too_large(self, request: HttpRequest, length: int, limit: int) -> HttpResponse:
        back = "Go back"
        referer = request.META.get("HTTP_REFERER", "")
        if url_has_allowed_host_and_scheme(
            referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            back = format_html('<a href="{}">Go back</a>', referer)
        text = format_html(
            "This upload is {} MB; at most {} MB can be sent at once and each PDF may be at most {} MB."
            " {} and choose fewer or smaller files.",
            f"{length / 1024 / 1024:.1f}",
            _mb(limit),
            _mb(settings.MAX_PDF_BYTES),
            back,
        )
        html = format_html(PAGE, "Upload too large", "This upload is too large", text)
        return HttpResponse(html, status=413)

    def _length_required(self, request: HttpRequest, limit: int) -> HttpResponse:
        """A body sent without Content-Length (chunked). Django would not read it at all, so the
        form would only say that no file was chosen: say what is wrong instead."""
        if request.META.get("wsgi.input_terminated"):
            # Only a server that ends the input stream itself (gunicorn does) can be read past an
            # unknown length without waiting for the client forever.
            _discard(request.META["wsgi.input"].read, 2 * limit)
        text = (
            "This request did not say how large it is (no Content-Length header), so it cannot be"
            " read. Send the files from the upload page of a browser."
        )
        html = format_html(PAGE, "Length required", "Length required", text)
        return HttpResponse(html, status=411)


def _discard(read: Callable[[int], bytes], most: int) -> None:
    """Read and drop up to ``most`` bytes of the body, a chunk at a time, within DRAIN_SECONDS."""
    deadline = time.monotonic() + DRAIN_SECONDS
    left = most
    while left > 0 and time.monotonic() < deadline:
        chunk = read(min(CHUNK_BYTES, left))
        if not chunk:
            return
        left -= len(chunk)

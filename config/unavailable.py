"""A database that cannot be reached answers a plain 503 page, not a traceback or a bare 500.

Django's own error handling would log the exception and show its 500 page, which tells staff
nothing they can act on. This middleware turns the database's own connection errors (down,
restarting, out of connections, a lock that would not come) into "try again in a moment".
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html

logger = logging.getLogger(__name__)

PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{}</title></head>'
    "<body><h1>{}</h1><p>{}</p></body></html>"
)


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.error("database unavailable for %s %s: %s", request.method, request.path, exception)
        text = (
            "The database of the back-office cannot be reached just now. In a moment, reload the page"
            " to see where things stand before asking again; if this lasts, tell an administrator."
        )
        html = format_html(PAGE, "Service unavailable", "The back-office is unavailable", text)
        response = HttpResponse(html, status=503)
        response["Retry-After"] = "30"
        return response

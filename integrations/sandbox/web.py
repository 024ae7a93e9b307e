"""The small HTTP toolkit the sandbox handlers share: request and response objects, a router with
``{name}`` path parameters, and a ``multipart/form-data`` parser (the standard library no longer
ships one)."""

from __future__ import annotations

import email
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import orjson


@dataclass
class UploadedFile:
    field: str
    filename: str
    content_type: str
    content: bytes


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    host: str
    client_ip: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """``http://<Host header>``: the sandbox builds its absolute links from it."""
        return f"http://{self.host}"

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def json(self) -> Any:
        """The JSON body; ValueError when it is not JSON."""
        return json.loads(self.body.decode("utf-8"))

    @property
    def is_multipart(self) -> bool:
        return (self.headers.get_content_type() or "").lower() == "multipart/form-data"

    def multipart(self) -> tuple[dict[str, list[str]], dict[str, list[UploadedFile]]]:
        """(text fields, files) of a multipart body; ValueError when it is not a readable one."""
        boundary = self.headers.get_param("boundary")
        if not self.is_multipart or not isinstance(boundary, str) or not boundary:
            raise ValueError("not a multipart/form-data body")
        return parse_multipart(self.body, boundary)


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    #: Close the connection with an RST instead of answering (the ``reset`` fault).
    reset: bool = False


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps(payload)
    return Response(status, body, "application/json", dict(headers or {}))


def html_response(status: int, html: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, html.encode("utf-8"), "text/html; charset=UTF-8", dict(headers or {}))


def parse_multipart(body: bytes, boundary: str) -> tuple[dict[str, list[str]], dict[str, list[UploadedFile]]]:
    fields: dict[str, list[str]] = {}
    files: dict[str, list[UploadedFile]] = {}
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    chunks = (b"\r\n" + body).split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise ValueError("multipart body without its closing boundary")
    for chunk in chunks[1:-1]:
        chunk = chunk.lstrip(b" \t")
        if not chunk.startswith(b"\r\n"):
            raise ValueError("malformed multipart part")
        head, sep, content = chunk[2:].partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("multipart part without headers")
        headers = email.message_from_string(head.decode("utf-8", errors="replace") + "\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise ValueError("multipart part without a name")
        filename = headers.get_filename()
        if filename is None:
            fields.setdefault(name, []).append(content.decode("utf-8", errors="replace"))
        else:
            content_type = (
                headers.get_content_type() if headers.get("content-type") else "application/octet-stream"
            )
            files.setdefault(name, []).append(UploadedFile(name, filename, content_type, content))
    return fields, files


Handler = Callable[[Request], Response]


@dataclass
class Route:
    method: str
    pattern: str
    regex: re.Pattern
    name: str
    handler: Handler


class Router:
    """Routes ``METHOD /path/{param}``; ``match`` tells "no such path" from "wrong method"."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, name: str, handler: Handler) -> None:
        regex = re.sub(
            r"\{(\w+)\}", r"(?P<\1>[^/]+)", re.escape(pattern).replace(r"\{", "{").replace(r"\}", "}")
        )
        self.routes.append(Route(method, pattern, re.compile(f"^{regex}$"), name, handler))

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
        """(route, path parameters, methods allowed on this path when the method is wrong)."""
        allowed = []
        for route in self.routes:
            found = route.regex.match(path)
            if found:
                if route.method == method:
                    return route, found.groupdict(), []
                allowed.append(route.method)
        return None, {}, allowed

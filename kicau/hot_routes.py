"""Hot routes: the few requests a service answers most, served without the framework's per-request layers.

Why: on the home timeline, FastAPI/Starlette's layers cost more than the work. Each request went through four
middleware (each wrapping ``send`` in a closure of its own), the exception-handling wrappers, the router's walk
and a Request object, about half of the ~1.2 ms of CPU the timeline service spent on a home page, where the
work itself (two Redis round trips, twenty statuses composed) is the other half. bench/README.md has the
profiles.

A hot route is one method and path, answered by one coroutine that gets the ASGI scope (and ``receive``, for a
body) and returns the whole answer. A path may hold one parameter segment (``/accounts/{account_id}/statuses``):
its value is in ``scope["path_params"]``, as Starlette's router puts it, and the metrics name the template,
never the id. Everything the skipped layers gave those requests is kept here:
Mastodon-style errors (an ``ApiError`` becomes its status and ``{"error": ...}``; anything else is logged and
answered 503, never 500) and the request metrics (the same series, names and labels as ``MetricsMiddleware``).
Every other request goes to the full application unchanged, and a hot route should also be declared as an
ordinary route, so that it is documented and the application still answers it when the hot route is switched
off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from fastapi import FastAPI
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from kicau.metrics import HTTP_LATENCY, HTTP_REQUESTS, CheapHistogram, CountedSeries
from kicau.visibility import Reader
from kicau.web import ACCOUNT_HEADER, ApiError, acting_account_id, reader_of

log = logging.getLogger("kicau")

JSON = b"application/json"


@dataclass(slots=True)
class Answer:
    body: bytes
    status: int = 200
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_type: bytes = JSON

    def response(self) -> Response:
        """The same answer as a framework response, for an ordinary route that mirrors a hot one."""
        response = Response(self.body, status_code=self.status, media_type=self.content_type.decode("latin-1"))
        response.raw_headers.extend(self.headers)
        return response


# Gets the scope and the ASGI ``receive`` (to read a body), returns the whole answer.
HotHandler = Callable[[Scope, Receive], Awaitable[Answer]]
# Gets the same, and returns the framework response that streams the answer (the gateway's SSE streams), run
# with the server's ``send``; an error before it is answered as a hot route's.
StreamOpener = Callable[[Scope, Receive], Awaitable[Response]]


def error_answer(status: int, message: str, headers: Mapping[str, str] | None = None) -> Answer:
    return Answer(msgspec.json.encode({"error": message}), status,
                  [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()])


def failure_answer(exc: Exception) -> Answer | None:
    """The error answer the ordinary routes give for ``exc`` (kicau/web.py's handlers), None if it is not a
    failure the client caused or should see as-is."""
    if isinstance(exc, ApiError):
        return error_answer(exc.status_code, exc.message, exc.headers)
    if isinstance(exc, StarletteHTTPException):  # Starlette's own, e.g. a malformed multipart body (400)
        message = {404: "Record not found", 405: "Method not allowed"}.get(exc.status_code, str(exc.detail))
        return error_answer(exc.status_code, message, exc.headers)
    return None


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request's whole body, refusing more than ``limit`` bytes (413)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "The client closed the connection before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"Request body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def query_items(scope: Scope) -> list[tuple[str, str]]:
    """The query string's parameters in order, repeated ones included."""
    raw: bytes = scope.get("query_string", b"")
    if not raw:
        return []
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True)
    # Nothing to decode (a page's cursors and limit, as the gateway passes them on): split as parse_qsl would,
    # without its per-field unquoting (~0.7 µs for a page's query, against parse_qsl's ~1.8).
    items = []
    for part in text.split("&"):
        if part:
            name, _, value = part.partition("=")
            items.append((name, value))
    return items


def query(scope: Scope) -> dict[str, str]:
    """The query string's parameters; a repeated one keeps its last value (as Starlette's ``query_params``)."""
    return dict(query_items(scope))


def header(scope: Scope, name: bytes) -> str | None:
    """A request header by lower-case name (the first, if repeated)."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


_ACCOUNT_HEADER_KEY = ACCOUNT_HEADER.lower().encode()


def acting_account(scope: Scope) -> int:
    """The account an internal request acts for (the gateway's ``X-Kicau-Account``), or 401."""
    return acting_account_id(header(scope, _ACCOUNT_HEADER_KEY))


def reading_account(scope: Scope) -> Reader:
    """Who an internal read is for: the account of the token it was made with, or anonymous."""
    return reader_of(header(scope, _ACCOUNT_HEADER_KEY))


@dataclass(slots=True)
class _Route:
    handler: Callable[[Scope, Receive], Awaitable[Answer | Response]]
    latency: CheapHistogram  # the route's child of HTTP_LATENCY, made once
    method: str
    route: str
    counted: dict[int, CountedSeries] = field(default_factory=dict)  # status -> its child of HTTP_REQUESTS
    streams: bool = False  # answered by a StreamOpener: over HTTP only, never as an internal call


@dataclass(frozen=True, slots=True)
class _Template:
    """A path with one parameter segment: ``prefix{name}suffix``."""

    method: str
    prefix: str
    name: str
    suffix: str
    route: _Route

    def match(self, method: str, path: str) -> str | None:
        if method != self.method or not path.startswith(self.prefix) or not path.endswith(self.suffix):
            return None
        value = path[len(self.prefix):len(path) - len(self.suffix)]
        return value if value and "/" not in value else None


class HotRoutes:
    def __init__(self, service: str) -> None:
        self._service = service
        self._routes: dict[tuple[str, str], _Route] = {}
        self._templates: list[_Template] = []

    def add(self, method: str, path: str, handler: HotHandler) -> None:
        self._add(_Route(handler, HTTP_LATENCY.labels(self._service, method, path), method, path))

    def add_stream(self, method: str, path: str, opener: StreamOpener) -> None:
        """A route whose answer streams for as long as the client stays. Served hot, a stream holds none of the
        framework's layers (routing, exception wrappers, exit stack: ~9 KB of each open SSE stream in the gateway,
        bench/README.md) and its opening skips the walk over the application's routes. Its latency is the time to
        open it, as ``MetricsMiddleware`` times a route to its answer's start."""
        self._add(_Route(opener, HTTP_LATENCY.labels(self._service, method, path), method, path, streams=True))

    def _add(self, route: _Route) -> None:
        method, path = route.method, route.route
        if "{" not in path:
            self._routes[(method, path)] = route
            return
        prefix, _, rest = path.partition("{")
        name, _, suffix = rest.partition("}")
        if not name or "{" in suffix or "/" in name:
            raise ValueError(f"a hot route's path holds at most one parameter segment: {path}")
        self._templates.append(_Template(method, prefix, name, suffix, route))

    def declared(self) -> list[tuple[str, str]]:
        """(method, path template) of every hot route."""
        return [*self._routes, *((t.method, t.route.route) for t in self._templates)]

    def taking(self, method: str, path: str) -> str | None:
        """The template of the hot route that answers ``method`` ``path``, if one does (it is answered before any
        of the application's other routes)."""
        route = self.find({"type": "http", "method": method, "path": path})
        return None if route is None else route.route

    def find(self, scope: Scope) -> _Route | None:
        if scope["type"] != "http":
            return None
        method, path = scope["method"], scope["path"]
        route = self._routes.get((method, path))
        if route is not None or not self._templates:
            return route
        for template in self._templates:
            value = template.match(method, path)
            if value is not None:
                scope["path_params"] = {template.name: value}
                return template.route
        return None

    async def answer(self, route: _Route, scope: Scope, receive: Receive) -> Answer:
        """The whole answer of a route that is not a stream (``answer_call`` never takes those)."""
        answer = await self._reply(route, scope, receive)
        if not isinstance(answer, Answer):
            raise TypeError(f"{route.route} streams its answer: it is served over HTTP only")
        return answer

    async def _reply(self, route: _Route, scope: Scope, receive: Receive) -> Answer | Response:
        """The route's answer (or its stream's response), errors answered as the ordinary routes answer them,
        counted and timed."""
        started = time.perf_counter()
        try:
            answer = await route.handler(scope, receive)
        except Exception as exc:
            failed = failure_answer(exc)
            if failed is None:
                log.exception("unhandled error in %s: %s", self._service, type(exc).__name__)
                failed = error_answer(503, "Service temporarily unavailable, try again")
            answer = failed
        route.latency.observe(time.perf_counter() - started)
        status = answer.status if isinstance(answer, Answer) else answer.status_code
        counter = route.counted.get(status)
        if counter is None:
            counter = route.counted[status] = HTTP_REQUESTS.labels(self._service, route.method, route.route,
                                                                   str(status))
        counter.inc()
        return answer

    async def serve(self, route: _Route, scope: Scope, receive: Receive, send: Send) -> None:
        answer = await self._reply(route, scope, receive)
        if not isinstance(answer, Answer):
            await answer(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": answer.status, "headers": [
            (b"content-type", answer.content_type), (b"content-length", b"%d" % len(answer.body)), *answer.headers,
        ]})
        await send({"type": "http.response.body", "body": answer.body})


class ServiceApp(FastAPI):
    """A FastAPI application that answers its hot routes before any of its own layers."""

    def __init__(self, *, service: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hot_routes = HotRoutes(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.hot_routes.find(scope)
        if route is not None:
            scope["app"] = self  # as Starlette would set it: handlers find the application's state there
            await self.hot_routes.serve(route, scope, receive, send)
            return
        await super().__call__(scope, receive, send)

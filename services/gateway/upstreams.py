"""Calls from the gateway to the internal services over a small pool of keep-alive HTTP/1.1 connections.

An upstream's answer is passed through as bytes (status, body, content type): the services already render
Mastodon entities, so the gateway never decodes and re-encodes them.

Why not a general HTTP client: every client API request crosses this hop, and httpx/httpcore spent about half of
the gateway's time on it (bench/README.md, "Gateway: home and post far below hello world"): its pool asks every
idle connection whether it expired (a poll syscall each) on every request and response, detects the async library
through the import machinery per call, and logs each request at INFO. The hop is narrow — our own uvicorn
services on loopback or a private network, plain HTTP/1.1, small bodies with a Content-Length or chunked — so a
connection here is an asyncio protocol with httptools (the parser uvicorn itself uses) and the pool is a stack of
idle connections. The event loop reports a connection the service closed (``connection_lost``), so nothing is
polled to know whether an idle connection is still usable.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Mapping
from typing import Any, Protocol, cast
from urllib.parse import urlencode, urlsplit

import httptools
import msgspec
from fastapi.responses import Response

from kicau.identity_memo import IdentityMemo
from kicau.internal_rpc import CallClient, CallLostError, CallTimeoutError
from kicau.tokens import TokenInfo
from kicau.web import ACCOUNT_HEADER, CLIENT_HEADER, SCOPES_HEADER, ApiError

CONNECT_TIMEOUT_SECONDS = 2.0
# Methods whose request always says how long its body is (an empty POST still sends Content-Length: 0, which
# HTTP/1.1 servers may otherwise require to find the end of the request).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Not sent twice after a connection broke under them, unless the client gave an Idempotency-Key.
_UNSAFE_METHODS = frozenset({"POST", "PATCH"})
# Tokens whose call headers a CallUpstream keeps encoded (``CallUpstream._headers_of``): ~0.5 KB each.
_TOKEN_HEADERS_KEPT = 10_000
_encode_json = msgspec.json.Encoder().encode


class UpstreamError(Exception):
    """The service could not be reached or broke the connection before answering in full."""


class UpstreamTimeoutError(UpstreamError):
    """The service did not answer in time: it may still be working on the request."""


class UpstreamStatusError(UpstreamError):
    """``raise_for_status`` on an error answer."""


class UpstreamResponse:
    """What the gateway reads of an internal answer: status, headers (names lower-cased) and the whole body."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        return msgspec.json.decode(self.content)  # msgspec.DecodeError is a ValueError, as json.loads raises

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise UpstreamStatusError(f"upstream answered {self.status_code}")


class _Connection(asyncio.Protocol):
    """One keep-alive connection: at most one request in flight, its answer parsed as bytes arrive."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._received_any = False
        self._deadline: asyncio.TimerHandle | None = None
        self.open = False

    # asyncio.Protocol ----------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self.open = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self._fail(UpstreamError(f"connection closed by the service: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        self._received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed answer: {exc}"))
            self.close()

    # httptools callbacks -------------------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        # httptools joins a header split across reads before calling this; a repeated header is joined as one.
        key = name.decode("latin-1").lower()
        previous = self._headers.get(key)
        text = value.decode("latin-1")
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter = self._waiter
        self._waiter = None
        self._cancel_deadline()
        answer = UpstreamResponse(self._parser.get_status_code(), self._headers, b"".join(self._body))
        if not self._parser.should_keep_alive():
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    # requests ------------------------------------------------------------------------------------------------

    def send(self, request: bytes, deadline: float) -> asyncio.Future[UpstreamResponse]:
        assert self._transport is not None and self._waiter is None
        self._headers = {}
        self._body = []
        self._received_any = False
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        # One timer per exchange, cancelled by the answer: cheaper than a timeout context around the await,
        # which every client API request would pay.
        self._deadline = loop.call_at(deadline, self._expire)
        self._transport.write(request)
        return self._waiter

    def _expire(self) -> None:
        self._deadline = None
        # An answer may still be on its way: this connection can never carry another request.
        self._fail(UpstreamTimeoutError("no answer in time"))
        self.close()

    @property
    def received_any(self) -> bool:
        return self._received_any

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _fail(self, error: UpstreamError) -> None:
        self._cancel_deadline()
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def close(self) -> None:
        self.open = False
        self._cancel_deadline()
        if self._transport is not None:
            self._transport.close()


class Upstream:
    def __init__(self, base_url: str, *, timeout: float, connections: int) -> None:
        url = urlsplit(base_url)
        # unix:///path: the service's Unix socket on this host (kicau/serve.py), no TCP stack on either end.
        self._socket = url.path if url.scheme == "unix" and url.path.startswith("/") and not url.netloc else None
        if self._socket is None and (url.scheme != "http" or not url.hostname):
            raise ValueError(f"an internal service URL is http://host:port or unix:///path, not {base_url!r}")
        self._host = url.hostname or "localhost"
        self._port = url.port or 80
        self._prefix = "" if self._socket else url.path.rstrip("/")
        self._host_header = f"Host: {url.netloc or 'localhost'}\r\n".encode("latin-1")
        self._timeout = timeout
        # Bounds the requests in flight, hence the open connections (each request holds one).
        self._slots = asyncio.Semaphore(connections)
        # Most recently used last: reusing the newest keeps the set of warm connections as small as the load.
        self._idle: collections.deque[_Connection] = collections.deque()

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: TokenInfo | None = None,
        json: Any = None,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> UpstreamResponse:
        sent = _internal_headers(token, headers)
        request = self._request(method, path, json, params, sent, content)
        # A request may be sent twice only if doing it twice changes nothing more than doing it once.
        repeatable = method not in _UNSAFE_METHODS or "Idempotency-Key" in sent
        # The whole call (waiting for a connection, connecting, a second attempt) ends by one deadline.
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            await _take(self._slots, deadline)
            try:
                return await self._exchange(request, repeatable, deadline)
            finally:
                self._slots.release()
        except (UpstreamError, OSError, TimeoutError) as exc:
            raise ApiError(503, "Service temporarily unavailable, try again") from exc

    def _request(self, method: str, path: str, json: Any, params: Mapping[str, Any] | list[tuple[str, Any]] | None,
                 headers: Mapping[str, str], content: bytes | None = None) -> bytes:
        target = self._prefix + path
        if params:
            target += "?" + _query_string(params)
        body = content if content is not None else b"" if json is None else _encode_json(json)
        lines = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), self._host_header]
        if json is not None:
            lines.append(b"Content-Type: application/json\r\n")
        if body or method in _BODY_METHODS:
            lines.append(b"Content-Length: %d\r\n" % len(body))
        for name, value in headers.items():
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        lines.append(b"\r\n")
        lines.append(body)
        return b"".join(lines)

    async def _exchange(self, request: bytes, repeatable: bool, deadline: float) -> UpstreamResponse:
        connection = self._reuse()
        if connection is not None:
            try:
                return await self._send(connection, request, deadline)
            except UpstreamTimeoutError:
                raise  # the service took the request and is slow: sending it again would only add to its load
            except UpstreamError:
                # The service closed this idle connection (its keep-alive timeout) just as the request went out,
                # before answering anything: send it once more on a new connection. Only when that is safe: the
                # service may also have taken the request and died before answering, and a POST without an
                # Idempotency-Key done twice would be two statuses (the client gets a 503 and decides).
                if connection.received_any or not repeatable:
                    raise
        return await self._send(await self._connect(deadline), request, deadline)

    def _reuse(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.open:
                return connection
        return None

    async def _connect(self, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout_at(min(deadline, loop.time() + CONNECT_TIMEOUT_SECONDS)):
            if self._socket is not None:
                _, connection = await loop.create_unix_connection(_Connection, self._socket)
            else:
                _, connection = await loop.create_connection(_Connection, self._host, self._port)
        return connection

    async def _send(self, connection: _Connection, request: bytes, deadline: float) -> UpstreamResponse:
        try:
            answer = await connection.send(request, deadline)
        except BaseException:
            # Cancelled or timed out mid-answer: the rest of it would arrive as the next request's answer.
            connection.close()
            raise
        if connection.open:
            self._idle.append(connection)
        return answer


class Caller(Protocol):
    """How the gateway calls an internal service: over HTTP (``Upstream``) or on its call socket
    (``CallUpstream``), with the same requests and answers."""

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: TokenInfo | None = None,
        json: Any = None,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


class CallUpstream:
    """A service on this host reached on its call socket (``kicau+unix:///path``, kicau/internal_rpc.py): the same
    requests and answers as over HTTP, as frames, many in flight on one connection."""

    def __init__(self, path: str, *, timeout: float, in_flight: int) -> None:
        self._client = CallClient(path, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        self._timeout = timeout
        # As many calls in flight as HTTP would have connections: an overloaded service gets no more work than
        # it is already late with, and callers beyond it wait here, within their deadline.
        self._slots = asyncio.Semaphore(in_flight)
        # Each token's call headers, encoded once (``_headers_of``).
        self._token_headers: IdentityMemo[TokenInfo, list[tuple[bytes, bytes]]] = IdentityMemo(_TOKEN_HEADERS_KEPT)

    async def aclose(self) -> None:
        await self._client.aclose()

    def _headers_of(self, token: TokenInfo | None) -> list[tuple[bytes, bytes]]:
        """The headers of a call made with ``token`` alone, encoded once per token: the token copies hand out the
        same TokenInfo for a token until it changes, and encoding who acts was ~1 µs of every page relayed."""
        if token is None:
            return []
        # A list of its own: a call may add its content type.
        return list(self._token_headers.get(token, lambda held: _encoded(_internal_headers(held, None))))

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: TokenInfo | None = None,
        json: Any = None,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> UpstreamResponse:
        sent = self._headers_of(token) if headers is None else _encoded(_internal_headers(token, headers))
        body = content or b""
        if json is not None:
            body = _encode_json(json)
            sent.append((b"content-type", b"application/json"))
        query = _query_string(params).encode("latin-1") if params else b""
        repeatable = method not in _UNSAFE_METHODS or any(name == b"idempotency-key" for name, _ in sent)
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            await _take(self._slots, deadline)
            try:
                status, answered, content = await self._client.call(method, path, query, sent, body, deadline)
            except CallLostError:
                # The service closed the connection (it restarted) with this call in flight: as over HTTP, sent once
                # more only when doing it twice changes nothing more than doing it once.
                if not repeatable:
                    raise
                status, answered, content = await self._client.call(method, path, query, sent, body, deadline)
            finally:
                self._slots.release()
        except (CallLostError, CallTimeoutError, OSError, TimeoutError) as exc:
            raise ApiError(503, "Service temporarily unavailable, try again") from exc
        return UpstreamResponse(status, {name.decode("latin-1"): value.decode("latin-1") for name, value in answered},
                                content)


def upstream(url: str, *, timeout: float, connections: int) -> Caller:
    """The caller of the internal service at ``url``: ``kicau+unix:///path`` for its call socket on this host,
    ``http://host:port`` or ``unix:///path`` for HTTP."""
    parts = urlsplit(url)
    if parts.scheme == "kicau+unix":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError(f"a call socket URL is kicau+unix:///path, not {url!r}")
        return CallUpstream(parts.path, timeout=timeout, in_flight=connections)
    return Upstream(url, timeout=timeout, connections=connections)


async def _take(slots: asyncio.Semaphore, deadline: float) -> None:
    """A place among the calls in flight, waiting for one no later than ``deadline`` (TimeoutError)."""
    if slots.locked():
        async with asyncio.timeout_at(deadline):
            await slots.acquire()
    else:
        await slots.acquire()  # no timeout context when a place is free, as it nearly always is


def _internal_headers(token: TokenInfo | None, headers: Mapping[str, str] | None) -> dict[str, str]:
    """An internal request's headers: the caller's own and, for a user's request, who acts (account, client,
    scopes), which the services trust."""
    sent: dict[str, str] = dict(headers or {})
    if token is not None:
        if token.account_id is not None:
            sent[ACCOUNT_HEADER] = str(token.account_id)
        sent[CLIENT_HEADER] = token.client_id
        sent[SCOPES_HEADER] = " ".join(token.scopes)
    for name, value in sent.items():
        # Values come from clients (Idempotency-Key) and from stored tokens: a line break would let them add
        # headers of their own to an internal request, such as the account the request acts for.
        if "\r" in value or "\n" in value:
            raise ApiError(400, f"Invalid {name} header")
    return sent


def _encoded(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def _query_string(params: Mapping[str, Any] | list[tuple[str, Any]]) -> str:
    items = list(params.items()) if isinstance(params, Mapping) else params
    # Pages ask with a few integers under plain names (limit, max_id): nothing to quote, and urlencode's
    # quoting was 2% of a home read.
    if all(type(value) is int and name.isidentifier() for name, value in items):
        return "&".join([f"{name}={value}" for name, value in items])
    return urlencode(items)


def passthrough(upstream: UpstreamResponse, extra_headers: Mapping[str, str] | None = None) -> Response:
    headers = dict(extra_headers or {})
    return Response(
        content=upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type", "application/json"),
        headers=headers,
    )


def raise_for_error(upstream: UpstreamResponse) -> None:
    """Turn an upstream error answer into the same error for the client."""
    if upstream.status_code >= 400:
        try:
            message = str(upstream.json().get("error") or "Request failed")
        except ValueError:
            message = "Request failed"
        status = upstream.status_code if upstream.status_code < 500 else 503
        raise ApiError(status, message)

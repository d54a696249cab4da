"""Kicau's internal calls on one host: HTTP requests and answers as length-prefixed frames, many in flight on one
Unix socket connection, handed to the service's application without an HTTP server.

Why: a home page is two requests, the client's to the gateway and the gateway's to the timeline service, where
hello world is one. With the timeline run inside the gateway (measured, bench/README.md) a page cost 512-538 µs
of CPU instead of ~700: the second request's HTTP cycle on both sides (a request head written and parsed, a
server's request cycle, a task and the ASGI messages) was most of the difference. Over frames a page costs
~70 µs less than over HTTP on a Unix socket, nearly all of it in the service. A call keeps its shape (method,
path, query, headers, body; status, headers, body), so a service answers it with the same code and errors as
over HTTP, and the gateway sees the same answers; only the transport is leaner. Calls in flight share one
connection (request ids), and frames queued in one turn of the event loop leave in one write on either side.

A frame is an 8-byte head, the envelope's length and the body's (big-endian), then a msgpack envelope, then
the body as it is (a 32 KB page is not encoded again):

* call:   ``[id, method, path, query string, [[name, value], ...]]`` and the request body;
* answer: ``[id, status, [[name, value], ...]]`` and the answer body.

Header names are lower-case bytes. The socket is the service's own (``kicau.serve.unix_listener``: its owner
only), because a service trusts the account header of whoever calls it.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any, cast
from urllib.parse import unquote

import msgspec
from starlette.types import ASGIApp, Message, Scope

from kicau.hot_routes import Answer, ServiceApp, error_answer, failure_answer

log = logging.getLogger("kicau")

Headers = list[tuple[bytes, bytes]]

_HEAD = struct.Struct(">II")
# A frame longer than this is a broken peer, not a call: the connection is closed.
MAX_FRAME_BYTES = 64 * 1024 * 1024
# Frames sent in one turn of the loop leave together, but no more than this many: a turn of the timeline service
# that answers 20 home pages (each ~34 KB) would otherwise hold every answer until the last is computed, and the
# gateway waits idle meanwhile, then has all 20 to write while the timeline waits in turn. The two processes took
# turns instead of working side by side: 15-17% of the machine's two cores idle under wrk -c32 on home pages;
# 9-11% with a write every 1, 2 or 4 frames, 12-14% every 8, 16% every 16 (bench/README.md, 2026-12-06).
FLUSH_AT_FRAMES = 4
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


def frame(envelope: list[Any], body: bytes) -> bytes:
    packed = _encode(envelope)
    return b"".join((_HEAD.pack(len(packed), len(body)), packed, body))


class FrameError(Exception):
    """The peer sent something that is not a frame of this protocol."""


class _Frames(asyncio.Protocol):
    """Both ends: frames cut from the byte stream as they arrive; frames sent in one turn of the loop written
    together, ``FLUSH_AT_FRAMES`` at most."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._outgoing: list[bytes] = []
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.open = True

    def data_received(self, data: bytes) -> None:
        # Frames are cut from what arrived without first copying it into the buffer, which holds only the start
        # of a frame still arriving: a page's body is copied once, into the bytes handed on.
        if self._buffer:
            self._buffer += data
            source: bytes | bytearray = self._buffer
        else:
            source = data
        view = memoryview(source)
        start = 0
        try:
            while len(source) - start >= _HEAD.size:
                envelope_size, body_size = _HEAD.unpack_from(source, start)
                end = start + _HEAD.size + envelope_size + body_size
                if end - start > MAX_FRAME_BYTES:
                    raise FrameError(f"a frame of {end - start} bytes")
                if len(source) < end:
                    break
                middle = start + _HEAD.size + envelope_size
                envelope = _decode(view[start + _HEAD.size:middle])
                body = bytes(view[middle:end])
                start = end
                self.frame_received(envelope, body)
        except (FrameError, msgspec.DecodeError, ValueError, TypeError) as exc:
            log.warning("internal call connection closed: %s", exc)
            view.release()
            self._buffer = bytearray()
            self.close()
            return
        view.release()
        if source is self._buffer:
            del self._buffer[:start]
        elif start < len(data):
            self._buffer = bytearray(data[start:])

    def frame_received(self, envelope: Any, body: bytes) -> None:
        raise NotImplementedError

    def send(self, data: bytes) -> None:
        outgoing = self._outgoing
        if not outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        outgoing.append(data)
        if len(outgoing) >= FLUSH_AT_FRAMES:
            self._flush()  # the turn's later frames start a new batch; the scheduled flush finds it or nothing

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if outgoing and self._transport is not None and self.open:
            self._transport.writelines(outgoing)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False

    def close(self) -> None:
        self.open = False
        if self._transport is not None:
            self._transport.close()


# -- the service's side ----------------------------------------------------------------------------------------


class CallServer(_Frames):
    """One caller's connection to a service: each call answered by the service's application, concurrently."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__()
        self._app = app
        self._calls: set[asyncio.Task[None]] = set()

    def frame_received(self, envelope: Any, body: bytes) -> None:
        call_id, method, path, query_string, headers = envelope
        scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
            # As ASGI has it (and uvicorn gives it): ``path`` percent-decoded, ``raw_path`` as sent.
            "method": method, "path": unquote(path) if "%" in path else path, "raw_path": path.encode("latin-1"),
            "root_path": "",
            "query_string": query_string, "headers": [(name, value) for name, value in headers],
            "client": None, "server": None, "state": {},
        }
        task = asyncio.get_running_loop().create_task(self._answer(call_id, scope, body))
        self._calls.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._calls.discard)

    async def _answer(self, call_id: int, scope: Scope, body: bytes) -> None:
        try:
            answer = await answer_call(self._app, scope, body)
        except Exception:  # answer_call answers the application's errors; this is a defect of its own
            log.exception("internal call %s %s", scope["method"], scope["path"])
            answer = error_answer(503, "Service temporarily unavailable, try again")
        headers = [[b"content-type", answer.content_type], *([name, value] for name, value in answer.headers)]
        self.send(frame([call_id, answer.status, headers], answer.body))


async def answer_call(app: ASGIApp, scope: Scope, body: bytes) -> Answer:
    """A call's answer from ``app``: by its hot route's handler when it has one for the call (counted and timed
    as over HTTP), else through the whole application, middleware and error handlers included."""
    if isinstance(app, ServiceApp):
        route = app.hot_routes.find(scope)
        if route is not None and not route.streams:
            scope["app"] = app
            return await app.hot_routes.answer(route, scope, _Receive(body))
    return await _Exchange(body).run(app, scope)


class _Receive:
    """A call's ``receive``: its whole body at once; then, as for an HTTP client that stays connected, nothing
    until the answer is complete."""

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body
        self.answered = asyncio.Event()

    async def __call__(self) -> Message:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self.answered.wait()
        return {"type": "http.disconnect"}


class _Exchange:
    """One call through a service's whole ASGI application, its answer collected from ``send``."""

    def __init__(self, body: bytes) -> None:
        self._receive = _Receive(body)
        self._answer = Answer(b"", 0, [], b"application/json")
        self._body: list[bytes] = []

    async def _send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._answer.status = message["status"]
            for name, value in message.get("headers", []):
                if name.lower() == b"content-type":
                    self._answer.content_type = value
                elif name.lower() != b"content-length":
                    self._answer.headers.append((name.lower(), value))
        elif message["type"] == "http.response.body":
            self._body.append(message.get("body", b""))
            if not message.get("more_body", False):
                self._receive.answered.set()

    async def run(self, app: ASGIApp, scope: Scope) -> Answer:
        try:
            await app(scope, self._receive, self._send)
        except Exception as exc:
            # Starlette answers an unhandled error (kicau/web.py: a 503) and then raises it again for the server
            # to log: the answer, once complete, is what the caller gets.
            if not self._receive.answered.is_set():
                failed = failure_answer(exc)
                if failed is not None:
                    return failed
                log.exception("unhandled error in %s %s", scope["method"], scope["path"])
                return error_answer(503, "Service temporarily unavailable, try again")
            log.warning("%s %s failed after answering: %r", scope["method"], scope["path"], exc)
        if not self._receive.answered.is_set():
            return error_answer(503, "Service temporarily unavailable, try again")
        self._answer.body = b"".join(self._body)
        return self._answer


# -- the caller's side -----------------------------------------------------------------------------------------


class CallLostError(Exception):
    """The connection broke before the call's answer came back."""


class CallTimeoutError(Exception):
    """No answer by the call's deadline: the service may still be working on it."""


class _CallConnection(_Frames):
    def __init__(self) -> None:
        super().__init__()
        self._waiting: dict[int, asyncio.Future[tuple[int, Headers, bytes]]] = {}

    def frame_received(self, envelope: Any, body: bytes) -> None:
        call_id, status, headers = envelope
        waiter = self._waiting.pop(call_id, None)
        if waiter is not None and not waiter.done():  # a call given up on (its deadline) is not waited for
            waiter.set_result((status, [(name, value) for name, value in headers], body))

    def expect(self, call_id: int) -> asyncio.Future[tuple[int, Headers, bytes]]:
        waiter: asyncio.Future[tuple[int, Headers, bytes]] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = waiter
        return waiter

    def forget(self, call_id: int) -> None:
        self._waiting.pop(call_id, None)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        waiting, self._waiting = self._waiting, {}
        for waiter in waiting.values():
            if not waiter.done():
                waiter.set_exception(CallLostError(f"connection closed by the service: {exc!r}"))


class CallClient:
    """Calls to one service on its call socket, over one connection opened on first use and again after it
    broke."""

    def __init__(self, path: str, *, connect_timeout: float = 2.0) -> None:
        self._path = path
        self._connect_timeout = connect_timeout
        self._connection: _CallConnection | None = None
        self._connecting: asyncio.Future[_CallConnection] | None = None
        self._next_id = 0

    async def call(self, method: str, path: str, query_string: bytes, headers: Headers, body: bytes,
                   deadline: float) -> tuple[int, Headers, bytes]:
        """The answer's status, headers and body. Raises CallLostError when the connection broke before the answer
        (the call may or may not have been carried out), CallTimeoutError at ``deadline``, OSError when the service
        cannot be reached."""
        connection = self._connection
        if connection is None or not connection.open:
            connection = await self._connect(deadline)
        self._next_id = call_id = (self._next_id + 1) & 0xFFFFFFFF
        waiter = connection.expect(call_id)
        connection.send(frame([call_id, method, path, query_string, [[n, v] for n, v in headers]], body))
        loop = asyncio.get_running_loop()
        # One timer per call, cancelled by the answer: cheaper than a timeout context around the await.
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            connection.forget(call_id)

    async def _connect(self, deadline: float) -> _CallConnection:
        # Concurrent first calls share one connection attempt.
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open(deadline))
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _open(self, deadline: float) -> _CallConnection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout_at(min(deadline, loop.time() + self._connect_timeout)):
            _, connection = await loop.create_unix_connection(_CallConnection, self._path)
        self._connection = connection
        return connection

    async def aclose(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(CallTimeoutError("no answer in time"))

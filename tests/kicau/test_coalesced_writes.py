"""A response's head and body in one system call (kicau/coalesced_writes.py).

The transport's rules, against a recording transport; then uvicorn itself, on uvloop and a real socket, serving
a small app through ``CoalescingHttpProtocol``: each whole response reaches the socket's transport in one call,
keep-alive and streamed (chunked) answers arrive complete and in order, and a closed connection gets everything
written before it closed."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
import uvloop
from starlette.types import Receive, Scope, Send

from kicau.coalesced_writes import CoalescingHttpProtocol, CoalescingTransport, unwrapped


class RecordingTransport:
    """What reaches the socket: one entry per call, ``writelines``' chunks joined."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False
        self.buffered = 0

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def writelines(self, chunks: Any) -> None:
        self.calls.append(("writelines", b"".join(chunks)))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", b""))
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return f"extra:{name}"


def _wrapped() -> tuple[CoalescingTransport, RecordingTransport]:
    inner = RecordingTransport()
    return CoalescingTransport(inner, asyncio.get_running_loop()), inner  # type: ignore[arg-type]


async def _next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_a_head_and_its_body_leave_in_one_call_in_order() -> None:
    transport, inner = _wrapped()
    transport.hold_next()
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
    transport.write(b"hello")
    assert inner.calls == [("writelines", b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")]
    await _next_turn()
    assert len(inner.calls) == 1  # nothing left over for the end of the turn


async def test_a_head_alone_in_its_turn_leaves_by_the_end_of_the_turn() -> None:
    transport, inner = _wrapped()
    transport.hold_next()
    head = bytearray(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    transport.write(head)
    head[:] = b"reused by the caller"
    assert inner.calls == []
    assert transport.get_write_buffer_size() == len(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    await _next_turn()
    assert inner.calls == [("write", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")]
    assert transport.get_write_buffer_size() == 0


async def test_writes_not_after_a_request_head_go_straight_through_in_order() -> None:
    transport, inner = _wrapped()
    transport.write(b"event 1")  # a stream's event written by the hub: never held
    assert inner.calls == [("write", b"event 1")]
    transport.hold_next()
    transport.write(b"")  # nothing to send: nothing held, still armed
    for part in (b"a", b"b", b"c"):
        transport.write(part)
    transport.writelines([b"d", b"e"])
    await _next_turn()
    assert inner.calls == [("write", b"event 1"), ("writelines", b"ab"), ("write", b"c"), ("writelines", b"de")]


async def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    transport, inner = _wrapped()
    transport.hold_next()
    transport.write(b"last words")
    transport.close()
    assert inner.calls == [("write", b"last words"), ("close", b"")]

    transport, inner = _wrapped()
    transport.hold_next()
    transport.write(b"never sent")
    transport.abort()
    await _next_turn()
    assert inner.calls == [("abort", b"")]


async def test_a_stream_past_its_head_is_written_beneath_the_wrapper() -> None:
    transport, inner = _wrapped()
    assert unwrapped(inner) is inner  # not wrapped: as given
    transport.hold_next()
    assert unwrapped(transport) is transport  # a head is expected: it must leave first
    transport.write(b"head")
    assert unwrapped(transport) is transport  # the head is held
    transport.write(b"first chunk")
    assert unwrapped(transport) is inner
    unwrapped(transport).write(b"event")
    assert inner.calls == [("writelines", b"headfirst chunk"), ("write", b"event")]


async def test_everything_else_is_the_transports_own() -> None:
    transport, inner = _wrapped()
    inner.buffered = 100
    transport.hold_next()
    transport.write(b"12345")
    assert transport.get_write_buffer_size() == 105
    assert transport.get_extra_info("peername") == "extra:peername"
    assert transport.is_closing() is False


# uvicorn on uvloop, as the services run ------------------------------------------------------------------------

async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"part %d;" % i, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    body = scope["path"].encode() * 1000
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


class _CountingTransport:
    """Sits under the coalescing transport and counts the calls that reach the socket."""

    calls: list[int] = []

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        self.calls.append(1)
        self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        self.calls.append(1)
        self._transport.writelines(chunks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _CountedProtocol(CoalescingHttpProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CountingTransport(transport))  # type: ignore[arg-type]


def _read_response(sock: socket.socket, pending: bytearray) -> tuple[bytes, bytes]:
    """One response's head and body (Content-Length or chunked) off a blocking socket."""
    while b"\r\n\r\n" not in pending:
        pending += sock.recv(65536)
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    pending[:] = rest
    lines = head.lower().split(b"\r\n")
    length = next((int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:")), None)
    if length is not None:
        while len(pending) < length:
            pending += sock.recv(65536)
        whole = bytes(pending[:length])
        del pending[:length]
        return head, whole
    body = bytearray()
    while True:
        while b"\r\n" not in pending:
            pending += sock.recv(65536)
        size = int(bytes(pending[:pending.index(b"\r\n")]), 16)
        while len(pending) < pending.index(b"\r\n") + 2 + size + 2:
            pending += sock.recv(65536)
        start = pending.index(b"\r\n") + 2
        body += pending[start:start + size]
        del pending[:start + size + 2]
        if size == 0:
            return head, bytes(body)


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    """uvicorn on its own uvloop in a thread, with the services' protocol (counted): the test talks to it over
    a real socket."""
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    config = uvicorn.Config(_app, loop="none", http=_CountedProtocol, access_log=False, log_level="warning")
    served = uvicorn.Server(config)

    def run() -> None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(served.serve(sockets=[listener]))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while not served.started:
        thread.join(0.02)
    try:
        yield port
    finally:
        served.should_exit = True
        thread.join(10)
        listener.close()


def test_uvicorn_sends_each_whole_response_in_one_call_over_keep_alive(server: int) -> None:
    _CountingTransport.calls.clear()
    with socket.create_connection(("127.0.0.1", server)) as sock:
        pending = bytearray()
        for path in ("/a", "/bb", "/ccc"):
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
            head, body = _read_response(sock, pending)
            assert head.startswith(b"HTTP/1.1 200")
            assert body == path.encode() * 1000
    assert len(_CountingTransport.calls) == 3  # one call per response: head and body together


def test_a_streamed_answer_arrives_whole_and_in_order(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        pending = bytearray()
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\nGET /after HTTP/1.1\r\nHost: test\r\n\r\n")
        head, body = _read_response(sock, pending)
        assert b"transfer-encoding: chunked" in head.lower()
        assert body == b"part 0;part 1;part 2;"
        _, after = _read_response(sock, pending)  # the pipelined request after it, answered after it
        assert after == b"/after" * 1000


def test_a_connection_closed_by_the_server_gets_its_whole_answer_first(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"GET /last HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == b"/last" * 1000

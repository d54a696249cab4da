"""The gateway's client to the internal services (services/gateway/upstreams.py), against a scripted HTTP/1.1
server on loopback or a Unix socket: keep-alive reuse, a connection the service closed while idle, chunked
answers, timeouts, an unreachable service and header values that would split the request. No stack needed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.gateway.upstreams import Upstream

Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """Reads one request at a time (head and Content-Length body) and lets ``answer`` reply to it."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                request = head + (await reader.readexactly(length) if length else b"")
                self.requests.append(request)
                await self.answer(request, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(answer: Answer) -> AsyncIterator[tuple[Server, str]]:
    server = Server(answer)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        listener.close()
        await listener.wait_closed()


def ok(body: bytes, *extra: bytes) -> bytes:
    head = [b"HTTP/1.1 200 OK", b"content-type: application/json", b"content-length: %d" % len(body), *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def reply_ok(_: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(ok(b'{"ok":true}', b"x-kicau-next: 42"))
    await writer.drain()


async def test_request_and_answer_over_one_kept_alive_connection() -> None:
    async with serving(reply_ok) as (server, url):
        upstream = Upstream(url, timeout=5, connections=4)
        token = TokenInfo(account_id=7, client_id="app", scopes=["read", "write"])
        first = await upstream.call("GET", "/internal/timelines/home", params={"limit": 20, "q": "a b"}, token=token)
        second = await upstream.call("POST", "/internal/statuses", json={"status": "hé"},
                                     headers={"Idempotency-Key": "k1"})
        await upstream.aclose()
    assert first.status_code == 200 and first.json() == {"ok": True} and second.status_code == 200
    assert first.headers.get("x-kicau-next") == "42" and first.headers.get("content-type") == "application/json"
    assert server.connections == 1, "the second request reuses the idle connection"
    get, post = server.requests
    assert get.startswith(b"GET /internal/timelines/home?limit=20&q=a+b HTTP/1.1\r\n")
    assert b"\r\nX-Kicau-Account: 7\r\n" in get and b"\r\nX-Kicau-Scopes: read write\r\n" in get
    assert b"\r\nX-Kicau-Client: app\r\n" in get and b"content-length" not in get.lower()
    assert post.startswith(b"POST /internal/statuses HTTP/1.1\r\n")
    assert b"\r\nContent-Type: application/json\r\n" in post and b"\r\nIdempotency-Key: k1\r\n" in post
    assert post.endswith('\r\n\r\n{"status":"hé"}'.encode())


async def test_a_connection_the_service_closed_while_idle_is_not_reused() -> None:
    async def reply_then_close(request: bytes, writer: asyncio.StreamWriter) -> None:
        await reply_ok(request, writer)
        writer.close()  # as uvicorn does when its keep-alive timeout ends

    async with serving(reply_then_close) as (server, url):
        upstream = Upstream(url, timeout=5, connections=4)
        for _ in range(3):
            assert (await upstream.call("GET", "/x")).status_code == 200
            await asyncio.sleep(0.05)
        await upstream.aclose()
    assert server.connections == 3 and len(server.requests) == 3


async def test_a_request_racing_the_services_close_is_sent_again() -> None:
    async def close_without_answering_once(request: bytes, writer: asyncio.StreamWriter) -> None:
        if len(server.requests) == 2:
            writer.close()  # the keep-alive timeout struck as the second request arrived: it was not taken
            return
        await reply_ok(request, writer)

    async with serving(close_without_answering_once) as (server, url):
        upstream = Upstream(url, timeout=5, connections=4)
        assert (await upstream.call("GET", "/a")).status_code == 200
        assert (await upstream.call("GET", "/b")).status_code == 200
        await upstream.aclose()
    assert [r.split(b" ")[1] for r in server.requests] == [b"/a", b"/b", b"/b"] and server.connections == 2


async def test_a_post_broken_off_is_sent_again_only_with_an_idempotency_key() -> None:
    """The service may have taken a POST and died before answering: without a key, sending it again could make
    a second status, so the client gets the 503 and decides; with a key, the second sending is harmless."""
    async def close_on_second_request(request: bytes, writer: asyncio.StreamWriter) -> None:
        if len(server.requests) in (2, 4):
            writer.close()
            return
        await reply_ok(request, writer)

    async with serving(close_on_second_request) as (server, url):
        upstream = Upstream(url, timeout=5, connections=4)
        assert (await upstream.call("POST", "/statuses", json={"n": 1})).status_code == 200
        with pytest.raises(ApiError) as refused:
            await upstream.call("POST", "/statuses", json={"n": 2})
        assert refused.value.status_code == 503
        assert (await upstream.call("POST", "/statuses", json={"n": 3})).status_code == 200
        keyed = await upstream.call("POST", "/statuses", json={"n": 4}, headers={"Idempotency-Key": "k4"})
        assert keyed.status_code == 200
        await upstream.aclose()
    bodies = [r.rsplit(b"\r\n\r\n", 1)[1] for r in server.requests]
    assert bodies == [b'{"n":1}', b'{"n":2}', b'{"n":3}', b'{"n":4}', b'{"n":4}']


async def test_chunked_answer_and_error_status() -> None:
    async def chunked(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"9\r\n{\"error\":\r\n" b"13\r\n\"Record not found\"}\r\n" b"0\r\n\r\n")
        await writer.drain()

    async with serving(chunked) as (server, url):
        upstream = Upstream(url, timeout=5, connections=1)
        answer = await upstream.call("GET", "/missing")
        again = await upstream.call("GET", "/missing")
        await upstream.aclose()
    assert answer.status_code == 404 and answer.json() == {"error": "Record not found"}
    assert again.content == answer.content and server.connections == 1
    with pytest.raises(Exception, match="404"):
        answer.raise_for_status()


async def test_a_header_value_cannot_add_headers_of_its_own() -> None:
    async with serving(reply_ok) as (server, url):
        upstream = Upstream(url, timeout=5, connections=1)
        with pytest.raises(ApiError) as refused:
            await upstream.call("POST", "/internal/statuses", json={},
                                headers={"Idempotency-Key": "k\r\nX-Kicau-Account: 1"})
        await upstream.aclose()
    assert refused.value.status_code == 400 and server.requests == []


async def test_unreachable_and_slow_services_are_a_503() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    with pytest.raises(ApiError) as unreachable:
        await Upstream(f"http://127.0.0.1:{port}", timeout=5, connections=1).call("GET", "/readyz")
    assert unreachable.value.status_code == 503

    async def stall_once(request: bytes, writer: asyncio.StreamWriter) -> None:
        if len(server.requests) == 1:
            await asyncio.sleep(1.0)
        await reply_ok(request, writer)

    async with serving(stall_once) as (server, url):
        upstream = Upstream(url, timeout=0.2, connections=1)
        with pytest.raises(ApiError) as slow:
            await upstream.call("GET", "/slow")
        # The late answer to the first request must not be taken for the answer to the next one.
        assert (await upstream.call("GET", "/next")).status_code == 200
        await upstream.aclose()
    assert slow.value.status_code == 503 and server.connections == 2


async def test_a_request_waiting_for_a_busy_connection_gives_up_in_time() -> None:
    async def stall(request: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(2.0)
        await reply_ok(request, writer)

    loop = asyncio.get_running_loop()
    async with serving(stall) as (_, url):
        upstream = Upstream(url, timeout=0.3, connections=1)
        first = asyncio.create_task(upstream.call("GET", "/first"))
        await asyncio.sleep(0.05)
        started = loop.time()
        with pytest.raises(ApiError) as waited:
            await upstream.call("GET", "/second")  # waits for the one connection, then for its own answer
        assert waited.value.status_code == 503 and loop.time() - started < 1.2
        with pytest.raises(ApiError) as timed_out:
            await first
        assert timed_out.value.status_code == 503
        await upstream.aclose()


async def test_a_request_the_service_is_slow_to_answer_is_never_sent_twice() -> None:
    async def never(request: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5.0)

    loop = asyncio.get_running_loop()
    async with serving(never) as (server, url):
        upstream = Upstream(url, timeout=0.3, connections=2)
        # A reused connection first (the case that is retried when the service closed it unanswered).
        server.answer = reply_ok
        assert (await upstream.call("GET", "/warm")).status_code == 200
        server.answer = never
        started = loop.time()
        with pytest.raises(ApiError) as slow:
            await upstream.call("POST", "/statuses", json={"status": "once"}, headers={"Idempotency-Key": "k1"})
        assert slow.value.status_code == 503 and loop.time() - started < 1.0
        await upstream.aclose()
    assert sum(1 for r in server.requests if r.startswith(b"POST")) == 1


async def test_a_service_on_this_host_is_reached_on_its_unix_socket(tmp_path: Path) -> None:
    server = Server(reply_ok)
    path = tmp_path / "timeline.sock"
    listener = await asyncio.start_unix_server(server.handle, str(path))
    try:
        upstream = Upstream(f"unix://{path}", timeout=5, connections=2)
        answers = [await upstream.call("GET", "/internal/timelines/home", params={"limit": 20}) for _ in range(3)]
        await upstream.aclose()
    finally:
        listener.close()
        await listener.wait_closed()
    assert [a.json() for a in answers] == [{"ok": True}] * 3
    assert server.connections == 1  # kept alive, as over TCP
    assert server.requests[0].startswith(b"GET /internal/timelines/home?limit=20 HTTP/1.1\r\nHost: localhost\r\n")
    with pytest.raises(ApiError) as gone:  # the socket's service is not running
        await Upstream(f"unix://{path}", timeout=5, connections=1).call("GET", "/readyz")
    assert gone.value.status_code == 503


@pytest.mark.parametrize("url", ["unix://host/a.sock", "unix:a.sock", "https://timeline:8082", "timeline:8082"])
def test_an_internal_url_is_http_or_an_absolute_socket_path(url: str) -> None:
    with pytest.raises(ValueError, match="http://host:port or unix:///path"):
        Upstream(url, timeout=5, connections=1)

"""Internal calls as frames on a Unix socket (kicau/internal_rpc.py), served by kicau/serve.py's call listener and
made by the gateway's ``CallUpstream``: the same answers as over HTTP, many calls in flight on one connection,
and every way a connection can fail ends as an error the gateway turns into a 503, never a hang or a wrong
answer."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope

from kicau.hot_routes import Answer, ServiceApp, read_body
from kicau.internal_rpc import (
    FLUSH_AT_FRAMES,
    CallClient,
    CallLostError,
    CallServer,
    CallTimeoutError,
    _Frames,
    frame,
)
from kicau.serve import unix_listener
from kicau.tokens import TokenInfo
from kicau.web import ApiError, install_common
from services.gateway.upstreams import CallUpstream, upstream

released = asyncio.Event()  # lets /slow answer; tests share one event loop (pyproject.toml)
slow_calls: list[int] = []


def service() -> ServiceApp:
    app = ServiceApp(service="rpc-test")
    install_common(app, service="rpc-test")

    async def hot(scope: Scope, receive: Receive) -> Answer:
        account = dict(scope["headers"]).get(b"x-kicau-account", b"-").decode()
        query = scope["query_string"].decode()
        if query == "fail=1":
            raise ApiError(422, "limit must be an integer")
        if query == "crash=1":
            raise RuntimeError("a defect")
        return Answer(b'{"account":"' + account.encode() + b'","query":"' + query.encode() + b'"}',
                      headers=[(b"x-kicau-next", b"42")])

    async def echo(scope: Scope, receive: Receive) -> Answer:
        return Answer(await read_body(receive, 1 << 20), 201, content_type=b"application/octet-stream")

    app.hot_routes.add("GET", "/hot", hot)
    app.hot_routes.add("POST", "/echo", echo)

    @app.post("/ordinary/{number}")
    async def ordinary(number: int, request: Request) -> JSONResponse:
        return JSONResponse({"number": number, "body": (await request.json())["text"]}, status_code=201,
                            headers={"X-Kicau-Prev": "7"})

    @app.get("/slow")
    async def slow() -> JSONResponse:
        slow_calls.append(1)
        await released.wait()
        return JSONResponse({"slow": True})

    @app.get("/unhandled")
    async def unhandled() -> JSONResponse:
        raise RuntimeError("a defect in an ordinary route")

    return app


@contextlib.asynccontextmanager
async def serving(path: Path, app: FastAPI | None = None) -> AsyncIterator[asyncio.AbstractServer]:
    server = await asyncio.get_running_loop().create_unix_server(
        lambda: CallServer(app or service()), sock=unix_listener(str(path)))
    try:
        yield server
    finally:
        server.close()


async def deadline(seconds: float = 5.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_a_hot_route_and_an_ordinary_route_answer_as_over_http(tmp_path: Path) -> None:
    path = tmp_path / "s.call.sock"
    async with serving(path):
        caller = upstream(f"kicau+unix://{path}", timeout=5, connections=4)
        token = TokenInfo(account_id=9, client_id="c", scopes=["read"])
        hot = await caller.call("GET", "/hot", params={"limit": 20, "max_id": 5}, token=token)
        assert (hot.status_code, hot.json()) == (200, {"account": "9", "query": "limit=20&max_id=5"})
        assert hot.headers["x-kicau-next"] == "42" and hot.headers["content-type"] == "application/json"
        ordinary = await caller.call("POST", "/ordinary/3", json={"text": "héllo"})
        assert (ordinary.status_code, ordinary.json()) == (201, {"number": 3, "body": "héllo"})
        assert ordinary.headers["x-kicau-prev"] == "7"
        # Mastodon-style errors, whichever way the service answers them.
        failed = await caller.call("GET", "/hot", params={"fail": 1})
        assert (failed.status_code, failed.json()) == (422, {"error": "limit must be an integer"})
        missing = await caller.call("GET", "/nowhere")
        assert (missing.status_code, missing.json()) == (404, {"error": "Record not found"})
        for crashed in (await caller.call("GET", "/hot", params={"crash": 1}), await caller.call("GET", "/unhandled")):
            assert crashed.status_code == 503 and "error" in crashed.json()
        await caller.aclose()


async def test_calls_in_flight_share_one_connection_and_each_gets_its_own_answer(tmp_path: Path) -> None:
    path = tmp_path / "s.call.sock"
    connections: list[int] = []
    app = service()

    def counted() -> CallServer:
        connections.append(1)
        return CallServer(app)

    server = await asyncio.get_running_loop().create_unix_server(counted, sock=unix_listener(str(path)))
    try:
        client = CallClient(str(path))
        released.clear()
        slow = asyncio.ensure_future(client.call("GET", "/slow", b"", [], b"", await deadline()))
        bodies = [bytes([n % 256]) * (n * 997) for n in range(1, 60)]  # up to ~58 KB, split across reads
        answers = await asyncio.gather(*[
            client.call("POST", "/echo", b"", [], body, await deadline()) for body in bodies])
        assert [content for _, _, content in answers] == bodies
        assert not slow.done()  # answered later than the calls sent after it, on the same connection
        released.set()
        status, _, content = await slow
        assert (status, content) == (200, b'{"slow":true}')
        assert len(connections) == 1
        await client.aclose()
    finally:
        server.close()


async def test_a_call_past_its_deadline_fails_and_its_late_answer_harms_no_other(tmp_path: Path) -> None:
    path = tmp_path / "s.call.sock"
    async with serving(path):
        client = CallClient(str(path))
        released.clear()
        with pytest.raises(CallTimeoutError):
            await client.call("GET", "/slow", b"", [], b"", await deadline(0.2))
        released.set()  # the given-up call's answer now arrives, for an id nobody waits for
        status, _, content = await client.call("POST", "/echo", b"", [], b"next", await deadline())
        assert (status, content) == (201, b"next")
        await client.aclose()


async def test_a_connection_lost_mid_call_fails_the_calls_in_flight_and_the_next_call_reconnects(
        tmp_path: Path) -> None:
    path = tmp_path / "s.call.sock"
    accepted: list[asyncio.StreamWriter] = []

    async def drops_everything(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read(1)
        writer.close()  # takes the call, never answers

    listener = await asyncio.start_unix_server(drops_everything, sock=unix_listener(str(path)))
    client = CallClient(str(path))
    with pytest.raises(CallLostError):
        await client.call("GET", "/hot", b"", [], b"", await deadline())
    listener.close()
    await listener.wait_closed()
    # The service restarted: the next call opens a new connection.
    async with serving(path):
        status, _, _ = await client.call("GET", "/hot", b"", [], b"", await deadline())
        assert status == 200
    await client.aclose()
    assert len(accepted) == 1


async def test_the_gateway_sends_a_lost_call_again_only_when_that_is_safe(tmp_path: Path) -> None:
    path = tmp_path / "s.call.sock"
    calls: list[bytes] = []

    async def every_odd_call_lost(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            envelope_size, body_size = struct.unpack(">II", await reader.readexactly(8))
            envelope = await reader.readexactly(envelope_size)
            await reader.readexactly(body_size)
            calls.append(envelope)
            if len(calls) % 2 == 1:
                writer.close()  # taken and never answered, as by a service that died under it
                return
            writer.write(frame([msgspec.msgpack.decode(envelope)[0], 200, []], b"{}"))
            await writer.drain()

    listener = await asyncio.start_unix_server(every_odd_call_lost, sock=unix_listener(str(path)))
    try:
        caller = CallUpstream(str(path), timeout=5, in_flight=4)
        assert (await caller.call("GET", "/hot")).status_code == 200
        assert len(calls) == 2  # a read: sent again
        assert (await caller.call("POST", "/statuses", json={}, headers={"Idempotency-Key": "k"})).status_code == 200
        assert len(calls) == 4  # a post with an Idempotency-Key: sent again
        with pytest.raises(ApiError) as refused:
            await caller.call("POST", "/statuses", json={})
        assert refused.value.status_code == 503 and len(calls) == 5  # without one: the client decides
        await caller.aclose()
    finally:
        listener.close()


async def test_calls_beyond_the_bound_in_flight_wait_for_a_place(tmp_path: Path) -> None:
    path = tmp_path / "s.call.sock"
    async with serving(path):
        caller = CallUpstream(str(path), timeout=10, in_flight=2)
        released.clear()
        slow_calls.clear()
        calls = [asyncio.ensure_future(caller.call("GET", "/slow")) for _ in range(3)]
        await asyncio.sleep(0.3)
        assert len(slow_calls) == 2  # the third waits in the gateway, not in the service
        released.set()
        assert [answer.status_code for answer in await asyncio.gather(*calls)] == [200, 200, 200]
        assert len(slow_calls) == 3
        await caller.aclose()


async def test_an_unreachable_or_silent_service_is_a_503(tmp_path: Path) -> None:
    with pytest.raises(ApiError) as unreachable:
        await CallUpstream(str(tmp_path / "nobody.call.sock"), timeout=1, in_flight=1).call("GET", "/hot")
    assert unreachable.value.status_code == 503
    path = tmp_path / "silent.call.sock"

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    listener = await asyncio.start_unix_server(silent, sock=unix_listener(str(path)))
    try:
        with pytest.raises(ApiError) as slow:
            await CallUpstream(str(path), timeout=0.3, in_flight=1).call("GET", "/hot")
        assert slow.value.status_code == 503
    finally:
        listener.close()


async def test_a_peer_that_does_not_speak_frames_is_disconnected(tmp_path: Path) -> None:
    path = tmp_path / "s.call.sock"
    async with serving(path):
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(struct.pack(">II", 5, 0) + b"\xc1\xc1\xc1\xc1\xc1")  # not msgpack
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed without an answer
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(struct.pack(">II", 1 << 30, 0))  # a frame no call is
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


@pytest.mark.parametrize("url", ["kicau+unix://host/a.sock", "kicau+unix:a.sock"])
def test_a_call_socket_url_is_an_absolute_path(url: str) -> None:
    with pytest.raises(ValueError, match=r"kicau\+unix:///path"):
        upstream(url, timeout=1, connections=1)


class _Collected(_Frames):
    def __init__(self) -> None:
        super().__init__()
        self.frames: list[tuple[Any, bytes]] = []

    def frame_received(self, envelope: Any, body: bytes) -> None:
        self.frames.append((envelope, body))


@pytest.mark.parametrize("piece", [1, 7, 8, 4096, 1 << 20])
def test_frames_are_cut_alike_however_the_bytes_arrive(piece: int) -> None:
    sent = [([n, "GET", "/p"], bytes([n]) * (n * 1500)) for n in range(12)]
    stream = b"".join(frame(envelope, body) for envelope, body in sent)
    receiver = _Collected()
    for at in range(0, len(stream), piece):
        receiver.data_received(stream[at:at + piece])
    assert receiver.frames == sent


class _Written:
    """A transport that records each write system call's frames."""

    def __init__(self) -> None:
        self.writes: list[list[bytes]] = []

    def writelines(self, chunks: list[bytes]) -> None:
        self.writes.append(list(chunks))


async def test_frames_of_one_turn_leave_together_a_few_at_a_time() -> None:
    # Why a few at a time: a turn answering many calls must not hold its first answers until its last is computed
    # (kicau/internal_rpc.py, FLUSH_AT_FRAMES). Frames still keep their order.
    sender = _Collected()
    transport = _Written()
    sender.connection_made(transport)  # type: ignore[arg-type]
    sent = [frame([n, "GET", "/p"], b"x") for n in range(FLUSH_AT_FRAMES * 2 + 1)]
    for data in sent:
        sender.send(data)
    assert transport.writes == [sent[:FLUSH_AT_FRAMES], sent[FLUSH_AT_FRAMES:-1]]
    await asyncio.sleep(0)  # the end of the turn: what is left leaves
    assert transport.writes[2:] == [sent[-1:]]
    await asyncio.sleep(0)
    assert len(transport.writes) == 3

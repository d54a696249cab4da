"""The shared, auto-pipelined Redis connection (kicau/autopipeline.py) on the real Redis: concurrent requests
each get their own replies over one connection, error replies and cancelled requests leave it in step, a
killed connection is replaced, and the database and client name of the redis-py client are kept. One test
uses a local server that accepts and never answers, to show that a hung Redis fails requests in time."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, ResponseError

from kicau import resp
from kicau.autopipeline import AutoPipeline, Endpoint, for_client

REDIS_PORT = int(os.environ.get("KICAU_REDIS_PORT", "6379"))


def _name() -> str:
    return f"kicau-test-{uuid.uuid4().hex[:10]}"


async def _connections_named(redis: Redis, name: str) -> list[dict[str, str]]:
    return [c for c in await redis.client_list() if c.get("name") == name]


async def test_concurrent_requests_share_one_connection_and_get_their_own_replies() -> None:
    name = _name()
    pipeline = AutoPipeline(Endpoint(port=REDIS_PORT, client_name=name))
    observer = Redis(port=REDIS_PORT)
    prefix = f"kicau:test:autopipeline:{uuid.uuid4().hex}"
    try:
        async def one(i: int) -> list[object]:
            key = f"{prefix}:{i}".encode()
            return await pipeline.execute([
                resp.command(b"SET", key, b"v%d" % i, b"EX", b"60"), resp.command(b"GET", key),
                resp.command(b"STRLEN", key),
            ])

        replies = await asyncio.gather(*(one(i) for i in range(500)))
        assert replies == [[b"OK", b"v%d" % i, len(b"v%d" % i)] for i in range(500)]
        assert len(await _connections_named(observer, name)) == 1
    finally:
        pipeline.close()
        keys = [k async for k in observer.scan_iter(match=f"{prefix}:*")]
        if keys:
            await observer.delete(*keys)
        await observer.aclose()


async def test_an_error_reply_is_raised_and_the_connection_stays_in_step() -> None:
    pipeline = AutoPipeline(Endpoint(port=REDIS_PORT))
    key = f"kicau:test:autopipeline:{uuid.uuid4().hex}".encode()
    try:
        with pytest.raises(ResponseError):
            # INCR of a string that is not a number: Redis answers an error for that command only.
            await pipeline.execute([resp.command(b"SET", key, b"text", b"EX", b"60"), resp.command(b"INCR", key),
                                    resp.command(b"GET", key)])
        assert await pipeline.execute([resp.command(b"GET", key)]) == [b"text"]
    finally:
        await pipeline.execute([resp.command(b"DEL", key)])
        pipeline.close()


async def test_a_cancelled_request_does_not_shift_the_replies_of_the_next() -> None:
    pipeline = AutoPipeline(Endpoint(port=REDIS_PORT))
    key_a, key_b = (f"kicau:test:autopipeline:{uuid.uuid4().hex}".encode() for _ in range(2))
    try:
        await pipeline.execute([resp.command(b"SET", key_a, b"a", b"EX", b"60"),
                                resp.command(b"SET", key_b, b"b", b"EX", b"60")])
        for _ in range(20):
            abandoned = asyncio.create_task(pipeline.execute([resp.command(b"GET", key_a)]))
            await asyncio.sleep(0)  # queued (and about to be written), then given up on
            abandoned.cancel()
            assert await pipeline.execute([resp.command(b"GET", key_b)]) == [b"b"]
    finally:
        await pipeline.execute([resp.command(b"DEL", key_a, key_b)])
        pipeline.close()


async def test_an_empty_request_answers_at_once_and_leaves_the_next_its_replies() -> None:
    """A request of no commands (a page of no hashtags, say) gets no replies and costs nothing; concurrent
    requests keep theirs (until 2026-12-07 it waited at the head of the queue for a reply that never came, took
    the next request's, and wedged the connection until the 5 s watchdog failed every request on it)."""
    pipeline = AutoPipeline(Endpoint(port=REDIS_PORT))
    key = f"kicau:test:autopipeline:{uuid.uuid4().hex}".encode()
    seen: list[list[Any]] = []
    try:
        await pipeline.execute([resp.command(b"SET", key, b"v", b"EX", b"60")])
        replies = await asyncio.wait_for(asyncio.gather(
            pipeline.execute([], seen.append), pipeline.execute([resp.command(b"GET", key)]),
            pipeline.execute([]), pipeline.execute([resp.command(b"STRLEN", key)])), timeout=2)
        assert list(replies) == [[], [b"v"], [], [1]] and seen == [[]]
    finally:
        await pipeline.execute([resp.command(b"DEL", key)])
        pipeline.close()


async def test_a_killed_connection_is_replaced() -> None:
    name = _name()
    pipeline = AutoPipeline(Endpoint(port=REDIS_PORT, client_name=name))
    observer = Redis(port=REDIS_PORT)
    try:
        assert await pipeline.execute([resp.command(b"PING")]) == [b"PONG"]
        [before] = await _connections_named(observer, name)
        assert await observer.client_kill_filter(_id=str(before["id"])) == 1
        # The loss is seen when Redis closes the socket; a request that raced it fails and may be sent again.
        for _ in range(50):
            try:
                assert await pipeline.execute([resp.command(b"PING")]) == [b"PONG"]
                break
            except ConnectionError:
                await asyncio.sleep(0.01)
        [after] = await _connections_named(observer, name)
        assert after["id"] != before["id"]
    finally:
        pipeline.close()
        await observer.aclose()


async def test_push_messages_between_replies_leave_the_replies_in_step() -> None:
    """A tracking pipeline (RESP3, for kicau/tracked_cache.py) gets invalidation pushes in the middle of its
    replies while another client writes the keys it reads: each goes to ``on_push``, every request still gets
    exactly its own replies, ``on_replies`` sees them first, and a lost connection calls ``on_reset``."""
    pushes: list[list[Any]] = []
    resets: list[bool] = []
    seen: list[list[Any]] = []
    name = _name()
    pipeline = AutoPipeline(Endpoint(port=REDIS_PORT, client_name=name), tracking=True,
                            on_push=pushes.append, on_reset=lambda: resets.append(True))
    writer = Redis(port=REDIS_PORT)
    keys = [f"kicau:test:autopipeline:{uuid.uuid4().hex}".encode() for _ in range(40)]
    try:
        for round_ in range(30):
            await writer.mset({key: b"%d:%d" % (round_, i) for i, key in enumerate(keys)})

            async def read(first: int, expected_round: int = round_) -> None:
                part = keys[first:first + 10]
                replies = await pipeline.execute([resp.command(b"GET", key) for key in part],
                                                 on_replies=seen.append)
                assert replies == [b"%d:%d" % (expected_round, first + i) for i in range(10)]
                assert any(first_seen is replies for first_seen in seen)  # handed to on_replies, then returned

            await asyncio.gather(*(read(first) for first in range(0, 40, 10)))
        # Every key was read each round and written again in the next: Redis pushed an invalidation for each.
        invalidated = {key for push in pushes if push[0] == b"invalidate" for key in push[1]}
        assert invalidated == set(keys)
        assert not resets
        [connection] = await _connections_named(writer, name)
        assert connection["resp"] == "3" and "t" in connection["flags"]
        assert await writer.client_kill_filter(_id=str(connection["id"])) == 1
        for _ in range(100):
            if resets:
                break
            await asyncio.sleep(0.01)
        assert resets
    finally:
        await writer.delete(*keys)
        await writer.aclose()
        pipeline.close()


async def test_the_redis_py_clients_database_and_name_are_kept() -> None:
    name = _name()
    client = Redis(port=REDIS_PORT, db=3, client_name=name, socket_timeout=4.0)
    key = f"kicau:test:autopipeline:{uuid.uuid4().hex}"
    try:
        assert for_client(client) is for_client(client)
        await resp.round_trip(client, [resp.command(b"SET", key.encode(), b"in db 3", b"EX", b"60")])
        assert await client.get(key) == b"in db 3"
        assert await Redis(port=REDIS_PORT, db=0).get(key) is None
        assert [c["db"] for c in await _connections_named(client, f"{name}-pipelined")] == ["3"]
    finally:
        await client.delete(key)
        for_client(client).close()
        await client.aclose()


async def test_a_redis_that_never_answers_fails_requests_within_the_timeout() -> None:
    async def accept_and_stay_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(accept_and_stay_silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pipeline = AutoPipeline(Endpoint(port=port, timeout=0.5))
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConnectionError):
            await pipeline.execute([resp.command(b"PING")])
        assert asyncio.get_running_loop().time() - started < 3.0
    finally:
        pipeline.close()
        server.close()
        await server.wait_closed()


async def test_nothing_listening_is_a_connection_error() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(ConnectionError):
        await AutoPipeline(Endpoint(port=port)).execute([resp.command(b"PING")])

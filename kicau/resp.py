"""Hand-packed Redis commands for the hot paths.

redis-py encodes every command argument by argument in Python, which made command packing the fanout's CPU hot
spot. Here a command is built from byte strings whose framing is mostly precomputed. The fanout's ``Sender``
writes a whole run of them on one pooled connection; the read paths' ``round_trip`` sends theirs on the
connection the process shares among concurrent requests (``kicau.autopipeline``). Replies are parsed in bulk:
redis-py reads one reply per awaited call, each under its own timeout context, which cost ~10 µs a reply; a
status from an account with 1,000 followers gets ~1,000 script replies (one per hash-tag bucket of followers),
so ``Sender`` feeds whatever the socket holds to one hiredis reader and takes every complete reply out of it at
once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError, ResponseError

from kicau import autopipeline


def bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


def command(*args: bytes) -> bytes:
    """One RESP command (an array of bulk strings)."""
    # Framed inline, in a list comprehension: a generator and a call per argument cost a third more, and a
    # home read packs some thirty commands.
    return b"*%d\r\n" % len(args) + b"".join([b"$%d\r\n%b\r\n" % (len(a), a) for a in args])


class Sender:
    """Sends packed commands on one connection taken from a client's pool, keeping one run in flight while the
    caller packs the next (Redis works while Python packs). Replies are returned in order; an error reply is
    raised once the run's replies are all read, and a failed connection is dropped, never reused half-read."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._connection: Connection | None = None
        self._in_flight = 0

    async def __aenter__(self) -> Sender:
        pool = self._redis.connection_pool
        self._connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if kind is not None or self._in_flight:
            # Replies may still be on the wire: this connection can never be trusted again.
            await connection.disconnect()
        await self._redis.connection_pool.release(connection)
        if kind is not None and issubclass(kind, ConnectionError | OSError):
            # A broken connection usually means Redis restarted, and then every idle connection in the pool is
            # just as dead, though the pool's check on checkout may not see it yet: close them all, so the next
            # user opens a fresh connection instead of taking the next dead one.
            await self._redis.connection_pool.disconnect(inuse_connections=False)

    async def send(self, chunks: Sequence[bytes], replies: int) -> list[Any]:
        """Write ``chunks`` (``replies`` commands), then read the replies of the run sent before it, if any;
        returns those earlier replies."""
        earlier = await self._collect()
        assert self._connection is not None, "use Sender as an async context manager"
        if chunks:
            await self._connection.send_packed_command(list(chunks), check_health=False)
            self._in_flight = replies
        return earlier

    async def finish(self) -> list[Any]:
        """The replies of the run still in flight."""
        return await self._collect()

    async def _collect(self) -> list[Any]:
        if not self._in_flight:
            return []
        connection = self._connection
        assert connection is not None
        # The connection's own stream. Between taking a connection from the pool and giving it back, this
        # sender is its only user, and every earlier user read all of its replies, so nothing of ours sits in
        # redis-py's parser: the bytes on the stream are exactly the replies of the runs sent here.
        stream: asyncio.StreamReader | None = getattr(connection, "_reader", None)
        if stream is None:
            raise ConnectionError("Redis connection is closed")
        parser = hiredis.Reader()
        replies: list[Any] = []
        wanted = self._in_flight
        async with asyncio.timeout(connection.socket_timeout):
            while len(replies) < wanted:
                data = await stream.read(1 << 16)
                if not data:
                    raise ConnectionError("Redis closed the connection mid-reply")
                parser.feed(data)
                while (reply := parser.gets()) is not False:
                    replies.append(reply)
        self._in_flight = 0
        errors = [r for r in replies if isinstance(r, hiredis.ReplyError)]
        if errors:
            # An error reply (a script that failed): the connection stays in step, the batch is retried.
            raise ResponseError(str(errors[0]))
        return replies


def get(key: str) -> bytes:
    """A packed GET."""
    framed = key.encode()
    return b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(framed), framed)


async def round_trip(redis: Redis, packed: Sequence[bytes], *, attempts: int = 3) -> list[Any]:
    """Send ``packed`` commands and return their replies, on the connection this process shares for them
    (``kicau.autopipeline``: written together with those of concurrent requests, replies parsed in bulk).

    For hot read paths (a page of status and account cards is ~25 GETs): redis-py's pool checkout, per-command
    timeout and per-reply parsing cost more than the rest of a timeline request. ``attempts`` > 1 only for
    commands safe to repeat: when the connection broke (Redis restarted), the whole round trip is sent again on
    a new one."""
    return await round_trip_on(autopipeline.for_client(redis), packed, attempts=attempts)


async def round_trip_on(pipeline: autopipeline.AutoPipeline, packed: Sequence[bytes], *, attempts: int = 3,
                        on_replies: Callable[[list[Any]], None] | None = None) -> list[Any]:
    """``round_trip`` on a given auto-pipeline (``on_replies``: see ``AutoPipeline.execute``)."""
    for attempt in range(attempts):
        try:
            return await pipeline.execute(packed, on_replies)
        except (ConnectionError, OSError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")

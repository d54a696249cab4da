"""One Redis connection shared by every concurrent request of a process, its commands written together.

Why: each of a home page's round trips through redis-py's pool took a connection out and put it back (its
``BlockingConnectionPool`` waits under ``asyncio.wait_for``, which starts a task per checkout), ran the command
under a timeout context of its own, and wrote and read with a system call each. That was about a third of the
timeline service's CPU per page. Here concurrent requests share one connection: what each sends is queued and
all of it goes out in one write at the end of the event loop's turn, and the replies come back in the order
the commands went out (Redis answers a connection's commands in order), so each request takes its replies off
the front. One read, parsed by one hiredis reader, may then answer many requests at once, and Redis itself
spends less per command on a pipelined connection.

Only for commands that answer at once and return one reply each (no blocking pops, no pub/sub, no
MULTI/EXEC), which is all the read paths send. A request that is cancelled or times out leaves its entry in
the queue, so the replies still line up: they are read and dropped. A connection that breaks, or whose oldest
command has waited longer than the socket timeout, fails every request waiting on it with ``ConnectionError``;
the next request connects again (``kicau.resp.round_trip`` retries commands that are safe to repeat).

A pipeline may also carry Redis's invalidation messages for a process-local cache (``kicau.tracked_cache``):
it then speaks RESP3 and turns tracking on as it connects, hands each push message to ``on_push`` as it is
read, between replies, and calls ``on_reset`` whenever a connection is given up, since the server forgets what
a closed connection was tracking.
"""

from __future__ import annotations

import asyncio
import collections
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, ResponseError


@dataclass(slots=True)
class _Waiting:
    future: asyncio.Future[list[Any]]
    expected: int
    sent_at: float
    replies: list[Any] = field(default_factory=list)
    # Called with the replies as soon as the last one is read, before any byte after it: what it records can
    # then never miss a push message that follows the replies on the connection.
    on_replies: Callable[[list[Any]], None] | None = None


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: AutoPipeline) -> None:
        self._owner = owner

    def data_received(self, data: bytes) -> None:
        self._owner._received(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._lost(self, exc)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to connect, as redis-py's pool was told (``from_redis``)."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # a Unix socket instead of TCP
    username: str | None = None
    password: str | None = None
    db: int = 0
    client_name: str | None = None
    connect_timeout: float = 2.0
    timeout: float = 5.0


Push = list[Any]  # a RESP3 push message, e.g. [b"invalidate", [b"key", ...]]


class AutoPipeline:
    def __init__(self, endpoint: Endpoint, *, tracking: bool = False,
                 on_push: Callable[[Push], None] | None = None, on_reset: Callable[[], None] | None = None) -> None:
        """``tracking``: the connection speaks RESP3 with ``CLIENT TRACKING ON``, so Redis sends it an
        invalidation push for every key it read once that key changes (``on_push``)."""
        self._endpoint = endpoint
        self._tracking = tracking
        self._on_push = on_push
        self._on_reset = on_reset
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.Transport | None = None
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._reader = hiredis.Reader()
        self._waiting: collections.deque[_Waiting] = collections.deque()
        self._outbox: list[bytes] = []
        self._flush_scheduled = False
        self._watchdog: asyncio.TimerHandle | None = None

    async def execute(self, packed: Sequence[bytes],
                      on_replies: Callable[[list[Any]], None] | None = None) -> list[Any]:
        """The replies of ``packed`` commands (one reply each), in order. An error reply is raised as
        ``ResponseError`` once all of them are read; a broken connection as ``ConnectionError``.
        ``on_replies`` gets them first, the moment they are read (even if the caller was cancelled since)."""
        if not packed:
            # Nothing to send, so no reply will come: a waiter expecting none would sit at the head of the queue
            # and take the next request's replies as its own, wedging the connection until the watchdog.
            if on_replies is not None:
                on_replies([])
            return []
        if self._transport is None or self._loop is not asyncio.get_running_loop():
            await self._connect()
        replies = await self._send(b"".join(packed), len(packed), on_replies)
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise ResponseError(str(reply))
        return replies

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # Sending ----------------------------------------------------------------------------------------------

    def _send(self, data: bytes, expected: int,
              on_replies: Callable[[list[Any]], None] | None = None) -> asyncio.Future[list[Any]]:
        loop = cast(asyncio.AbstractEventLoop, self._loop)
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._waiting.append(_Waiting(future, expected, time.monotonic(), on_replies=on_replies))
        self._outbox.append(data)
        if not self._flush_scheduled:
            # Everything queued during this turn of the loop goes out in one write.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        outbox, self._outbox = self._outbox, []
        if self._transport is not None and outbox:
            self._transport.write(b"".join(outbox))

    # Receiving --------------------------------------------------------------------------------------------

    def _received(self, protocol: _Protocol, data: bytes) -> None:
        if protocol is not self._protocol:
            return  # a connection already given up on
        reader = self._reader
        reader.feed(data)
        waiting = self._waiting
        while (reply := reader.gets()) is not False:
            if isinstance(reply, hiredis.PushNotification):
                # Read at once, waiting requests or not: an invalidation left in the buffer until the next
                # reply would let a stale copy be served meanwhile.
                if self._on_push is not None:
                    self._on_push(reply)
                continue
            if not waiting:
                self._fail(ConnectionError("Redis sent a reply nobody asked for"))
                return
            head = waiting[0]
            head.replies.append(reply)
            if len(head.replies) == head.expected:
                waiting.popleft()
                if head.on_replies is not None:
                    head.on_replies(head.replies)
                if not head.future.done():  # a cancelled request's replies are read and dropped
                    head.future.set_result(head.replies)

    def _lost(self, protocol: _Protocol, exc: Exception | None) -> None:
        if protocol is not self._protocol:
            return
        self._fail(ConnectionError(f"Redis connection lost: {exc!r}" if exc else "Redis closed the connection"))

    def _fail(self, error: Exception) -> None:
        """Forget the connection; every request still waiting on it fails."""
        transport, self._transport, self._protocol = self._transport, None, None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        waiting, self._waiting = self._waiting, collections.deque()
        self._outbox = []
        self._reader = hiredis.Reader()
        for entry in waiting:
            if not entry.future.done():
                entry.future.set_exception(error)
        if transport is not None:
            transport.abort()
        if self._on_reset is not None:
            self._on_reset()

    def _watch(self) -> None:
        """Give up on a connection whose oldest command has waited longer than the timeout (Redis hung, or the
        network dropped without a reset): its requests fail instead of waiting forever."""
        loop = cast(asyncio.AbstractEventLoop, self._loop)
        if self._waiting and time.monotonic() - self._waiting[0].sent_at > self._endpoint.timeout:
            self._fail(ConnectionError(f"Redis did not answer within {self._endpoint.timeout} s"))
            return
        self._watchdog = loop.call_later(min(1.0, self._endpoint.timeout / 2), self._watch)

    # Connecting -------------------------------------------------------------------------------------------

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # First use, or a new event loop (tests run one per test): nothing of the old one can be reused.
            used_before = self._loop is not None
            self._loop, self._transport, self._protocol, self._connecting = loop, None, None, None
            self._waiting, self._outbox, self._flush_scheduled = collections.deque(), [], False
            self._reader = hiredis.Reader()
            if used_before and self._on_reset is not None:
                self._on_reset()  # the old loop's connection, and what it tracked, are gone
        if self._connecting is None:
            self._connecting = loop.create_future()
            connecting = self._connecting
            try:
                await self._open()
                connecting.set_result(None)
            except BaseException as exc:
                error = exc if isinstance(exc, ConnectionError) else ConnectionError(f"cannot reach Redis: {exc!r}")
                connecting.set_exception(error)
                connecting.exception()  # retrieved here: nobody else may be waiting
                raise error from exc
            finally:
                self._connecting = None
        else:
            await asyncio.shield(self._connecting)

    async def _open(self) -> None:
        endpoint = self._endpoint
        loop = cast(asyncio.AbstractEventLoop, self._loop)
        async with asyncio.timeout(endpoint.connect_timeout):
            if endpoint.path:
                transport, protocol = await loop.create_unix_connection(lambda: _Protocol(self), endpoint.path)
            else:
                transport, protocol = await loop.create_connection(
                    lambda: _Protocol(self), endpoint.host, endpoint.port)
        self._transport, self._protocol = transport, protocol
        self._watchdog = loop.call_later(min(1.0, endpoint.timeout / 2), self._watch)
        handshake: list[bytes] = []
        if endpoint.password is not None:
            credentials = [endpoint.username.encode()] if endpoint.username else []
            handshake.append(_pack((b"AUTH", *credentials, endpoint.password.encode())))
        if endpoint.db:
            handshake.append(_pack((b"SELECT", b"%d" % endpoint.db)))
        if endpoint.client_name:
            handshake.append(_pack((b"CLIENT", b"SETNAME", endpoint.client_name.encode())))
        if self._tracking:
            # In RESP3 the invalidations come on this connection itself, in order with its replies; RESP2
            # would need them redirected to another connection, with no order between the two.
            handshake += [_pack((b"HELLO", b"3")), _pack((b"CLIENT", b"TRACKING", b"ON"))]
        if handshake:
            try:
                async with asyncio.timeout(endpoint.timeout):
                    replies = await self._send(b"".join(handshake), len(handshake))
            except BaseException:
                self._fail(ConnectionError("Redis handshake failed"))
                raise
            errors = [r for r in replies if isinstance(r, hiredis.ReplyError)]
            if errors:
                self._fail(ConnectionError(f"Redis refused the connection: {errors[0]}"))
                raise ConnectionError(f"Redis refused the connection: {errors[0]}")


def _pack(args: tuple[bytes, ...]) -> bytes:
    # kicau.resp has the general packer; it imports this module, so the handshake packs its own few commands.
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


_PIPELINES: weakref.WeakKeyDictionary[Redis, AutoPipeline] = weakref.WeakKeyDictionary()


def endpoint_of(redis: Redis, role: str) -> Endpoint:
    """Where a redis-py client connects (server, credentials, database, timeouts), its name suffixed with
    ``role`` so that ``CLIENT LIST`` tells the connections apart."""
    options: dict[str, Any] = redis.connection_pool.connection_kwargs
    name = options.get("client_name")
    return Endpoint(
        host=str(options.get("host") or "127.0.0.1"),
        port=int(options.get("port") or 6379),
        path=options.get("path"),
        username=options.get("username"),
        password=options.get("password"),
        db=int(options.get("db") or 0),
        client_name=f"{name}-{role}" if name else None,
        connect_timeout=float(options.get("socket_connect_timeout") or 2.0),
        timeout=float(options.get("socket_timeout") or 5.0),
    )


def for_client(redis: Redis) -> AutoPipeline:
    """The auto-pipeline that goes with a redis-py client: same server, credentials, database and timeouts."""
    pipeline = _PIPELINES.get(redis)
    if pipeline is None:
        pipeline = AutoPipeline(endpoint_of(redis, "pipelined"))
        _PIPELINES[redis] = pipeline
    return pipeline

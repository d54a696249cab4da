"""Factories for the engine clients, built once per process in its lifespan or ``main()``.

Cassandra's driver is callback-based; :func:`execute` bridges its futures into asyncio so services await
queries without blocking the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, ResponseFuture, Session
from cassandra.policies import DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy, TokenAwarePolicy
from cassandra.query import PreparedStatement, dict_factory
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from kicau.settings import CommonSettings


def redis_client(settings: CommonSettings, *, name: str, max_connections: int = 64) -> aioredis.Redis:
    """One pooled client per process; bytes in and out because timeline members are packed ids. The name shows
    in CLIENT LIST and MONITOR, so an operator (or a benchmark) can tell which service sent what."""
    # A burst above the pool size waits for a free connection (up to 5 s) instead of failing at once with
    # MaxConnectionsError, as the default pool does: 200 streams opening together made the graph service 503.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=max_connections,
        timeout=5.0,
        client_name=f"kicau-{name}",
        decode_responses=False,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=30,
        # After Redis restarts, every pooled connection fails on its first use: retry such a command on a fresh
        # connection instead of failing the request. Only connection errors: a command that timed out may have run.
        retry=Retry(ExponentialWithJitterBackoff(cap=0.5, base=0.02), 3,
                    supported_errors=(redis.exceptions.ConnectionError,)),
    )
    return aioredis.Redis.from_pool(pool)


# Called with the connection each time redis-py connects a pub/sub connection again.
Reconnected = Callable[[Any], None]


async def subscribe(pubsub: PubSub, *channels: str | bytes, reconnected: Reconnected) -> None:
    """Subscribe, and hear of every later reconnection. With the retries of ``redis_client``, redis-py connects a
    dropped pub/sub connection again and subscribes it again by itself, raising nothing: whatever was published in
    between never arrives, and only ``reconnected`` tells the subscriber to look for what it missed. It must be a
    bound method (redis-py keeps it weakly)."""
    await pubsub.subscribe(*channels)
    if pubsub.connection is not None:
        pubsub.connection.register_connect_callback(reconnected)


async def unsubscribe(pubsub: PubSub, reconnected: Reconnected) -> None:
    """Close what ``subscribe`` opened: the connection goes back to the pool, where its reconnections are no
    longer this subscriber's."""
    if pubsub.connection is not None:
        pubsub.connection.deregister_connect_callback(reconnected)
    await pubsub.aclose()  # type: ignore[no-untyped-call]


def kafka_producer(settings: CommonSettings) -> AIOKafkaProducer:
    # acks=all plus the idempotent producer: a status answered 2xx is on every in-sync replica, and a retry
    # inside the producer never writes it twice.
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=1,
        request_timeout_ms=5000,
        retry_backoff_ms=100,
        metadata_max_age_ms=30000,
    )


def kafka_consumer(settings: CommonSettings, *topics: str, group_id: str, **overrides: Any) -> AIOKafkaConsumer:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "group_id": group_id,
        # Offsets are committed by hand after the Redis writes succeed: at-least-once, made exact by
        # idempotent timeline writes.
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": 500,
        # The broker answers a fetch as soon as one byte arrives, so a long wait costs no latency; a 5 ms wait
        # made an idle fanout send 200 fetches a second (17% of a core, and 12% of Kafka's).
        "fetch_max_wait_ms": 500,
        "session_timeout_ms": 10000,
        "heartbeat_interval_ms": 2000,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


def cassandra_cluster_options(settings: CommonSettings) -> dict[str, Any]:
    """Everything the driver's ``Cluster`` is built with, from settings (kept apart so it can be checked
    without a cluster)."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc or None)),
        consistency_level=ConsistencyLevel.name_to_value[settings.cassandra_read_consistency],
        row_factory=dict_factory,
        request_timeout=5.0,
    )
    options: dict[str, Any] = {
        "contact_points": settings.cassandra_host_list,
        "port": settings.cassandra_port,
        "execution_profiles": {EXEC_PROFILE_DEFAULT: profile},
        "protocol_version": 5,
        "connect_timeout": 5,
        # The driver's default backs off to 10 minutes: after an outage of a minute a service would stay
        # unavailable for up to another minute once Cassandra answers again. Probe every few seconds instead.
        "reconnection_policy": ExponentialReconnectionPolicy(base_delay=0.5, max_delay=5.0, max_attempts=None),
        # The driver leaves Nagle's algorithm on (asyncio, hence aiokafka and redis-py, turn it off). With it on, a
        # request whose frame leaves in more than one send waits for the ACK of the first part, which the server
        # delays up to 40 ms: measured on the bench machine, a grouped write of 15 posts took 48 ms against 4.6 ms
        # with TCP_NODELAY, and of one post 1.6 against 0.8 ms (bench/README.md, "Nagle").
        "sockopts": [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    }
    if settings.cassandra_username:
        options["auth_provider"] = PlainTextAuthProvider(
            username=settings.cassandra_username, password=settings.cassandra_password.get_secret_value()
        )
    return options


def cassandra_session(settings: CommonSettings) -> Session:
    cluster = Cluster(**cassandra_cluster_options(settings))
    session = cluster.connect(settings.cassandra_keyspace)
    return session


def write_consistency(settings: CommonSettings) -> int:
    return int(ConsistencyLevel.name_to_value[settings.cassandra_write_consistency])


async def execute(
    session: Session, statement: PreparedStatement | str, params: Sequence[Any] | None = None,
    *, request_timeout: float | None = None,
) -> list[dict[str, Any]]:
    """Run one statement without blocking the event loop; returns the rows of the first page onwards.
    ``request_timeout`` overrides the session's client-side request timeout."""
    running = _Running(
        asyncio.get_running_loop(),
        session.execute_async(statement, params) if request_timeout is None
        else session.execute_async(statement, params, timeout=request_timeout),
    )
    result = running.result
    try:
        return await result
    finally:
        # A raised error's traceback holds this frame: it must not hold the futures, which hold the error.
        del running, result


class _Running:
    """One statement in flight. The driver calls ``on_page`` and ``on_error`` from its own thread.

    Once it is done, the reference cycles the driver's ResponseFuture is part of are broken, so that freeing it
    needs no garbage collection: its callbacks (these bound methods) hold it, and so does its request timer
    (already cancelled when the result arrived, it calls the future's own method). Left to the collector, the
    ~30 objects of every statement made the post service stand still ~110 ms every second or two under load
    (``kicau_gc_pause_seconds``)."""

    __slots__ = ("future", "loop", "result", "rows")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: ResponseFuture) -> None:
        self.loop = loop
        self.result: asyncio.Future[list[dict[str, Any]]] = loop.create_future()
        self.rows: list[dict[str, Any]] = []
        self.future = future
        future.add_callbacks(self.on_page, self.on_error)

    def on_page(self, page: list[dict[str, Any]]) -> None:
        self.rows.extend(page or ())
        if self.future.has_more_pages:
            self.future.start_fetching_next_page()
            return
        self._release()
        self.loop.call_soon_threadsafe(_settle, self.result, self.rows, None)

    def on_error(self, exc: BaseException) -> None:
        self._release()
        self.loop.call_soon_threadsafe(_settle, self.result, None, exc)

    def _release(self) -> None:
        self.future.clear_callbacks()
        self.future._timer = None  # no public way to drop it; the driver only ever cancels it


def _settle(
    result: asyncio.Future[list[dict[str, Any]]], rows: list[dict[str, Any]] | None, exc: BaseException | None
) -> None:
    if result.done():
        return
    if exc is not None:
        result.set_exception(exc)
    else:
        result.set_result(rows or [])


def close_cassandra(session: Session) -> None:
    session.cluster.shutdown()


@dataclass(frozen=True)
class Engines:
    """The engine connections a service holds for its lifetime."""

    redis: aioredis.Redis
    session: Session
    producer: AIOKafkaProducer | None = None

    def kafka(self) -> AIOKafkaProducer:
        assert self.producer is not None, "opened without a Kafka producer"
        return self.producer


@contextlib.asynccontextmanager
async def engines(settings: CommonSettings, *, name: str, producer: bool = False) -> AsyncIterator[Engines]:
    """Redis, Cassandra and (when asked) a started Kafka producer; all closed on exit, also when one of
    them fails to open."""
    redis = redis_client(settings, name=name)
    session: Session | None = None
    kafka: AIOKafkaProducer | None = None
    try:
        session = cassandra_session(settings)
        if producer:
            kafka = kafka_producer(settings)
            await kafka.start()
        yield Engines(redis=redis, session=session, producer=kafka)
    finally:
        if kafka is not None:
            await kafka.stop()
        await redis.aclose()
        if session is not None:
            close_cassandra(session)


def write_preparer(session: Session, consistency: int) -> Callable[[str], PreparedStatement]:
    """Prepares writes at the configured write consistency (reads keep the session's default level)."""

    def prepare_write(query: str) -> PreparedStatement:
        statement = session.prepare(query)
        statement.consistency_level = consistency
        return statement

    return prepare_write

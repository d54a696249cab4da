"""Section 3: status -> stream delivery latency with many open SSE streams, at several post rates.

``streams`` bench accounts each hold one ``GET /api/v1/streaming/user`` open (raw sockets on one asyncio
loop, read chunk by chunk) and follow every one of a few posting accounts. The posters publish through the
public API on an open-loop schedule (one post every 1/rate s, whatever the answers' latency). Each ``update``
frame is timed on arrival: latency = arrival (wall clock) - the status's ``created_at`` (ms precision, same
machine, so the figure includes up to 1 ms of truncation). The gateway's own histogram
``kicau_stream_delivery_latency_seconds`` (status accepted -> frame written) is read before and after each rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec
from redis.asyncio import Redis

from bench.common import (
    DELIVERY_LISTENERS,
    DELIVERY_POSTERS,
    FANOUT_METRICS,
    GATEWAY,
    GATEWAY_METRICS,
    REDIS_URL,
    Histogram,
    cpu_ticks,
    log,
    percentiles,
    scrape,
    steal_share,
)
from bench.common import Samples as Scraped
from bench.seed import Seeder
from kicau import keys
from loadtests import wsframes

HISTOGRAM = "kicau_stream_delivery_latency_seconds"
PUBLISH_LAG = "kicau_fanout_publish_lag_seconds"
GC_PAUSES = "kicau_gc_pause_seconds"


@dataclass
class ServerSide:
    """What the gateway and the fanout say about one rate: where a late delivery's time went."""

    gateway: Scraped
    fanout: Scraped

    @staticmethod
    def read() -> ServerSide:
        return ServerSide(scrape(GATEWAY_METRICS), scrape(FANOUT_METRICS))

    def since(self, before: ServerSide) -> dict[str, Any]:
        lag = Histogram.read(self.fanout, PUBLISH_LAG).minus(Histogram.read(before.fanout, PUBLISH_LAG))
        out: dict[str, Any] = {
            "fanout_publish_lag_p99_ms": _ms(lag.quantile(0.99)),
            "fanout_publish_lag_max_ms_at_most": _ms(lag.upper_bound_of_largest()),
        }
        for name, now, then in (("gateway", self.gateway, before.gateway), ("fanout", self.fanout, before.fanout)):
            pauses = Histogram.read(now, GC_PAUSES).minus(Histogram.read(then, GC_PAUSES))
            out[f"{name}_gc_pauses"] = int(pauses.count)
            out[f"{name}_gc_pause_max_ms_at_most"] = _ms(pauses.upper_bound_of_largest())
        return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


@dataclass
class DeliveryOptions:
    streams: int = 1000
    # Posts are spread over this many accounts: the gateway allows 300 requests per account per 5 minutes.
    posters: int = 10
    rates: tuple[float, ...] = (2.0, 10.0, 25.0)
    default_rate: float = 10.0
    seconds: float = 15.0
    drain_seconds: float = 5.0
    connect_concurrency: int = 50
    # "sse" (``GET /api/v1/streaming/user``) or "websocket" (``/api/v1/streaming?stream=user``, Mastodon's frames).
    transport: str = "sse"


class _Stamp(msgspec.Struct):
    id: str
    created_at: str


_decode_stamp = msgspec.json.Decoder(_Stamp).decode


class _WsFrame(msgspec.Struct):
    payload: str


_decode_ws_frame = msgspec.json.Decoder(_WsFrame).decode


def _epoch_ms(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000.0


@dataclass
class Samples:
    """(status id, latency ms) of every update frame, shared by all connections."""

    latencies: list[tuple[int, float]] = field(default_factory=list)
    # Status id (as sent in the frame's id line) -> created_at in epoch ms, decoded once per status.
    created: dict[bytes, float] = field(default_factory=dict)
    other_events: dict[str, int] = field(default_factory=dict)
    parse_errors: int = 0


class StreamClient(asyncio.Protocol):
    """One stream on a raw socket: sends ``request()``, reads the answer's head (its status, with a switch of
    protocols counted as the stream opening, like SSE's 200), then hands every byte after it to ``body``."""

    def __init__(self, token: str, samples: Samples) -> None:
        self.token = token
        self.samples = samples
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.headers_done = False
        self.status: int | None = None
        self.opened: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.closed = False

    def request(self) -> bytes:
        raise NotImplementedError

    def body(self, received: float) -> None:
        """Consume what ``self.buffer`` holds of whole frames; ``received`` is when these bytes arrived."""
        raise NotImplementedError

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport
        transport.write(self.request())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        received = time.time() * 1000.0
        self.buffer += data
        if not self.headers_done:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            self.headers_done = True
            code = int(head.split(b" ", 2)[1])
            self.status = 200 if code == 101 else code
            if not self.opened.done():
                self.opened.set_result(self.status)
            self.buffer = rest
        self.body(received)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"stream closed before its headers: {exc}"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class SseClient(StreamClient):
    """One SSE stream, its frames split as bytes arrive (chunk-size lines of the chunked encoding are skipped
    by ``_frame``)."""

    def request(self) -> bytes:
        return (f"GET /api/v1/streaming/user HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.token}\r\n"
                "Accept: text/event-stream\r\n\r\n").encode()

    def body(self, received: float) -> None:
        # The gateway writes all the events of one of its turns in one write, so a read may hold several frames:
        # cut them by position and keep the rest once, instead of copying the remainder after every frame.
        buffer = self.buffer
        start = 0
        end = buffer.find(b"\n\n")
        while end >= 0:
            self._frame(buffer[start:end], received)
            start = end + 2
            end = buffer.find(b"\n\n", start)
        if start:
            self.buffer = buffer[start:]

    def _frame(self, frame: bytes, received: float) -> None:
        # Kept cheap: a thousand streams receive each status at once and their callbacks run one after another
        # on this loop, so time spent here would show up as latency of the streams read later. An update frame
        # is recognised by its head (``id: <status id>`` then ``event: update``; chunk-size lines may precede
        # it) and only the first copy of each status is decoded, for its ``created_at``.
        at = frame.find(b"id: ")
        if at >= 0:
            end = frame.find(b"\n", at)
            if frame.startswith(b"event: update\ndata: ", end + 1):
                status_id = frame[at + 4:end]
                created = self.samples.created.get(status_id)
                if created is None:
                    try:
                        created = _epoch_ms(_decode_stamp(frame[end + 21:]).created_at)
                    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
                        self.samples.parse_errors += 1
                        return
                    self.samples.created[status_id] = created
                self.samples.latencies.append((int(status_id), received - created))
                return
        event = b""
        for line in frame.split(b"\n"):
            line = line.rstrip(b"\r")
            if line.startswith(b"event: "):
                event = line[7:]
        if event:
            name = event.decode(errors="replace")
            self.samples.other_events[name] = self.samples.other_events.get(name, 0) + 1


class WsClient(StreamClient):
    """One WebSocket stream: the upgrade request, then frames split as bytes arrive (loadtests/wsframes.py).
    The server's pings are answered (a client that does not is disconnected after uvicorn's ping timeout)."""

    def request(self) -> bytes:
        return wsframes.upgrade_request("/api/v1/streaming?stream=user", "127.0.0.1", self.token)

    def body(self, received: float) -> None:
        frames, self.buffer = wsframes.split_frames(self.buffer)
        for opcode, final, payload in frames:
            if opcode == wsframes.TEXT and final:
                self._message(payload, received)
            elif opcode == wsframes.PING and self.transport is not None:
                self.transport.write(wsframes.pong(payload))
            elif opcode == wsframes.CLOSE:
                self.close()
            else:
                self.samples.parse_errors += 1  # fragmented or binary messages: the gateway never sends them

    def _message(self, message: bytes, received: float) -> None:
        # As the SSE client: kept cheap, and each status decoded once. The gateway's frame ends with the event id
        # (a Kicau addition to Mastodon's frame), so the id is found without decoding the frame.
        if b'"event":"update"' not in message:
            name = "other"
            with contextlib.suppress(ValueError):
                start = message.index(b'"event":"') + 9
                name = message[start:message.index(b'"', start)].decode(errors="replace")
            self.samples.other_events[name] = self.samples.other_events.get(name, 0) + 1
            return
        at = message.rfind(b'"id":"')
        if at < 0:
            self.samples.parse_errors += 1
            return
        status_id = message[at + 6:message.index(b'"', at + 6)]
        created = self.samples.created.get(status_id)
        if created is None:
            try:
                created = _epoch_ms(_decode_stamp(_decode_ws_frame(message).payload).created_at)
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
                self.samples.parse_errors += 1
                return
            self.samples.created[status_id] = created
        self.samples.latencies.append((int(status_id), received - created))


async def _open_streams(tokens: list[str], samples: Samples, concurrency: int, transport: str,
                        ) -> list[StreamClient]:
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(concurrency)
    clients: list[StreamClient] = []

    async def one(token: str) -> None:
        async with slots:
            client: StreamClient = WsClient(token, samples) if transport == "websocket" else SseClient(token, samples)
            await loop.create_connection(lambda: client, "127.0.0.1", int(GATEWAY.rsplit(":", 1)[1]))
            clients.append(client)
            status = await asyncio.wait_for(client.opened, timeout=30)
            if status != 200:
                raise RuntimeError(f"stream answered HTTP {status}")

    results = await asyncio.gather(*(one(t) for t in tokens), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        log(f"  {len(failures)} streams failed to open, e.g. {failures[0]!r}")
    return clients


class _Posted(msgspec.Struct):
    id: str


_decode_posted = msgspec.json.Decoder(_Posted).decode


class _AnswerReader(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to the gateway, one request at a time; the gateway answers a post
    with a Content-Length body."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.usable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0 or self.answer is None or self.answer.done():
            return
        head = self.buffer[:head_end].lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self.usable = False
            self.answer.set_exception(ConnectionError("an answer without Content-Length"))
            return
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17:line_end if line_end >= 0 else len(head)])
        end = head_end + 4 + length
        if len(self.buffer) < end:
            return
        status = int(head.split(b" ", 2)[1])
        if b"\r\nconnection: close" in head:
            self.usable = False
        body, self.buffer = self.buffer[head_end + 4:end], self.buffer[end:]
        self.answer.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError(f"the gateway closed the connection: {exc}"))


class Poster:
    """Posts through the public API on raw keep-alive connections.

    Why not httpx: at 25 posts/s its connection pool cost this process ~40% of its time (py-spy: finding a
    connection, checking every pooled one for expiry, a failed import looked up again on every request), on
    the loop that also reads the thousand streams, so the client's own work showed up as delivery latency."""

    def __init__(self, base_url: str = GATEWAY, timeout: float = 30.0) -> None:
        url = urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.timeout = timeout
        self._idle: list[_AnswerReader] = []

    async def post(self, token: str, text: str) -> tuple[int, bytes]:
        """(status code, body) of ``POST /api/v1/statuses``; raises ConnectionError or TimeoutError."""
        request = self._request(token, text)
        reader = self._reusable()
        if reader is not None:
            try:
                return await self._exchange(reader, request)
            except ConnectionError:
                # The server closed the idle connection just as the request left (its keep-alive timeout is 5 s,
                # rates are further apart): it never read the request, so it goes again on a new connection.
                if reader.buffer:
                    raise
        _, fresh = await asyncio.get_running_loop().create_connection(_AnswerReader, self.host, self.port)
        return await self._exchange(fresh, request)

    def _request(self, token: str, text: str) -> bytes:
        body = msgspec.json.encode({"status": text})
        return (b"POST /api/v1/statuses HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (self.host.encode(), token.encode(), len(body), body))

    def _reusable(self) -> _AnswerReader | None:
        """An idle connection the server has not closed meanwhile, if any."""
        while self._idle:
            reader = self._idle.pop()
            if reader.usable and reader.transport is not None and not reader.transport.is_closing():
                return reader
        return None

    async def _exchange(self, reader: _AnswerReader, request: bytes) -> tuple[int, bytes]:
        assert reader.transport is not None
        reader.answer = asyncio.get_running_loop().create_future()
        reader.transport.write(request)
        try:
            async with asyncio.timeout(self.timeout):
                answer = await reader.answer
        except BaseException:
            reader.transport.close()
            raise
        if reader.usable:
            self._idle.append(reader)
        else:
            reader.transport.close()
        return answer

    def close(self) -> None:
        for reader in self._idle:
            if reader.transport is not None:
                reader.transport.close()
        self._idle.clear()


async def _post_schedule(client: Poster, tokens: list[str], rate: float, seconds: float,
                         ) -> tuple[set[int], list[float], int]:
    """Open loop: post number i leaves at start + i/rate, whatever earlier answers took."""
    count = max(1, round(rate * seconds))
    ids: set[int] = set()
    answer_ms: list[float] = []
    failed = 0

    async def post(i: int) -> None:
        nonlocal failed
        sent = time.perf_counter()
        try:
            status, body = await client.post(tokens[i % len(tokens)], f"bench delivery {i} at {time.time()}")
            if status != 200:
                raise ConnectionError(f"the gateway answered {status}")
            ids.add(int(_decode_posted(body).id))
            answer_ms.append((time.perf_counter() - sent) * 1000)
        except (OSError, TimeoutError, msgspec.DecodeError, ValueError):
            failed += 1

    start = time.perf_counter()
    tasks = []
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(i)))
    await asyncio.gather(*tasks)
    return ids, answer_ms, failed


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


async def run(opts: DeliveryOptions) -> dict[str, Any]:
    posters = list(range(DELIVERY_POSTERS, DELIVERY_POSTERS + opts.posters))
    listeners = list(range(DELIVERY_LISTENERS, DELIVERY_LISTENERS + opts.streams))
    log(f"delivery: seeding {opts.streams} listening accounts following {opts.posters} posters")
    seeder = Seeder()
    try:
        poster_tokens = seeder.accounts({p: f"bench_dl_poster_{p - DELIVERY_POSTERS}" for p in posters})
        listener_tokens = seeder.accounts({a: f"bench_dl_{a - DELIVERY_LISTENERS}" for a in listeners})
        for poster in posters:
            seeder.follow(listeners, poster)
            seeder.set_counts(poster, followers=len(listeners))
        seeder.set_following_counts(listeners, len(posters))
    finally:
        seeder.close()

    redis = Redis.from_url(REDIS_URL)
    samples = Samples()
    clients: list[StreamClient] = []
    per_rate: list[dict[str, Any]] = []
    try:
        pipe = redis.pipeline(transaction=False)
        for account_id in [*posters, *listeners]:
            pipe.unlink(keys.home_feed(account_id))
            pipe.rpush(keys.home_feed(account_id), keys.FEED_SENTINEL)
            pipe.expire(keys.home_feed(account_id), 3600)  # gone by itself if the run is interrupted
        await pipe.execute()

        kind = "WebSocket" if opts.transport == "websocket" else "SSE"
        log(f"delivery: opening {opts.streams} {kind} streams")
        opened_at = time.perf_counter()
        clients = await _open_streams([listener_tokens[a] for a in listeners], samples, opts.connect_concurrency,
                                      opts.transport)
        live = sum(1 for c in clients if c.status == 200 and not c.closed)
        log(f"  {live} streams open in {time.perf_counter() - opened_at:.1f}s")
        await asyncio.sleep(2.0)  # presence reaches the fanout's mirror through pub/sub

        client = Poster()
        try:
            # Warm-up: one post from each poster must reach every stream before measuring, so the figures are
            # of the steady state (connections open, caches holding the posters' cards and follower lists).
            tokens = [poster_tokens[p] for p in posters]
            warm_ids, _, _ = await _post_schedule(client, tokens, 5.0, len(tokens) / 5.0)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                got = sum(1 for sid, _ in samples.latencies if sid in warm_ids)
                if got >= live * len(warm_ids):
                    break
                await asyncio.sleep(0.1)
            log(f"  {len(warm_ids)} warm-up posts reached {got}/{live * len(warm_ids)} stream deliveries")

            for rate in opts.rates:
                log(f"delivery: {rate:g} posts/s for {opts.seconds:g}s to {live} streams")
                # The client's own garbage collections (it keeps a sample per delivery) paused every stream's
                # reading for up to ~100 ms, which is not latency of the system measured: collect between
                # rates, never during one.
                gc.collect()
                gc.disable()
                samples.latencies.clear()
                before = Histogram.read(scrape(GATEWAY_METRICS), HISTOGRAM)
                sides_before = ServerSide.read()
                ticks_before = cpu_ticks()
                started = time.perf_counter()
                ids, answer_ms, failed = await _post_schedule(client, tokens, rate, opts.seconds)
                posting_s = time.perf_counter() - started
                expected = len(ids) * live
                deadline = time.monotonic() + opts.drain_seconds
                while time.monotonic() < deadline and len(samples.latencies) < expected:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.5)
                stolen = steal_share(ticks_before, cpu_ticks())
                server = Histogram.read(scrape(GATEWAY_METRICS), HISTOGRAM).minus(before)
                sides = ServerSide.read().since(sides_before)
                latencies = [ms for sid, ms in samples.latencies if sid in ids]
                # Per status: first and last stream to get it. A slow first delivery means the time went before
                # the gateway (post path, Kafka, fanout); a wide spread, in writing to / reading from the streams.
                spans: dict[int, list[float]] = {}
                for sid, ms in samples.latencies:
                    if sid in ids:
                        span = spans.setdefault(sid, [ms, ms])
                        span[0], span[1] = min(span[0], ms), max(span[1], ms)
                slowest = sorted(spans.values(), key=lambda span: span[1], reverse=True)[:3]
                client_p = percentiles(latencies)
                answer_p = percentiles(answer_ms)
                row = {
                    "posts_per_s": rate,
                    "posts": len(ids),
                    "posts_failed": failed,
                    "achieved_posts_per_s": round(len(ids) / posting_s, 2) if posting_s else None,
                    "streams": live,
                    "deliveries": len(latencies),
                    "expected_deliveries": expected,
                    "p50_ms": _round(client_p["p50"]),
                    "p95_ms": _round(client_p["p95"]),
                    "p99_ms": _round(client_p["p99"]),
                    "max_ms": _round(max(latencies) if latencies else None),
                    "server_p50_ms": _round(None if (q := server.quantile(0.5)) is None else q * 1000),
                    "server_p95_ms": _round(None if (q := server.quantile(0.95)) is None else q * 1000),
                    "server_p99_ms": _round(None if (q := server.quantile(0.99)) is None else q * 1000),
                    "server_count": int(server.count),
                    "post_answer_p50_ms": _round(answer_p["p50"]),
                    "post_answer_p99_ms": _round(answer_p["p99"]),
                    "slowest_posts_first_last_ms": [[_round(a), _round(b)] for a, b in slowest],
                    "machine_steal_share": stolen,
                    **sides,
                }
                gc.enable()
                per_rate.append(row)
                log(f"  client p50/p95/p99 {row['p50_ms']}/{row['p95_ms']}/{row['p99_ms']} ms, "
                    f"server p50/p99 {row['server_p50_ms']}/{row['server_p99_ms']} ms, "
                    f"{row['deliveries']:,}/{expected:,} delivered, post answer p50 {row['post_answer_p50_ms']} ms; "
                    f"slowest posts (first/last stream ms) {row['slowest_posts_first_last_ms']}; "
                    f"fanout publish lag p99 {row['fanout_publish_lag_p99_ms']} ms "
                    f"(max <= {row['fanout_publish_lag_max_ms_at_most']}); GC pauses: gateway "
                    f"{row['gateway_gc_pauses']} (max <= {row['gateway_gc_pause_max_ms_at_most']} ms), fanout "
                    f"{row['fanout_gc_pauses']} (max <= {row['fanout_gc_pause_max_ms_at_most']} ms); "
                    f"machine steal {'unknown' if stolen is None else f'{stolen:.0%}'}")
        finally:
            client.close()
    finally:
        for c in clients:
            c.close()
        await asyncio.sleep(0.5)
        pipe = redis.pipeline(transaction=False)
        for account_id in [*posters, *listeners]:
            pipe.unlink(keys.home_feed(account_id))
        with contextlib.suppress(Exception):
            await pipe.execute()
        await redis.aclose()

    default = next((r for r in per_rate if r["posts_per_s"] == opts.default_rate), per_rate[0] if per_rate else {})
    return {
        "transport": opts.transport,
        "streams": default.get("streams"),
        "posts_per_s": default.get("posts_per_s"),
        "p50_ms": default.get("p50_ms"),
        "p95_ms": default.get("p95_ms"),
        "p99_ms": default.get("p99_ms"),
        "server_p99_ms": default.get("server_p99_ms"),
        "other_events": samples.other_events,
        "parse_errors": samples.parse_errors,
        "rates": per_rate,
    }


async def run_both(opts: DeliveryOptions) -> dict[str, Any]:
    """The section as ``make bench`` runs it: every rate over SSE (the figures reported), then the default rate
    once more with the listeners on WebSocket, under ``websocket``."""
    result = await run(opts)
    over_websocket = await run(replace(opts, transport="websocket", rates=(opts.default_rate,)))
    result["websocket"] = {key: over_websocket.get(key) for key in (
        "streams", "posts_per_s", "p50_ms", "p95_ms", "p99_ms", "server_p99_ms", "parse_errors", "rates")}
    return result

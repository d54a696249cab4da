"""Prometheus helpers: one request histogram per service, labelled by route template (never by id)."""

from __future__ import annotations

import bisect
import gc
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

S = TypeVar("S")


class _LabelSets(Generic[S]):
    """The cheap collectors' series, one a label set, made on first use (``labels``), as prometheus_client's
    labelled metrics keep theirs."""

    def __init__(self, name: str, labelnames: Sequence[str]) -> None:
        self._name = name
        self._labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], S] = {}
        self._lock = threading.Lock()  # /metrics may be collected on another thread

    def _new_series(self) -> S:
        raise NotImplementedError

    def labels(self, *values: str) -> S:
        """The series of one label set (made on first use, then the same one)."""
        if len(values) != len(self._labelnames):
            raise ValueError(f"{self._name} takes labels {self._labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            with self._lock:
                child = self._children.setdefault(values, self._new_series())
        return child

    def _series(self) -> list[tuple[tuple[str, ...], S]]:
        with self._lock:
            return list(self._children.items())


class CheapHistogram(_LabelSets["CheapHistogram"]):
    """A histogram whose ``observe`` costs a bisect and an increment under a lock; with ``labelnames``, a family of
    them, one a label set (``labels``), as prometheus_client's labelled metrics.

    For values observed on every request or delivery: prometheus_client's ``Histogram.observe`` walks its bounds in
    Python and increments through value objects, ~0.7-2.5 µs in all, which a gateway writing 1,000 streams 25 times
    a second paid 25,000 times a second (~10% of its time, py-spy), and every service pays once a request. Exposed
    exactly as a Histogram is (``_bucket`` cumulative with ``+Inf``, ``_count``, ``_sum``)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float],
                 registry: CollectorRegistry | None = REGISTRY, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, labelnames)
        self._documentation = documentation
        self._bounds = sorted(float(b) for b in buckets)
        # As prometheus_client writes ``le`` (the function has no annotations).
        self._labels: list[str] = [floatToGoString(b) for b in self._bounds]  # type: ignore[no-untyped-call]
        # counts[i]: values in (bounds[i-1], bounds[i]]; the last slot is above every bound.
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0
        if registry is not None:
            registry.register(self)

    def _new_series(self) -> CheapHistogram:
        return CheapHistogram(self._name, self._documentation, self._bounds, registry=None)

    def observe(self, value: float) -> None:
        slot = bisect.bisect_left(self._bounds, value)
        with self._lock:
            self._counts[slot] += 1
            self._sum += value

    def observe_many(self, value: float, count: int) -> None:
        """``count`` observations of the same ``value``, for the price of one."""
        slot = bisect.bisect_left(self._bounds, value)
        with self._lock:
            self._counts[slot] += count
            self._sum += value * count

    def _cumulative(self) -> tuple[list[tuple[str, float]], float]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for label, count in zip([*self._labels, "+Inf"], counts, strict=True):
            running += count
            cumulative.append((label, float(running)))
        return cumulative, total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        if not self._labelnames:
            buckets, total = self._cumulative()
            yield HistogramMetricFamily(self._name, self._documentation, buckets=buckets, sum_value=total)
            return
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for values, child in self._series():
            buckets, total = child._cumulative()
            family.add_metric(list(values), buckets, total)
        yield family


class CheapCounter(_LabelSets["CountedSeries"]):
    """A labelled counter whose series count with an integer add under a lock, where prometheus_client's
    ``Counter.inc`` checks its arguments and goes through a value object (~0.2 µs against ~0.4, ``timeit``): for
    what is counted several times on every request (the request itself, the process-local cache's reads). Exposed
    exactly as a Counter (``_total``, and ``_created`` when the series was first used)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry | None = REGISTRY) -> None:
        super().__init__(name.removesuffix("_total"), labelnames)
        self._documentation = documentation
        if registry is not None:
            registry.register(self)

    def _new_series(self) -> CountedSeries:
        return CountedSeries()

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for values, child in self._series():
            family.add_metric(list(values), float(child.value), created=child.created)
        yield family


class CountedSeries:
    """One series of a ``CheapCounter``."""

    __slots__ = ("_lock", "created", "value")

    def __init__(self) -> None:
        self.value = 0
        self.created = time.time()
        self._lock = threading.Lock()  # a series may be counted from more than one thread

    def inc(self, amount: int = 1) -> None:
        with self._lock:
            self.value += amount


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = CheapCounter(
    "kicau_http_requests_total", "HTTP requests answered", ["service", "method", "route", "status"]
)
HTTP_LATENCY = CheapHistogram(
    "kicau_http_request_duration_seconds",
    "Time to answer an HTTP request (streams: time to first byte)",
    LATENCY_BUCKETS,
    labelnames=["service", "method", "route"],
)
STATUSES_CREATED = Counter("kicau_statuses_created_total", "Statuses accepted (2xx) by the post service")
STATUSES_DELETED = Counter("kicau_statuses_deleted_total", "Statuses deleted by their author")
STATUSES_EDITED = Counter("kicau_statuses_edited_total", "Status edits accepted (a new version kept)")
# Where a created status's time goes in the post service, stage by stage (awaits included: group-commit rounds
# and the producer's batching are waits, not work). Stages: card, status_writes, publish, caches.
POST_STAGE_SECONDS = Histogram(
    "kicau_post_stage_duration_seconds", "Time a status creation spends in each stage", ["stage"],
    buckets=LATENCY_BUCKETS,
)
FANOUT_ENTRIES = Counter("kicau_fanout_timeline_entries_total", "Home-timeline entries written by the fanout")
FANOUT_EVENTS = Counter("kicau_fanout_events_total", "Events processed by the fanout", ["type"])
FANOUT_FOLLOWER_LISTS = Counter(
    "kicau_fanout_follower_lists_total", "Follower lists the fanout needed, by where they came from", ["source"]
)
# The Cassandra reads of the follower lists a batch lacked (all of them at once, from the first sent to the last
# answered): a cold list of a large author is read page by page before its first timeline is written.
FANOUT_FOLLOWER_READ_SECONDS = Histogram(
    "kicau_fanout_follower_read_duration_seconds", "Time to read a batch's missing follower lists from Cassandra",
    buckets=LATENCY_BUCKETS,
)
FANOUT_FOLLOWERS_READ = Counter(
    "kicau_fanout_followers_read_total", "Follower ids read from Cassandra (lists not held in memory)"
)
# Batches taken late on purpose under a busy stream (services/fanout/worker.py, BatchPacer), and the time waited.
FANOUT_CONSUMER_RENEWALS = Counter(
    "kicau_fanout_consumer_renewals_total",
    "Fanout consumers replaced by a new group member, by why: commits failing, or records waiting unfetched",
    ["reason"])
FANOUT_LINGERS = Counter("kicau_fanout_lingers_total", "Batches the fanout waited for under a busy stream")
FANOUT_LINGER_SECONDS = Counter("kicau_fanout_linger_seconds_total", "Time the fanout waited before batches")
FANOUT_BATCH_SECONDS = Histogram(
    "kicau_fanout_batch_duration_seconds", "Time to apply one consumed batch", buckets=LATENCY_BUCKETS
)
# Accepted (the event's occurred_at) -> published to the gateways: the fanout's share of stream delivery latency,
# beside the gateway's kicau_stream_delivery_latency_seconds (accepted -> frame written).
FANOUT_PUBLISH_LAG_SECONDS = Histogram(
    "kicau_fanout_publish_lag_seconds", "Status accepted to stream delivery published by the fanout",
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "kicau_fanout_consumer_lag", "Messages behind the end of each assigned partition", ["topic", "partition"]
)
# Web push (services/push/): each push's outcome (delivered; gone: the endpoint said 404 or 410 and the subscription
# was removed; refused: another 4xx; failed: 5xx, 429 or no answer after the retries; unsafe: the endpoint's host
# resolved to a private address), the notices not pushed by why (alert off, policy, already pushed), and the time
# from the cause's acceptance to the endpoint's answer.
PUSH_DELIVERIES = Counter("kicau_push_deliveries_total", "Web pushes sent, by outcome", ["outcome"])
IP_BLOCK_REFUSALS = Counter("kicau_ip_block_refusals_total",
                            "Requests an IP block refused (kicau/ip_blocks.py), by the block's severity", ["severity"])
PUSH_SKIPPED = Counter("kicau_push_notices_skipped_total", "Notices a subscription did not get, by reason",
                       ["reason"])
# Pushes that failed kept for their next round (``kept``), those whose push service was still given up on kept for
# the same round again (``deferred``: no attempt made), and those given up after the last round
# (services/push/later.py).
PUSH_LATER = Counter("kicau_push_later_total", "Failed pushes kept for a later round (kept, deferred), or given up "
                     "after the last (given_up)", ["event"])
PUSH_LATER_WAITING = Gauge("kicau_push_later_waiting", "Pushes kept for a later round, not yet tried")
PUSH_LATENCY = Histogram(
    "kicau_push_delivery_latency_seconds", "Notification's cause accepted to its push accepted by the endpoint",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
# A sign-up, a report or a warning kept but not published for its notifications (services/graph/service.py), by its
# event's kind (account.registered, report.filed, account.warned).
MODERATION_NOTICES_UNSENT = Counter(
    "kicau_moderation_notices_unsent_total",
    "Sign-ups and reports the staff, and warnings the accounts, were not told of (their event not published)",
    ["kind"])
AUDIT_LOG_UNWRITTEN = Counter(
    "kicau_audit_log_unwritten_total",
    "Staff actions done whose audit log entry could not be written (kicau/audit_log.py)")
LINK_PREVIEWS = Counter(
    "kicau_link_previews_total", "Statuses' link previews looked for, by outcome (card: shown; none: the page makes "
    "none or could not be fetched; stale: the status no longer shows the address)", ["outcome"])
LINK_PREVIEW_FETCH = Histogram(
    "kicau_link_preview_fetch_seconds", "Fetching a page for its preview card",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
PUSH_CONSUMER_LAG = Gauge(
    "kicau_push_consumer_lag", "Notices behind the end of each assigned partition", ["topic", "partition"]
)
# Writes that left together in one batch (kicau/write_groups.py), by statement: 1 while Cassandra keeps up.
CASSANDRA_WRITE_GROUP_SIZE = Histogram(
    "kicau_cassandra_write_group_size", "Writes of one statement sent to Cassandra as one batch", ["statement"],
    buckets=(1, 2, 3, 4, 6, 8, 10, 16, 32),
)
# Scheduled statuses the post services took up when due (services/post/scheduled.py): posted, or dropped as no
# longer postable (a reply whose parent was deleted).
SCHEDULED_TAKEN_UP = Counter(
    "kicau_scheduled_statuses_due_total", "Scheduled statuses taken up when due, by outcome", ["outcome"]
)
TIMELINE_REBUILDS = Counter("kicau_timeline_rebuilds_total", "Timelines rebuilt from Cassandra")
TIMELINE_REBUILDS_RESTARTED = Counter(
    "kicau_timeline_rebuilds_restarted_total",
    "Rebuilds that found their pending timeline dropped by a change while they read Cassandra, and read again")
# Copies of Redis values a process keeps, invalidated by Redis (kicau/tracked_cache.py).
LOCAL_CACHE_READS = CheapCounter(
    "kicau_local_cache_reads_total", "Values asked of the process-local cache, by whether a copy was held",
    ["result"],
)
LOCAL_CACHE_INVALIDATIONS = Counter(
    "kicau_local_cache_invalidations_total", "Keys Redis reported changed to the process-local cache"
)
LOCAL_CACHE_FLUSHES = Counter(
    "kicau_local_cache_flushes_total", "Times the process-local cache dropped every copy (connection lost, flush)"
)
# A pub/sub channel connected again after a drop (kicau/clients.py ``subscribe``): whatever was published meanwhile
# was missed, and the subscriber read again what it could. Frequent ones point at Redis or the network.
PUBSUB_RECONNECTIONS = Counter(
    "kicau_pubsub_reconnections_total", "Pub/sub channels connected again after a drop, by subscriber", ["subscriber"]
)
ACCOUNT_NEWEST_PAGES = Counter(
    "kicau_account_newest_pages_total",
    "Newest pages of an account's statuses the timeline served, by where their ids came from", ["source"],
)
OPEN_STREAMS = Gauge("kicau_streams_open", "Streaming connections open on this gateway", ["transport"])
STREAM_DELIVERIES_REPEATED = Counter(
    "kicau_stream_deliveries_repeated_total",
    "Stream deliveries a gateway dropped as already dispatched (the fanout replaying after a crash or retry)",
)
STREAM_GAP_READS = Counter(
    "kicau_stream_gap_reads_total",
    "Reads of an account's home timeline (kind=statuses) or notifications a gateway made after losing its channel, "
    "for what its streams missed, by result (filled; short: it did not reach back far enough, or Redis had lost the "
    "timeline; failed)",
    ["kind", "result"],
)
STREAM_GAP_EVENTS = Counter(
    "kicau_stream_gap_events_total",
    "Statuses (update) and notifications sent again on streams after their gateway's channel was lost, one per "
    "stream sent to",
    ["event"],
)


DELIVERY_LATENCY = CheapHistogram(
    "kicau_stream_delivery_latency_seconds",
    "Status accepted to event written on a stream",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0),
)


# Every process pauses for its garbage collector; a full collection over a gateway holding thousands of open
# streams can stall every one of them at once. Timed here because prometheus_client's own GC collector counts
# collections but not how long they took.
GC_PAUSE_SECONDS = Histogram(
    "kicau_gc_pause_seconds", "Time the process stood still in one garbage collection", ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
_gc_started: list[float] = []


def _time_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[:] = [time.perf_counter()]
    elif _gc_started:
        GC_PAUSE_SECONDS.labels(str(info["generation"])).observe(time.perf_counter() - _gc_started.pop())


def time_garbage_collections() -> None:
    """Record every collection's pause in ``kicau_gc_pause_seconds`` (idempotent)."""
    if _time_gc not in gc.callbacks:
        gc.callbacks.append(_time_gc)


def metrics_response(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware) so streaming responses pass through untouched and cheaply."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500
        recorded = False
        method = scope["method"]

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code, recorded
            if message["type"] == "http.response.start":
                status_code = message["status"]
                if not recorded:
                    recorded = True
                    route = _route_template(scope)
                    HTTP_LATENCY.labels(self.service, method, route).observe(time.perf_counter() - started)
                    HTTP_REQUESTS.labels(self.service, method, route, str(status_code)).inc()
            await send(message)

        await self.app(scope, receive, send_wrapper)


def _route_template(scope: Scope) -> str:
    # By the time the answer starts, the router has left the route it chose in the scope: checking that one is
    # a single match, where walking the application's routes costs one per route (the gateway has dozens).
    chosen = scope.get("route")
    if chosen is not None:
        match, _ = chosen.matches(scope)
        return str(getattr(chosen, "path", "unmatched")) if match == Match.FULL else "unmatched"
    app = scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", []):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"

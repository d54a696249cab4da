"""What the fault tests share: finding and signalling the stack's own processes, restarting them with
`python -m stack up`, bursts of posts through the public API, paging timelines, and Kafka consumer lag.

Every destructive step is guarded: a process is only signalled when its pid file lies under *this*
checkout's ``.stack/`` and it is the process listening on the port the tests were pointed at, so a fault
test can never hit a stack that belongs to another checkout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from kicau import keys
from kicau.feeds import status_of
from stack import config, engines, procs, services
from tests.conftest import User

ROOT = Path(__file__).resolve().parents[2]
HOST = config.HOST

# Figures each test reports (printed in the terminal summary by tests/faults/conftest.py).
FIGURES: list[str] = []


def figure(line: str) -> None:
    FIGURES.append(line)
    print(f"\n[fault figure] {line}", flush=True)


# --- the stack's processes ------------------------------------------------------------------------------


def service_env() -> dict[str, str]:
    """The environment the stack gives its services (engine endpoints derived from the configured ports)."""
    return services.service_env()


def _ours(port: int, pid: int) -> bool:
    owner = procs.port_owner(port)
    return owner is not None and procs.owned_by(owner.pid, pid)


def _owned_pid(what: str, port: int, pid: int | None) -> int:
    """``pid`` if it is this checkout's process listening on ``port``. A stack this checkout did not start is
    never harmed: the test fails before injecting anything (`make test` always starts its own, so this only
    stops a misuse)."""
    if config.ROOT != ROOT:
        pytest.fail(f"refusing to inject faults: the stack package comes from {config.ROOT}, "
                    f"not from this checkout ({ROOT})")
    if pid is None or not _ours(port, pid):
        pytest.fail(f"refusing to inject faults: {what} on port {port} was not started from {ROOT} "
                    "(`python -m stack up` there)")
    return pid


def engine_pid(name: str) -> int:
    engine = engines.by_name(name)
    assert engine is not None, name
    return _owned_pid(name, engine.port, engine.pid())


def service_pid(name: str) -> int:
    service = services.by_name(name)
    assert service is not None, name
    return _owned_pid(f"service {name}", service.port, service.pid())


def service_port(name: str) -> int:
    service = services.by_name(name)
    assert service is not None, name
    return service.port


def engine_port(name: str) -> int:
    engine = engines.by_name(name)
    assert engine is not None, name
    return engine.port


def send(pid: int, sig: signal.Signals) -> None:
    os.kill(pid, sig)


def wait_dead(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while procs.is_alive(pid):
        procs.reap(pid)
        if time.monotonic() > deadline:
            raise AssertionError(f"pid {pid} still alive {timeout:.0f}s after the signal")
        time.sleep(0.05)


def stack_up(timeout: float = 300.0) -> float:
    """`python -m stack up`: restarts whatever is missing and waits until every engine and service is ready."""
    started = time.monotonic()
    env = {**os.environ, "KICAU_SERVICE_TIMEOUT": os.environ.get("KICAU_SERVICE_TIMEOUT", "150")}
    proc = subprocess.run(
        [services.python(), "-m", "stack", "up"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"`python -m stack up` failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return time.monotonic() - started


def stack_status_ok() -> str | None:
    proc = subprocess.run([services.python(), "-m", "stack", "status", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    return None if proc.returncode == 0 else proc.stdout + proc.stderr



def wait_http_ready(port: int, timeout: float = 90.0) -> None:
    from stack import probes

    deadline = time.monotonic() + timeout
    problem = probes.probe_http(port, "/readyz")
    while problem is not None:
        if time.monotonic() > deadline:
            raise AssertionError(f"127.0.0.1:{port}/readyz not ready after {timeout:.0f}s: {problem}")
        time.sleep(0.3)
        problem = probes.probe_http(port, "/readyz")


@dataclass
class ExtraProcess:
    """A process a test started itself (e.g. a second fanout worker); only these are ever terminated here."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def spawn_fanout(port: int) -> ExtraProcess:
    """Another member of the fanout's consumer group, with the stack's environment and its own HTTP port."""
    return spawn_service("fanout", {"KICAU_FANOUT_PORT": str(port)}, port)


def spawn_service(name: str, env: dict[str, str], port: int | None = None) -> ExtraProcess:
    """The service ``name`` with the stack's environment plus ``env``: on its own ``port``, or in the place of
    the stack's own (its port and call socket) when that one is down."""
    service = services.by_name(name)
    assert service is not None, name
    port = service.port if port is None else port
    log = config.STACK_DIR / "services" / f"{name}-extra-{port}.log"
    proc = procs.spawn([services.python(), "-m", f"services.{name}"], log, cwd=ROOT,
                       env={**service_env(), **env})
    return ExtraProcess(name, port, proc, log)


# --- Kafka: consumer lag of the fanout's group ----------------------------------------------------------


def _fanout_group() -> str:
    from services.fanout.settings import FanoutSettings

    return FanoutSettings().group_id


def _topics() -> tuple[str, str]:
    from kicau.settings import CommonSettings

    common = CommonSettings(kafka_bootstrap=service_env()["KICAU_KAFKA_BOOTSTRAP"])
    return common.kafka_statuses_topic, common.kafka_follows_topic


async def _lag() -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    bootstrap = service_env()["KICAU_KAFKA_BOOTSTRAP"]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        await consumer.start()
        try:
            committed = await admin.list_consumer_group_offsets(_fanout_group())
            described = await admin.describe_topics(list(_topics()))
            tps = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
            assert len(tps) >= len(_topics()), f"no partitions in {described}"
            ends = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
    finally:
        await admin.close()
    lag = 0
    for tp in tps:
        done = committed.get(tp)
        lag += ends[tp] - (done.offset if done is not None and done.offset >= 0 else 0)
    return lag


def consumer_lag() -> int:
    """Messages of the fanout's topics not yet committed by its consumer group (all partitions)."""
    return asyncio.run(asyncio.wait_for(_lag(), 20))


async def _group_members() -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=service_env()["KICAU_KAFKA_BOOTSTRAP"], request_timeout_ms=5000)
    await admin.start()
    try:
        described: Any = await admin.describe_consumer_groups([_fanout_group()])
        groups = described[0].to_object()["groups"]
        group = groups[0]
        return len(group["members"]) if group["state"] == "Stable" else -1
    finally:
        await admin.close()


def group_members() -> int:
    """Members of the fanout's group when it is Stable, -1 while it rebalances."""
    return asyncio.run(asyncio.wait_for(_group_members(), 20))


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> float:
    """Poll ``check`` until it is true; returns the seconds it took. Exceptions count as not yet."""
    started = time.monotonic()
    last: BaseException | None = None
    while True:
        try:
            if check():
                return time.monotonic() - started
        except Exception as exc:
            last = exc
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f}s" + (f" (last error: {last!r})" if last else ""))
        time.sleep(interval)


# --- timelines ------------------------------------------------------------------------------------------


def paged(http: httpx.Client, path: str, user: User | None = None, limit: int = 40,
          max_pages: int = 200) -> list[list[dict[str, Any]]]:
    """Every page of a timeline, following ``max_id`` = the last id of each page until an empty page."""
    pages: list[list[dict[str, Any]]] = []
    max_id: str | None = None
    headers = user.auth if user is not None else {}
    for _ in range(max_pages):
        params: dict[str, str | int] = {"limit": limit}
        if max_id is not None:
            params["max_id"] = max_id
        answer = http.get(path, params=params, headers=headers)
        assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text[:300]}"
        page = answer.json()
        if not page:
            return pages
        pages.append(page)
        max_id = page[-1]["id"]
    raise AssertionError(f"{path} did not end within {max_pages} pages")


def home_statuses(http: httpx.Client, user: User, limit: int = 40) -> list[dict[str, Any]]:
    return [s for page in paged(http, "/api/v1/timelines/home", user, limit) for s in page]


def home_ids(http: httpx.Client, user: User) -> list[str]:
    return [s["id"] for s in home_statuses(http, user)]


def materialise(http: httpx.Client, user: User) -> None:
    """Read the home timeline once: the fanout only writes into timelines that exist (a new or inactive
    user's is built on its first read), and the fault tests are about the fanout's writes."""
    answer = http.get("/api/v1/timelines/home", params={"limit": 1}, headers=user.auth)
    assert answer.status_code == 200, answer.text


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(service_env()["KICAU_REDIS_URL"])


def redis_home_ids(client: redis.Redis, user: User) -> list[str]:
    """The ids the fanout wrote into a home timeline, read from Redis itself (no read path, no rebuild, and
    no request counted against the reader's rate limit)."""
    members: list[bytes] = client.lrange(keys.home_feed(int(user.id)), 0, -1)  # type: ignore[assignment]
    return [str(status_of(m)) for m in members if m != keys.FEED_SENTINEL]


def timeline_rebuilds() -> float:
    return metric_value(service_port("timeline"), "kicau_timeline_rebuilds_total")


def account_statuses(http: httpx.Client, account_id: str) -> list[dict[str, Any]]:
    return [s for page in paged(http, f"/api/v1/accounts/{account_id}/statuses") for s in page]


@dataclass(frozen=True)
class Tally:
    lost: list[str]
    duplicated: list[str]
    unexpected: list[str]

    def __str__(self) -> str:
        return f"{len(self.lost)} lost, {len(self.duplicated)} duplicated, {len(self.unexpected)} unexpected"


def tally(expected: Iterable[str], seen: Iterable[str]) -> Tally:
    """Compare what must appear exactly once with what a timeline showed."""
    wanted = set(expected)
    counts = Counter(seen)
    return Tally(
        lost=sorted(wanted - set(counts)),
        duplicated=sorted(s for s, n in counts.items() if n > 1),
        unexpected=sorted(set(counts) - wanted),
    )


def marker_of(text: str) -> str | None:
    found = re.search(r"\[(m-[0-9a-f]+-\d+)\]", text)
    return found.group(1) if found else None


def follow(http: httpx.Client, follower: User, followee: User) -> None:
    answer = http.post(f"/api/v1/accounts/{followee.id}/follow", headers=follower.auth)
    assert answer.status_code == 200 and answer.json()["following"] is True, answer.text


# --- bursts of posts --------------------------------------------------------------------------------------


@dataclass
class Attempt:
    key: str
    code: int  # 0 = transport error (no HTTP answer)
    seconds: float
    status_id: str | None
    at: float  # monotonic time the attempt ended
    error: str = ""


@dataclass
class Post:
    """One status the client wants posted: its marker (in the text) and every attempt made for it."""

    index: int
    marker: str
    key: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def status_id(self) -> str | None:
        """The id of the last 2xx answer (every 2xx for one key must name the same status)."""
        ids = [a.status_id for a in self.attempts if 200 <= a.code < 300]
        return ids[-1] if ids else None

    @property
    def succeeded(self) -> bool:
        return self.status_id is not None


class Burst:
    """Posts ``count`` statuses through the gateway from ``threads`` threads, in the background.

    With ``retry_for`` > 0 a post answered 5xx (or not at all) is retried with the same Idempotency-Key
    until it succeeds or ``retry_for`` seconds passed since its first attempt, like a well-behaved client.
    """

    def __init__(self, gateway: str, authors: Sequence[User], count: int, *, threads: int = 4,
                 retry_for: float = 0.0, text: str = "burst", pad: int = 0, idempotency: bool = True,
                 timeout: float = 30.0, visibility: str = "public") -> None:
        # Posts go round-robin over the authors, each staying under the gateway's per-account request limit.
        self.authors = list(authors)
        self.retry_for = retry_for
        self.idempotency = idempotency
        self.text = text
        self.visibility = visibility
        self.pad = pad
        tag = uuid.uuid4().hex[:8]
        self.posts = [Post(i, f"m-{tag}-{i}", f"k-{tag}-{i}") for i in range(count)]
        self._client = httpx.Client(base_url=gateway, timeout=timeout,
                                    limits=httpx.Limits(max_connections=threads * 2))
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="burst")
        self._done = 0
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        self.stopped = threading.Event()
        self.started = time.monotonic()
        self.finished: float | None = None
        self._futures = [self._pool.submit(self._one, p) for p in self.posts]

    def _attempt(self, post: Post) -> Attempt:
        body = f"{self.text} [{post.marker}]"
        if self.pad:
            body += " " + ("lorem ipsum " * (self.pad // 12 + 1))[: self.pad]
        headers = dict(self.authors[post.index % len(self.authors)].auth)
        if self.idempotency:
            headers["Idempotency-Key"] = post.key
        began = time.monotonic()
        try:
            answer = self._client.post("/api/v1/statuses", data={"status": body, "visibility": self.visibility},
                                       headers=headers)
        except httpx.HTTPError as exc:
            now = time.monotonic()
            return Attempt(post.key, 0, now - began, None, now, f"{type(exc).__name__}: {exc}")
        now = time.monotonic()
        status_id = answer.json().get("id") if answer.status_code == 200 else None
        return Attempt(post.key, answer.status_code, now - began, status_id, now,
                       "" if answer.status_code == 200 else answer.text[:200])

    def _one(self, post: Post) -> None:
        try:
            if self.stopped.is_set():
                return
            first = time.monotonic()
            while True:
                attempt = self._attempt(post)
                post.attempts.append(attempt)
                if 200 <= attempt.code < 500 or self.retry_for <= 0 or self.stopped.is_set():
                    return
                if time.monotonic() - first > self.retry_for:
                    return
                time.sleep(0.5)
        finally:
            with self._progress:
                self._done += 1
                self._progress.notify_all()

    @property
    def done(self) -> int:
        return self._done

    def wait_progress(self, n: int, timeout: float = 120.0) -> None:
        with self._progress:
            if not self._progress.wait_for(lambda: self._done >= n, timeout):
                raise AssertionError(f"burst: only {self._done} of {n} posts answered within {timeout:.0f}s")

    def wait(self, timeout: float = 300.0) -> None:
        self.wait_progress(len(self.posts), timeout)
        self.finished = time.monotonic()

    def stop(self) -> None:
        """Abandon posts not started yet (used when a test fails early)."""
        self.stopped.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def attempts(self) -> Iterator[Attempt]:
        for post in self.posts:
            yield from post.attempts

    def codes(self) -> Counter[int]:
        return Counter(a.code for a in self.attempts())

    def succeeded_ids(self) -> list[str]:
        return [p.status_id for p in self.posts if p.status_id is not None]


class Listener(threading.Thread):
    """A reader that keeps reading: records the id of every ``update`` event, and the reason of every
    ``kicau.refetch``."""

    def __init__(self, gateway: str, user: User) -> None:
        super().__init__(daemon=True)
        self.gateway, self.user = gateway, user
        self.updates: list[str] = []
        self.refetch_reasons: list[str] = []
        self.opened = threading.Event()
        self.closing = threading.Event()

    def run(self) -> None:
        with contextlib.suppress(httpx.HTTPError), \
                httpx.Client(base_url=self.gateway, timeout=httpx.Timeout(10, read=60)) as client, \
                client.stream("GET", "/api/v1/streaming/user", headers=self.user.auth) as stream:
            assert stream.status_code == 200
            self.opened.set()
            frame: dict[str, str] = {}
            for line in stream.iter_lines():
                if self.closing.is_set():
                    return
                if line:
                    name, _, value = line.partition(": ")
                    frame[name] = value
                    continue
                if frame.get("event") == "update" and "id" in frame:
                    self.updates.append(frame["id"])
                elif frame.get("event") == "kicau.refetch":
                    self.refetch_reasons.append(json.loads(frame["data"])["reason"])
                frame = {}


def presence_of(client: redis.Redis, user: User) -> int:
    """Streams of ``user`` announced by the gateways in Redis (what the fanout's presence mirror loads)."""
    from kicau.presence import GATEWAYS

    total = 0
    gateways: set[bytes] = client.smembers(GATEWAYS)  # type: ignore[assignment]
    for gateway in gateways:
        count: bytes | None = client.hget(f"online:{{g:{gateway.decode()}}}", user.id)  # type: ignore[assignment]
        total += int(count or 0)
    return total


def rss_mib(pid: int) -> float:
    kib = procs.rss_kib(pid)
    assert kib is not None, f"no RSS for pid {pid}"
    return kib / 1024


def metric_value(port: int, name: str, default: float | None = None) -> float:
    """Sum of one Prometheus metric's samples on a service's /metrics (``default`` when it has none yet)."""
    answer = httpx.get(f"http://{HOST}:{port}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text[:200]
    total = 0.0
    found = False
    for line in answer.text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    if not found and default is not None:
        return default
    assert found, f"metric {name} not exposed on port {port}"
    return total

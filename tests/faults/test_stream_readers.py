"""Stream readers that never read: twenty SSE connections stop reading while a few hundred statuses are
fanned out to them. The gateway's memory stays bounded, a reader that keeps reading is unaffected (it receives
every status exactly once, promptly), and each stuck reader, once it reads again, either gets every event it
missed or learns that it fell behind (the overflow notice, or the end of the stream) — never a silent gap.

A few hundred events of ~2 KiB fit in the kernel's socket buffers (up to 4 MiB per connection here), so the
gateway's own per-connection queue is not the bound that gets reached; tests/gateway/test_streaming_bounds.py
drives that overflow on a gateway with a small queue. This test is about the stack's gateway process: its
memory and the other readers.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from services.gateway.settings import GatewaySettings
from tests.conftest import User
from tests.faults import harness
from tests.faults.conftest import Faults

STUCK_ACCOUNTS = 4
STREAMS_PER_ACCOUNT = 5
PER_AUTHOR = 100
AUTHORS = 4
PAD = 400  # characters of filler per status, so each event is a couple of KiB
RSS_GROWTH_LIMIT_MIB = 40.0
OVERFLOW = b"event: kicau.overflow"


def open_stuck_stream(gateway: str, user: User) -> socket.socket:
    """An SSE request whose reader takes the response headers and then never reads again (tiny receive buffer,
    so the gateway's writes block early)."""
    url = urlsplit(gateway)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((url.hostname or "127.0.0.1", url.port or 80))
    sock.sendall(
        f"GET /api/v1/streaming/user HTTP/1.1\r\nHost: {url.netloc}\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {user.token}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "stream closed before its headers"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return sock


def drain(sock: socket.socket, events: int, timeout: float) -> tuple[bytes, bool]:
    """Read what the gateway still sends: until ``events`` update frames or the overflow notice arrived, the
    stream ended, or ``timeout`` passed. Returns the bytes and whether the gateway ended the stream."""
    data = b""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.5)
    while (OVERFLOW not in data and data.count(b"event: update") < events
           and time.monotonic() < deadline):
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            continue
        except OSError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, data.endswith(b"\r\n0\r\n\r\n")


def update_ids(data: bytes) -> list[str]:
    """Ids of the update frames in raw SSE bytes (chunked transfer framing aside: ids are short lines)."""
    return [line[4:].decode() for frame in data.split(b"\n\n") if b"event: update" in frame
            for line in frame.split(b"\n") if line.startswith(b"id: ")]


@contextlib.contextmanager
def sampling_rss(pid: int) -> Iterator[list[float]]:
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(harness.rss_mib(pid))
            stop.wait(0.25)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(5)


def open_streams() -> float:
    return harness.metric_value(harness.service_port("gateway"), "kicau_streams_open", default=0.0)


@pytest.mark.timeout(300)
def test_readers_that_never_read_keep_gateway_memory_bounded_and_others_unaffected(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], faults: Faults
) -> None:
    gateway = harness.service_pid("gateway")
    queue_size = GatewaySettings().stream_queue_size
    authors = [make_user("sa") for _ in range(AUTHORS)]
    stuck_users = [make_user("ss") for _ in range(STUCK_ACCOUNTS)]
    reader = make_user("sr")
    for user in [*stuck_users, reader]:
        for author in authors:
            harness.follow(http, user, author)
    baseline_streams = open_streams()

    listener = harness.Listener(gateway_url, reader)
    listener.start()
    assert listener.opened.wait(15), "the reading stream did not open"
    stuck = [open_stuck_stream(gateway_url, user) for user in stuck_users for _ in range(STREAMS_PER_ACCOUNT)]
    try:
        # The stream registers asynchronously with the fanout: post until the reader sees one.
        warm = http.post("/api/v1/statuses", headers=authors[0].auth, data={"status": "warm-up"}).json()["id"]
        harness.wait_for(lambda: warm in listener.updates, 20, "the reading stream receives events")
        before = harness.rss_mib(gateway)

        with sampling_rss(gateway) as samples:
            burst = harness.Burst(gateway_url, authors, PER_AUTHOR * AUTHORS, threads=4, text="stream",
                                  pad=PAD, idempotency=False)
            try:
                burst.wait()
            finally:
                burst.stop()
            expected = burst.succeeded_ids()
            harness.wait_for(lambda: set(expected) <= set(listener.updates), 60,
                             "every status on the reading stream")
            delivered = time.monotonic() - (burst.finished or time.monotonic())
            time.sleep(1)
        after = harness.rss_mib(gateway)
        peak = max(samples, default=after)
        seen = Counter(listener.updates)
        tally = harness.tally([*expected, warm], listener.updates)
        # Each stuck reader reads again: it must get every event it missed, or be told it overflowed (and
        # reconnect with Last-Event-ID); a silent gap is the one wrong answer.
        drained = [drain(sock, len(expected) + 1, 20) for sock in stuck]
    finally:
        listener.closing.set()
        for sock in stuck:
            sock.close()
    harness.wait_for(lambda: open_streams() <= baseline_streams + 1, 30, "stuck streams released")

    events = len(expected)
    told = sum(OVERFLOW in data or ended for data, ended in drained)
    gaps = []
    for data, ended in drained:
        ids = update_ids(data)
        complete = sorted(ids, key=int) == sorted([*expected, warm], key=int)
        # Short of every event, the reader must learn it fell behind: the overflow notice, or the stream's end.
        if (not complete and OVERFLOW not in data and not ended) or len(set(ids)) != len(ids):
            gaps.append(harness.tally([*expected, warm], ids))
    held = sum(len(data) for data, _ in drained) / len(drained) / 1024
    harness.figure(
        f"{len(stuck)} SSE readers that never read, {events} statuses (~{held * 1024 / (events + 1):.0f} B per "
        f"event, queue {queue_size}): gateway RSS {before:.0f} MiB before, peak {peak:.0f} MiB, {after:.0f} MiB "
        f"after (+{peak - before:.1f} MiB at peak); each stuck stream had ~{held:.0f} KiB waiting in socket buffers "
        f"and, reading again, {'was cut off' if told else 'got every event'} ({told} of {len(stuck)} cut off "
        f"with the overflow notice or the end of the stream, {len(gaps)} with a silent gap); the reading stream: "
        f"{tally}, last event {delivered:.1f}s after the last post was answered"
    )
    assert burst.codes() == {200: events}, burst.codes()
    assert not tally.lost and not tally.unexpected and not [s for s, n in seen.items() if n > 1], tally
    assert peak - before < RSS_GROWTH_LIMIT_MIB, f"gateway RSS grew {peak - before:.1f} MiB"
    assert not gaps, f"stuck readers resumed with a gap and no overflow notice: {gaps[:3]}"

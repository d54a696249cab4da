"""The stream's bounds: Mastodon's WebSocket protocol (subscribe, update/delete frames, unsubscribe, token as
query parameter); a reader that never reads is cut off on its own without slowing anyone else; the per-account
cap on open streams; the SSE heartbeat."""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from stack.gateways import Gateway, spawned_gateway
from tests.conftest import User, eventually

QUEUE = 32
HEARTBEAT = 0.5


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway with a small per-stream queue and a short heartbeat; generous request limits, since one
    author posts hundreds of statuses through it."""
    with spawned_gateway(tmp_path_factory.mktemp("stream-gateway"), stream_queue_size=str(QUEUE),
                         stream_buffer_bytes=str(QUEUE * 4096),
                         heartbeat_seconds=str(HEARTBEAT), rate_limit_account_requests="100000") as gateway:
        yield gateway


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/api/v1/streaming"


def post(http: httpx.Client, author: User, text: str, base: str | None = None) -> str:
    url = f"{base}/api/v1/statuses" if base else "/api/v1/statuses"
    answer = http.post(url, headers=author.auth, json={"status": text})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def follow(http: httpx.Client, reader: User, author: User) -> None:
    answer = http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth)
    assert answer.status_code == 200 and answer.json()["following"], answer.text


def next_frame(ws: ClientConnection, timeout: float = 10) -> dict[str, object]:
    frame = json.loads(ws.recv(timeout=timeout))
    assert isinstance(frame, dict)
    return frame


def open_streams(gateway_url: str) -> float:
    """This gateway's ``kicau_streams_open`` gauge, all transports."""
    text = httpx.get(f"{gateway_url}/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(r'^kicau_streams_open\{transport="[a-z]+"\} (\S+)$', text, re.M))


# --- (a) WebSocket ------------------------------------------------------------------------------------------------

def test_websocket_subscribe_update_delete_unsubscribe(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User]
) -> None:
    author, reader = make_user("wa"), make_user("wr")
    follow(http, reader, author)
    with connect(ws_url(gateway_url), additional_headers=reader.auth, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "subscribe", "stream": "user"}))
        # The subscription registers asynchronously: post until the first update arrives.
        deadline = time.monotonic() + 30  # the fanout learns of the stream asynchronously (and slowly when loaded)
        first = None
        while first is None:
            warm = post(http, author, "ws warm-up")
            try:
                frame = next_frame(ws, timeout=1)
            except TimeoutError:
                assert time.monotonic() < deadline, "no update within 30 s of subscribing"
                continue
            first = frame
        # Mastodon's WebSocket frame: the stream name(s), the event, and the payload as a JSON *string*.
        assert first["stream"] == ["user"] and first["event"] == "update"
        assert isinstance(first["payload"], str)
        assert json.loads(first["payload"])["id"] == warm
        while True:  # skip the warm-up posts that are still arriving
            try:
                next_frame(ws, timeout=1)
            except TimeoutError:
                break
        status = post(http, author, "ws live")
        update = next_frame(ws)
        assert update["event"] == "update" and json.loads(str(update["payload"]))["id"] == status
        assert json.loads(str(update["payload"]))["account"]["id"] == author.id
        assert http.delete(f"/api/v1/statuses/{status}", headers=author.auth).status_code == 200
        deleted = next_frame(ws)
        assert deleted["stream"] == ["user"] and deleted["event"] == "delete"
        assert deleted["payload"] == status  # the id alone, as Mastodon sends it (not JSON within the string)
        # A mention: its update, then its notification (kicau/notifications.py), with no id of its own.
        mention = post(http, author, f"ws @{reader.username}")
        frames = [next_frame(ws), next_frame(ws)]
        assert [(f["event"], "id" in f) for f in frames] == [("update", True), ("notification", False)]
        notified = json.loads(str(frames[1]["payload"]))
        assert (notified["type"], notified["account"]["id"], notified["status"]["id"]) == ("mention", author.id,
                                                                                          mention)
        # Unsubscribed: nothing more arrives.
        ws.send(json.dumps({"type": "unsubscribe", "stream": "user"}))
        time.sleep(0.5)
        post(http, author, "after unsubscribe")
        with pytest.raises(TimeoutError):
            next_frame(ws, timeout=2)
        # An unknown stream or message type is answered with an error, and the socket stays usable.
        ws.send(json.dumps({"type": "subscribe", "stream": "timeline:nonsense"}))
        assert "error" in next_frame(ws)
        ws.send(json.dumps({"type": "dance"}))
        assert "error" in next_frame(ws)


def test_websocket_notification_stream(gateway_url: str, http: httpx.Client, make_user: Callable[..., User]) -> None:
    """Mastodon's ``user:notification`` stream: a socket subscribed to it gets notifications alone, in frames
    naming that stream; several subscriptions on one socket."""
    author, reader = make_user("wna"), make_user("wnr")
    follow(http, reader, author)  # the author's statuses reach the reader's user stream, and not this one
    with connect(ws_url(gateway_url), additional_headers=reader.auth, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "subscribe", "stream": "user:notification"}))
        deadline = time.monotonic() + 30
        while True:  # the subscription registers asynchronously
            post(http, author, f"@{reader.username} warm-up")
            try:
                next_frame(ws, timeout=1)
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "no notification within 30 s of subscribing"
        while True:  # past the warm-up mentions still arriving
            try:
                next_frame(ws, timeout=1)
            except TimeoutError:
                break
        post(http, author, "not a notification")
        mention = post(http, author, f"@{reader.username} now")
        frame = next_frame(ws)
        assert frame["stream"] == ["user:notification"] and frame["event"] == "notification" and "id" not in frame
        notified = json.loads(str(frame["payload"]))
        assert (notified["type"], notified["status"]["id"]) == ("mention", mention)
        # Both streams on one socket, as Mastodon allows: a notification goes out once on each, in the order
        # subscribed, and a status on ``user`` alone. A repeated subscription changes nothing.
        ws.send(json.dumps({"type": "subscribe", "stream": "user"}))
        ws.send(json.dumps({"type": "subscribe", "stream": "user:notification"}))
        time.sleep(0.5)
        both = post(http, author, f"@{reader.username} on both")
        frames = [next_frame(ws) for _ in range(3)]
        assert [(f["stream"], f["event"]) for f in frames] == [
            (["user"], "update"), (["user:notification"], "notification"), (["user"], "notification")]
        assert json.loads(str(frames[0]["payload"]))["id"] == both
        assert frames[1]["payload"] == frames[2]["payload"]
        with pytest.raises(TimeoutError):
            next_frame(ws, timeout=1)
        # Unsubscribed from notifications alone: the user stream goes on, with its own notifications.
        ws.send(json.dumps({"type": "unsubscribe", "stream": "user:notification"}))
        time.sleep(0.5)
        post(http, author, f"@{reader.username} on user")
        frames = [next_frame(ws) for _ in range(2)]
        assert [(f["stream"], f["event"]) for f in frames] == [(["user"], "update"), (["user"], "notification")]
        with pytest.raises(TimeoutError):
            next_frame(ws, timeout=1)
        ws.send(json.dumps({"type": "unsubscribe", "stream": "user"}))
        time.sleep(0.5)
        post(http, author, f"@{reader.username} after unsubscribing")
        with pytest.raises(TimeoutError):
            next_frame(ws, timeout=2)
        # Subscribing again after the last unsubscription opens the stream again.
        ws.send(json.dumps({"type": "subscribe", "stream": "user:notification"}))
        deadline = time.monotonic() + 30
        while True:
            post(http, author, f"@{reader.username} again")
            try:
                frame = next_frame(ws, timeout=1)
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "no notification within 30 s of subscribing again"
        assert (frame["stream"], frame["event"]) == (["user:notification"], "notification")


def test_websocket_token_as_query_parameter_and_stream_on_connect(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User]
) -> None:
    reader = make_user("wq")
    # The browser path: no headers, the token and the stream in the query string.
    with connect(f"{ws_url(gateway_url)}?access_token={reader.token}&stream=user", open_timeout=10) as ws:
        deadline = time.monotonic() + 30
        while True:
            mine = post(http, reader, "own status on my stream")
            try:
                frame = next_frame(ws, timeout=1)
                break
            except TimeoutError:
                assert time.monotonic() < deadline
        assert frame["event"] == "update" and json.loads(str(frame["payload"]))["account"]["id"] == reader.id
        del mine


@pytest.mark.parametrize("query", ["", "?access_token=not-a-token", "?access_token="])
def test_websocket_refuses_bad_tokens(gateway_url: str, query: str) -> None:
    with pytest.raises((InvalidStatus, ConnectionClosed)), \
            connect(f"{ws_url(gateway_url)}{query}", open_timeout=10) as ws:
        ws.send(json.dumps({"type": "subscribe", "stream": "user"}))
        ws.recv(timeout=5)


# --- (b) a reader that never reads --------------------------------------------------------------------------------

@dataclass
class SseReader:
    """Reads an SSE stream on a thread, noting when each event arrived."""

    url: str
    token: str
    received: dict[str, float] = field(default_factory=dict)
    events: list[tuple[str, str]] = field(default_factory=list)
    comments: list[tuple[str, float]] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self) -> None:
        try:
            headers = {"Authorization": f"Bearer {self.token}"}
            with httpx.Client(timeout=httpx.Timeout(30, read=30)) as client, \
                    client.stream("GET", f"{self.url}/api/v1/streaming/user", headers=headers) as stream:
                assert stream.status_code == 200
                self.started.set()
                frame: dict[str, str] = {}
                for line in stream.iter_lines():
                    if self.stop.is_set():
                        return
                    if line.startswith(":"):
                        self.comments.append((line, time.monotonic()))
                    elif line == "":
                        if "event" in frame:
                            self.events.append((frame["event"], frame.get("id", "")))
                            if frame["event"] == "update":
                                self.received[frame["id"]] = time.monotonic()
                        frame = {}
                    else:
                        name, _, value = line.partition(": ")
                        frame[name] = value
        except BaseException as exc:  # surfaced by the test
            if not self.stop.is_set():
                self.error = exc
        finally:
            self.started.set()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        assert self.started.wait(15)
        assert self.error is None, self.error
        return thread


def stuck_reader(gateway: Gateway, token: str) -> socket.socket:
    """An SSE request on a socket with the smallest receive buffer, which reads the response head and then
    nothing: the gateway's writes back up into its own buffers, then its queue for this connection."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.settimeout(15)
    sock.connect(("127.0.0.1", gateway.port))
    sock.sendall(f"GET /api/v1/streaming/user HTTP/1.1\r\nHost: 127.0.0.1:{gateway.port}\r\n"
                 f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


# Each status renders to ~4 KB of event (a quote escapes to six bytes of HTML), to fill socket buffers sooner.
BIG = '"' * 480


def test_a_reader_that_never_reads_is_cut_off_and_nobody_else_waits(
    gateway: Gateway, http: httpx.Client, make_user: Callable[..., User]
) -> None:
    author, slow, good = make_user("sa"), make_user("ss"), make_user("sg")
    follow(http, slow, author)
    follow(http, good, author)
    baseline = open_streams(gateway.url)
    sock = stuck_reader(gateway, slow.token)
    reader = SseReader(gateway.url, good.token)
    thread = reader.start()
    try:
        eventually(lambda: open_streams(gateway.url) == baseline + 2)
        # Both streams are registered with the fanout once the good reader sees a warm-up status.
        deadline = time.monotonic() + 20
        while not reader.received:
            assert reader.error is None and time.monotonic() < deadline, reader.error
            post(http, author, "warm-up", gateway.url)
            time.sleep(0.5)
        # The stuck connection's socket buffers hold megabytes (the kernel grows the send buffer up to
        # tcp_wmem's 4 MB) before the gateway's queue for it fills: post in parallel until it is cut off.
        posted: dict[str, float] = {}
        lock = threading.Lock()

        def post_one(n: int) -> None:
            status = post(poster, author, f"{n} {BIG}")
            with lock:
                posted[status] = time.monotonic()

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool, \
                httpx.Client(base_url=gateway.url, timeout=30, limits=httpx.Limits(max_connections=4)) as poster:
            for batch in range(40):
                list(pool.map(post_one, range(batch * 40, batch * 40 + 40)))
                if open_streams(gateway.url) == baseline + 1:
                    break
        # The stuck reader's stream was released by the gateway (presence, lease and gauge)...
        eventually(lambda: open_streams(gateway.url) == baseline + 1, timeout=20)
        # ...while the good reader got every status, promptly.
        eventually(lambda: set(posted) <= set(reader.received), timeout=15)
        assert reader.error is None, reader.error
        # Promptly: measured from the moment each POST returned (so the fanout's own latency is included).
        delays = sorted(max(0.0, reader.received[s] - posted[s]) for s in posted)
        median, p99 = delays[len(delays) // 2], delays[int(len(delays) * 0.99)]
        print(f"\n{len(posted)} statuses posted; the good reader's delivery median {median * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms")
        assert p99 < 2.0 and delays[-1] < 5.0, (median, p99, delays[-1])
        # The gateway ended the stuck response itself: reading now drains what was buffered, then EOF.
        received = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        else:
            raise AssertionError("the gateway never closed the stuck stream")
        assert b"event: update" in received
    finally:
        sock.close()
        reader.stop.set()
    # The good reader leaves at its next line (a heartbeat at the latest): the gauge is back where it was.
    thread.join(timeout=10)
    eventually(lambda: open_streams(gateway.url) == baseline, timeout=20)


def test_a_websocket_that_never_reads_is_cut_off(
    gateway: Gateway, http: httpx.Client, make_user: Callable[..., User]
) -> None:
    author, slow = make_user("wa"), make_user("ws")
    follow(http, slow, author)
    baseline = open_streams(gateway.url)
    # The receive buffer is set before connecting: only then does it bound the TCP window the gateway sees.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.settimeout(15)
    sock.connect(("127.0.0.1", gateway.port))
    # max_queue=1: the client library stops reading the socket as soon as one frame waits unread; no pings
    # from this side, so only the gateway can end the connection. No permessage-deflate: compressed with a
    # shared context, the same ~4 KB status shrinks to a few bytes, and the gateway's socket buffer would take
    # a hundred thousand of them; the test would then pass only when a burst happened to overflow the queue.
    with connect(f"{ws_url(gateway.url)}?stream=user", sock=sock, additional_headers=slow.auth,
                 max_queue=1, ping_interval=None, open_timeout=10, close_timeout=1, compression=None) as ws, \
            httpx.Client(base_url=gateway.url, timeout=30, limits=httpx.Limits(max_connections=4)) as poster, \
            concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        eventually(lambda: open_streams(gateway.url) == baseline + 1)
        for batch in range(40):
            list(pool.map(lambda n: post(poster, author, f"{n} {BIG}"), range(batch * 40, batch * 40 + 40)))
            if open_streams(gateway.url) == baseline:
                break
        eventually(lambda: open_streams(gateway.url) == baseline, timeout=20)
        # Reading now drains what was buffered and ends in the gateway's close (or a cut connection).
        with pytest.raises(ConnectionClosed):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                ws.recv(timeout=10)


# --- (c) the per-account cap --------------------------------------------------------------------------------------

def test_per_account_stream_cap(gateway_url: str, make_user: Callable[..., User]) -> None:
    cap = 8  # KICAU_GATEWAY_STREAMS_PER_ACCOUNT's default
    user, other = make_user("cap"), make_user("cap")
    with contextlib.ExitStack() as held, httpx.Client(
        base_url=gateway_url, timeout=httpx.Timeout(20, read=20), limits=httpx.Limits(max_connections=cap + 4)
    ) as client:

        def open_stream(who: User) -> httpx.Response:
            return held.enter_context(client.stream("GET", "/api/v1/streaming/user", headers=who.auth))

        streams = [open_stream(user) for _ in range(cap)]
        assert [s.status_code for s in streams] == [200] * cap
        refused = open_stream(user)
        assert refused.status_code == 429, refused.status_code
        assert isinstance(json.loads(refused.read())["error"], str)
        # A WebSocket subscription counts against the same cap.
        with connect(ws_url(gateway_url), additional_headers=user.auth, open_timeout=10) as ws:
            ws.send(json.dumps({"type": "subscribe", "stream": "user"}))
            answer = next_frame(ws)
            assert answer.get("status") == 429 and "error" in answer
        # Another account is not affected.
        assert open_stream(other).status_code == 200
        # Closing one stream frees its slot (once the gateway has noticed the disconnect).
        streams.pop().close()

        def reopened() -> bool:
            answer = open_stream(user)
            if answer.status_code == 429:
                answer.close()
                return False
            assert answer.status_code == 200
            return True

        eventually(reopened, timeout=10, interval=0.2)
        assert open_stream(user).status_code == 429


# --- (d) heartbeat ------------------------------------------------------------------------------------------------

def test_idle_stream_sends_thump_comments(gateway: Gateway, make_user: Callable[..., User]) -> None:
    reader = SseReader(gateway.url, make_user("hb").token)
    reader.start()
    try:
        eventually(lambda: len([c for c, _ in reader.comments if c == ":thump"]) >= 3, timeout=HEARTBEAT * 10)
        thumps = [t for c, t in reader.comments if c == ":thump"]
        gaps = [b - a for a, b in itertools.pairwise(thumps)]
        assert all(HEARTBEAT * 0.5 < gap < HEARTBEAT * 4 for gap in gaps), gaps
        assert reader.comments[0][0] == ":)"  # Mastodon's opening comment
    finally:
        reader.stop.set()

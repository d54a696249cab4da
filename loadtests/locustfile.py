"""Locust load test for Kicau: the DeathStarBench mix (60% home reads, 30% account-timeline reads, 10% posts)
plus streaming users that measure status -> stream delivery latency.

Run headless with CSV and HTML output through ``make load``; see loadtests/README.md for knobs and for
distributed runs. Everything is configured by environment variables (documented below) so the same file
serves closed-loop and open-loop runs.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import gevent
import wsframes  # loadtests/wsframes.py: Locust puts the locustfile's folder on the import path
from gevent.lock import BoundedSemaphore
from locust import FastHttpUser, User, between, constant, constant_throughput, events, task

# KICAU_LOAD_MIX: weights of home reads, account-timeline reads and posts (DeathStarBench's default).
MIX = [int(x) for x in os.environ.get("KICAU_LOAD_MIX", "60,30,10").split(",")]
# KICAU_LOAD_RATE: requests per second per user for an open-loop run (constant throughput); 0 = closed loop.
RATE = float(os.environ.get("KICAU_LOAD_RATE", "0"))
# KICAU_LOAD_STREAM_TRANSPORT: how streaming users listen, "sse" (GET /api/v1/streaming/user) or "websocket"
# (/api/v1/streaming?stream=user, Mastodon's messages); each is its own Locust entry.
STREAM_TRANSPORT = os.environ.get("KICAU_LOAD_STREAM_TRANSPORT", "sse")
# Each API user follows this many of the accounts created before it.
FOLLOWS = int(os.environ.get("KICAU_LOAD_FOLLOWS", "10"))
PASSWORD = "locust-load-password"
# Registration hashes a password with Argon2id (deliberately slow, bounded concurrency in the graph service):
# a whole spawn wave registering at once queues past the gateway's upstream timeout and gets 503s. Each
# process registers at most this many at a time, and retries a 503/429 a few times after a pause.
REGISTER_CONCURRENCY = int(os.environ.get("KICAU_LOAD_REGISTER_CONCURRENCY", "2"))
REGISTER_TRIES = 5
# A streaming user follows at most this many posting users, picked up between listening windows.
STREAM_FOLLOWS = 50

_accounts: list[tuple[str, str]] = []  # (account id, token) of every registered load user in this process
_app: dict[str, str] = {}
_app_lock = BoundedSemaphore(1)
_register_slots = BoundedSemaphore(REGISTER_CONCURRENCY)


def _wait_time() -> Any:
    return constant_throughput(RATE) if RATE > 0 else constant(0)


def _register(client: Any) -> tuple[str, str]:
    with _app_lock:  # one OAuth app per process, not one per user of the first spawn wave
        if not _app:
            _create_app(client)
    name = f"load_{uuid.uuid4().hex[:12]}"
    for attempt in range(REGISTER_TRIES):
        with _register_slots:
            answer = client.post("/api/v1/accounts", headers={"Authorization": f"Bearer {_app['app_token']}"},
                                 data={"username": name, "email": f"{name}@load.test", "password": PASSWORD,
                                       "agreement": "true"}, name="setup: register")
        if answer.status_code not in (429, 503) or attempt == REGISTER_TRIES - 1:
            break
        gevent.sleep(1.0 + attempt)
    token = answer.json()["access_token"]
    me = client.get("/api/v1/accounts/verify_credentials", headers={"Authorization": f"Bearer {token}"},
                    name="setup: verify_credentials").json()
    return me["id"], token


def _create_app(client: Any) -> None:
    app = client.post("/api/v1/apps", data={"client_name": "locust", "scopes": "read write follow"},
                      name="setup: app").json()
    token = client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": app["client_id"], "client_secret": app["client_secret"],
        "scope": "read write follow"}, name="setup: app token").json()["access_token"]
    _app.update(app, app_token=token)


class ApiUser(FastHttpUser):
    """Reads and posts in the configured mix."""

    wait_time = _wait_time()
    weight = 10

    def on_start(self) -> None:
        self.account_id, token = _register(self.client)
        self.auth = {"Authorization": f"Bearer {token}"}
        for followee, _ in random.sample(_accounts, min(FOLLOWS, len(_accounts))):
            self.client.post(f"/api/v1/accounts/{followee}/follow", headers=self.auth, name="setup: follow")
        _accounts.append((self.account_id, token))

    @task(MIX[0])
    def home(self) -> None:
        self.client.get("/api/v1/timelines/home", headers=self.auth, name="/api/v1/timelines/home")

    @task(MIX[1])
    def account_statuses(self) -> None:
        target = random.choice(_accounts)[0] if _accounts else self.account_id
        self.client.get(f"/api/v1/accounts/{target}/statuses", headers=self.auth,
                        name="/api/v1/accounts/:id/statuses")

    @task(MIX[2])
    def post(self) -> None:
        self.client.post("/api/v1/statuses", headers=self.auth, json={"status": f"load {uuid.uuid4().hex}"},
                         name="/api/v1/statuses")


class StreamingUser(User):
    """Holds a user stream open and reports each update's status -> stream latency as its own entry.

    Reads the socket chunk by chunk: FastHttpSession's iter_lines buffers 1 KB chunks and would add seconds
    of false latency on a quiet stream.
    """

    weight = int(os.environ.get("KICAU_LOAD_STREAM_WEIGHT", "1"))
    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        from locust.contrib.fasthttp import FastHttpSession

        # Locust 2.4x: FastHttpSession(base_url, request_event, user); it used to take the environment first.
        self.session = FastHttpSession(base_url=self.host, request_event=self.environment.events.request, user=self)
        self.account_id, self.token = _register(self.session)
        self.followed: set[str] = set()

    def _follow_new_posters(self) -> None:
        """Follow posting users registered since the last window (they keep arriving during the ramp-up), so
        their statuses reach this stream; at most STREAM_FOLLOWS in all."""
        for followee, _ in _accounts[-STREAM_FOLLOWS:]:
            if len(self.followed) >= STREAM_FOLLOWS:
                break
            if followee not in self.followed and followee != self.account_id:
                self.session.post(f"/api/v1/accounts/{followee}/follow",
                                  headers={"Authorization": f"Bearer {self.token}"}, name="setup: follow")
                self.followed.add(followee)

    @task
    def listen(self) -> None:
        self._follow_new_posters()
        target = urlsplit(self.host)
        sock = socket.create_connection((target.hostname or "127.0.0.1", target.port or 80), timeout=30)
        websocket = STREAM_TRANSPORT == "websocket"
        if websocket:
            sock.sendall(wsframes.upgrade_request("/api/v1/streaming?stream=user", target.netloc, self.token))
        else:
            sock.sendall((f"GET /api/v1/streaming/user HTTP/1.1\r\nHost: {target.netloc}\r\n"
                          f"Authorization: Bearer {self.token}\r\nAccept: text/event-stream\r\n\r\n").encode())
        buffer = b""
        headers_done = False
        # Listening windows are short so new posters are followed between them.
        deadline = time.time() + float(os.environ.get("KICAU_LOAD_STREAM_SECONDS", "15"))
        try:
            while time.time() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received = time.time()
                buffer += chunk
                if websocket:
                    if not headers_done:
                        head, sep, rest = buffer.partition(b"\r\n\r\n")
                        if not sep:
                            continue
                        if not head.startswith(b"HTTP/1.1 101"):
                            raise ConnectionError(f"stream upgrade refused: {head[:80]!r}")
                        headers_done, buffer = True, rest
                    frames, buffer = wsframes.split_frames(buffer)
                    for opcode, _, payload in frames:
                        if opcode == wsframes.TEXT:
                            self._record_message(payload, received)
                        elif opcode == wsframes.PING:
                            sock.sendall(wsframes.pong(payload))
                    continue
                while b"\n\n" in buffer:
                    frame, buffer = buffer.split(b"\n\n", 1)
                    self._record(frame, received)
        except TimeoutError:
            pass
        finally:
            sock.close()

    def _record(self, frame: bytes, received: float) -> None:
        fields = dict(line.split(": ", 1) for line in frame.decode(errors="replace").split("\n") if ": " in line)
        if fields.get("event") == "update":
            self._delivered(json.loads(fields["data"]), received, len(frame), "SSE")

    def _record_message(self, message: bytes, received: float) -> None:
        """A Mastodon WebSocket message: the status is a JSON string inside it."""
        decoded = json.loads(message)
        if decoded.get("event") == "update":
            self._delivered(json.loads(decoded["payload"]), received, len(message), "WebSocket")

    def _delivered(self, status: dict[str, Any], received: float, size: int, kind: str) -> None:
        created = datetime.fromisoformat(status["created_at"].replace("Z", "+00:00")).timestamp()
        latency_ms = max(0.0, (received - created) * 1000)
        events.request.fire(request_type=kind, name="status -> stream delivery", response_time=latency_ms,
                            response_length=size, exception=None, context={})

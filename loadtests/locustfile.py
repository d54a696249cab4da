"""Locust load test for Kicau: the DeathStarBench mix (60% home reads, 30% account-timeline reads, 10% posts)
plus streaming users that measure status -> stream delivery latency.

Run headless with CSV and HTML output through ``make load``; see loadtests/README.md for knobs and for
distributed runs. Everything is configured by environment variables (documented below) so the same file
serves closed-loop and open-loop runs.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
import locust.runners
from gevent.lock import BoundedSemaphore
from locust import FastHttpUser, User, between, constant, events, task
from locust.env import Environment
from locust.rpc import Message
from locust.runners import MasterRunner, WorkerRunner

# Locust loads this file by its path and puts only its folder on the import path; the stream readers are imported
# from the repository's root, as the tests import them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from loadtests import clock, streamframes
from loadtests.pacing import OpenLoop

# KICAU_LOAD_MIX: weights of home reads, account-timeline reads and posts (DeathStarBench's default).
MIX = [int(x) for x in os.environ.get("KICAU_LOAD_MIX", "60,30,10").split(",")]
# KICAU_LOAD_RATE: requests per second per API user, sent on a fixed schedule whatever the answers' latency (open
# loop, loadtests/pacing.py); 0 = closed loop (each user's next request when its last one is answered).
RATE = float(os.environ.get("KICAU_LOAD_RATE", "0"))
# KICAU_LOAD_MAX_IN_FLIGHT: in an open loop, requests an API user keeps out at most; one due beyond that is not
# sent and counts as a failure of the entry "open loop: behind schedule" (the offered load was not met).
MAX_IN_FLIGHT = int(os.environ.get("KICAU_LOAD_MAX_IN_FLIGHT", "20"))
# KICAU_LOAD_STREAM_TRANSPORT: how streaming users listen, "sse" (GET /api/v1/streaming/user) or "websocket"
# (/api/v1/streaming?stream=user, Mastodon's messages); each is its own Locust entry.
STREAM_TRANSPORT = os.environ.get("KICAU_LOAD_STREAM_TRANSPORT", "sse")
# KICAU_LOAD_STREAM: what streaming users listen to, "user" (their home timeline: the statuses of the posting users
# they follow) or "public" (the public timeline: every status posted, Mastodon's ``public`` stream, followed by no
# one); the entry is "status -> stream delivery" or "status -> public stream delivery".
STREAM = os.environ.get("KICAU_LOAD_STREAM", "user")
if STREAM not in ("user", "public"):
    raise SystemExit(f"KICAU_LOAD_STREAM must be user or public, not {STREAM!r}")
DELIVERY_ENTRY = "status -> stream delivery" if STREAM == "user" else "status -> public stream delivery"
# Each API user follows this many of the accounts created before it.
FOLLOWS = int(os.environ.get("KICAU_LOAD_FOLLOWS", "10"))
PASSWORD = "locust-load-password"
# Registration hashes a password with Argon2id (deliberately slow, bounded concurrency in the graph service):
# a whole spawn wave registering at once queues past the gateway's upstream timeout and gets 503s. Each
# process registers at most this many at a time, and retries a 503/429 a few times after a pause.
REGISTER_CONCURRENCY = int(os.environ.get("KICAU_LOAD_REGISTER_CONCURRENCY", "2"))
REGISTER_TRIES = 5
# KICAU_LOAD_HEARTBEAT_LIVENESS: heartbeats (one a second) a distributed run's master lets a worker miss before it
# counts the worker missing and stops the test. Locust's own is 3: on a 2-core machine shared with the system
# under test and other work, workers starved of CPU for 3 s were dropped 5 s into a run (loadtests/README.md).
# Locust reads the module's constant each time it resets a worker's count, so setting it here is enough.
locust.runners.HEARTBEAT_LIVENESS = int(os.environ.get("KICAU_LOAD_HEARTBEAT_LIVENESS", "10"))
# A streaming user follows at most this many posting users, picked up between listening windows.
STREAM_FOLLOWS = 50
# KICAU_LOAD_CLOCK_SAMPLES: statuses each process posts (and deletes) before its first stream, to learn how far the
# server's clock is from its own (loadtests/clock.py); deliveries are then timed on the server's clock, so a run
# from other machines than Kicau's stays true. 0: the clocks are taken as one (one machine, or well synchronised).
CLOCK_SAMPLES = int(os.environ.get("KICAU_LOAD_CLOCK_SAMPLES", "5"))
# KICAU_LOAD_CLOCK_SHIFT_MS: pretend this process's clock is that far ahead (negative: behind) of the real one, to
# see what a skewed load machine would measure, and that the correction above undoes it.
CLOCK_SHIFT_S = float(os.environ.get("KICAU_LOAD_CLOCK_SHIFT_MS", "0")) / 1000


def _now() -> float:
    """This process's clock, as deliveries are timed on it."""
    return time.time() + CLOCK_SHIFT_S


class OverloadedError(Exception):
    """The system under test answers too slowly for the offered open-loop load."""


# Ids of the load's registered API users, oldest first: every process's in a distributed run (each worker tells
# the master, which tells every worker), so the follow graph spans workers as it would span real clients.
_accounts: list[str] = []
_accounts_known: set[str] = set()
_registered_here = 0
ACCOUNT_MESSAGE = "kicau_account"
_app: dict[str, str] = {}
_app_lock = BoundedSemaphore(1)
_server_clock: list[clock.ClockOffset] = []  # this process's, once measured
_clock_lock = BoundedSemaphore(1)
_early: list[float] = []  # deliveries that arrived before their created_at even on the corrected clock (ms early)
_register_slots = BoundedSemaphore(REGISTER_CONCURRENCY)


def _learn(account_id: str) -> None:
    if account_id not in _accounts_known:
        _accounts_known.add(account_id)
        _accounts.append(account_id)


def _share_accounts(environment: Environment, **_: Any) -> None:
    """In a distributed run, the master passes each worker's new API user on to every worker."""
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        def relay(msg: Message, **_: Any) -> None:
            runner.send_message(ACCOUNT_MESSAGE, msg.data)

        runner.register_message(ACCOUNT_MESSAGE, relay)
    elif isinstance(runner, WorkerRunner):
        def learn(msg: Message, **_: Any) -> None:
            _learn(str(msg.data["id"]))

        runner.register_message(ACCOUNT_MESSAGE, learn)


_rate_limited = 0  # answers 429 (the gateway's rate limits) this process got


def _count_rate_limited(response: Any = None, **_: Any) -> None:
    global _rate_limited
    if getattr(response, "status_code", None) == 429:
        _rate_limited += 1


def _tell_accounts(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return
    logging.info("kicau: %d API users known to this process, %d of them registered by it",
                 len(_accounts), _registered_here)
    if _server_clock:
        logging.info("kicau: the server's clock is %s", _server_clock[0].describe())
    if _early:
        # Reported as 0 ms: the clocks moved apart during the run, or the estimate is off (see its ±).
        logging.warning("kicau: %d deliveries arrived before their created_at by up to %.1f ms on the corrected "
                        "clock; they count as 0 ms", len(_early), max(_early))
    if _rate_limited:
        # The figures then measure the rate limiter, not the system: say so, and how to run without it.
        logging.warning(
            "kicau: %d requests were refused by the gateway's rate limits (429). Each account may make 300 "
            "requests in 5 minutes (Mastodon's default), about 1 a second, and a closed-loop user makes far more. "
            "Either run an open loop within it (KICAU_LOAD_RATE=0.8), or `make load` without HOST (a load gateway "
            "of its own beside the stack's), or start the gateway with a limit for load tests, e.g. "
            "KICAU_GATEWAY_RATE_LIMIT_ACCOUNT_REQUESTS=100000000 (loadtests/README.md).", _rate_limited)


# Typed here: Locust's own hooks are not.
_on_init: Callable[[Callable[..., None]], object] = events.init.add_listener
_on_init(_share_accounts)
_on_test_stop: Callable[[Callable[..., None]], object] = events.test_stop.add_listener
_on_test_stop(_tell_accounts)
_on_request: Callable[[Callable[..., None]], object] = events.request.add_listener
_on_request(_count_rate_limited)


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


def _measure_server_clock(session: Any, token: str) -> None:
    """Once per process: post CLOCK_SAMPLES statuses, time each round trip, and delete them again."""
    with _clock_lock:
        if _server_clock:
            return
        if CLOCK_SAMPLES <= 0:
            _server_clock.append(clock.SAME_CLOCK)
            return
        auth = {"Authorization": f"Bearer {token}"}
        samples = []
        for _ in range(CLOCK_SAMPLES):
            sent = _now()
            # Direct: a status for its author alone (kicau/visibility.py), in no one else's timeline or stream.
            answer = session.post("/api/v1/statuses", headers=auth,
                                  json={"status": "clock sample", "visibility": "direct"}, name="setup: clock sample")
            received = _now()
            if answer.status_code != 200:
                continue  # a failure of its own entry already
            status = answer.json()
            samples.append(clock.Sample(sent, received, clock.created_at(status)))
            session.delete(f"/api/v1/statuses/{status['id']}", headers=auth, name="setup: clock sample delete")
        if not samples:
            logging.warning("kicau: no clock sample could be posted; deliveries are timed with the clocks as they are")
        _server_clock.append(clock.estimate(samples) if samples else clock.SAME_CLOCK)


def _create_app(client: Any) -> None:
    app = client.post("/api/v1/apps", data={"client_name": "locust", "scopes": "read write follow"},
                      name="setup: app").json()
    token = client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": app["client_id"], "client_secret": app["client_secret"],
        "scope": "read write follow"}, name="setup: app token").json()["access_token"]
    _app.update(app, app_token=token)


class ApiUser(FastHttpUser):
    """Reads and posts in the configured mix: one request after another (closed loop), or on a fixed schedule of
    ``KICAU_LOAD_RATE`` a second, however long the answers take (open loop, loadtests/pacing.py)."""

    wait_time = constant(0)
    weight = 10
    concurrency = MAX_IN_FLIGHT  # FastHttpUser's connections per user: one per request in flight

    def on_start(self) -> None:
        self.account_id, token = _register(self.client)
        self.auth = {"Authorization": f"Bearer {token}"}
        for followee in random.sample(_accounts, min(FOLLOWS, len(_accounts))):
            self.client.post(f"/api/v1/accounts/{followee}/follow", headers=self.auth, name="setup: follow")
        global _registered_here
        _registered_here += 1
        _learn(self.account_id)
        if isinstance(self.environment.runner, WorkerRunner):
            self.environment.runner.send_message(ACCOUNT_MESSAGE, {"id": self.account_id})

    @task
    def requests(self) -> None:
        if RATE <= 0:
            self.one_of_the_mix()
            return
        loop = OpenLoop(RATE, MAX_IN_FLIGHT)
        try:
            loop.run(self.one_of_the_mix, self._behind_schedule)
        finally:
            loop.stop()

    def one_of_the_mix(self) -> None:
        random.choices((self.home, self.account_statuses, self.post), weights=MIX)[0]()

    def _behind_schedule(self, lateness_seconds: float) -> None:
        _report("open loop", "behind schedule", lateness_seconds * 1000, 0, OverloadedError(
            f"{MAX_IN_FLIGHT} requests of this user still in flight when the next was due"))

    def home(self) -> None:
        self.client.get("/api/v1/timelines/home", headers=self.auth, name="/api/v1/timelines/home")

    def account_statuses(self) -> None:
        target = random.choice(_accounts) if _accounts else self.account_id
        self.client.get(f"/api/v1/accounts/{target}/statuses", headers=self.auth,
                        name="/api/v1/accounts/:id/statuses")

    def post(self) -> None:
        self.client.post("/api/v1/statuses", headers=self.auth, json={"status": f"load {uuid.uuid4().hex}"},
                         name="/api/v1/statuses")


class StreamingUser(User):
    """Holds a user stream (or the public one, ``KICAU_LOAD_STREAM``) open and reports each update's status ->
    stream latency as its own entry.

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
        # Before its first stream opens, which would otherwise receive its own samples.
        _measure_server_clock(self.session, self.token)
        self.followed: set[str] = set()

    def _follow_new_posters(self) -> None:
        """Follow posting users registered since the last window (they keep arriving during the ramp-up), so
        their statuses reach this stream; at most STREAM_FOLLOWS in all."""
        for followee in _accounts[-STREAM_FOLLOWS:]:
            if len(self.followed) >= STREAM_FOLLOWS:
                break
            if followee not in self.followed and followee != self.account_id:
                self.session.post(f"/api/v1/accounts/{followee}/follow",
                                  headers={"Authorization": f"Bearer {self.token}"}, name="setup: follow")
                self.followed.add(followee)

    @task
    def listen(self) -> None:
        if STREAM == "user":
            self._follow_new_posters()
        target = urlsplit(str(self.host))
        sock = socket.create_connection((target.hostname or "127.0.0.1", target.port or 80), timeout=30)
        reader: streamframes.SseReader | streamframes.WebSocketReader
        if STREAM_TRANSPORT == "websocket":
            reader = streamframes.WebSocketReader()
            sock.sendall(streamframes.upgrade_request(f"/api/v1/streaming?stream={STREAM}", target.netloc,
                                                      self.token))
        else:
            reader = streamframes.SseReader()
            sock.sendall((f"GET /api/v1/streaming/{STREAM} HTTP/1.1\r\nHost: {target.netloc}\r\n"
                          f"Authorization: Bearer {self.token}\r\nAccept: text/event-stream\r\n\r\n").encode())
        kind = "WebSocket" if STREAM_TRANSPORT == "websocket" else "SSE"
        # Listening windows are short so new posters are followed between them.
        deadline = time.time() + float(os.environ.get("KICAU_LOAD_STREAM_SECONDS", "15"))
        try:
            while time.time() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received = _now()
                try:
                    messages = reader.feed(chunk)
                    updates = [(json.loads(m.payload), len(m.payload)) for m in messages if m.event == "update"]
                except (streamframes.StreamRefusedError, ValueError) as refused:
                    _report(kind, "stream: refused or unreadable", 0.0, 0, refused)
                    return
                for status, size in updates:
                    self._delivered(status, received, size, kind)
                if isinstance(reader, streamframes.WebSocketReader):
                    for reply in reader.take_replies():
                        sock.sendall(reply)
                    if reader.closed:
                        break
        except TimeoutError:
            pass
        finally:
            sock.close()

    def _delivered(self, status: dict[str, Any], received: float, size: int, kind: str) -> None:
        latency_ms = _server_clock[0].latency_ms(received, clock.created_at(status))
        if latency_ms < 0:
            _early.append(-latency_ms)
        _report(kind, DELIVERY_ENTRY, max(0.0, latency_ms), size, None)


def _report(kind: str, name: str, response_time_ms: float, size: int, error: Exception | None) -> None:
    """A Locust entry of its own (web UI, CSV, HTML report), as if it were a request."""
    fire: Callable[..., None] = events.request.fire
    fire(request_type=kind, name=name, response_time=response_time_ms, response_length=size, exception=error,
         context={})

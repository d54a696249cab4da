"""The delivery section's stream client (bench/listeners, Go): its parsers under Go's own tests, and the program
itself on real streams of the running gateway. Every delivery figure in latest.json comes from it: a client that
dropped, doubled or mistimed frames would make them all wrong."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime

import httpx
import pytest

from bench.delivery import LISTENERS_SOURCE, Listeners, _go
from tests.conftest import User, eventually


def _go_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_go(), *args], cwd=LISTENERS_SOURCE, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"})


def test_the_go_parsers_pass_their_tests_and_the_sources_are_formatted_and_vetted() -> None:
    tests = _go_tool("test", "-count=1", ".")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    vet = _go_tool("vet", ".")
    assert vet.returncode == 0, vet.stdout + vet.stderr
    gofmt = subprocess.run([str(os.path.join(os.path.dirname(_go()), "gofmt")), "-l", "."], cwd=LISTENERS_SOURCE,
                           capture_output=True, text=True, timeout=60)
    assert gofmt.returncode == 0 and gofmt.stdout == "", gofmt.stdout + gofmt.stderr


def _post(http: httpx.Client, author: User, text: str) -> tuple[int, float]:
    """The new status's id and created_at (epoch ms)."""
    answer = http.post("/api/v1/statuses", headers=author.auth, json={"status": text})
    assert answer.status_code == 200, answer.text
    status = answer.json()
    return int(status["id"]), datetime.fromisoformat(status["created_at"].replace("Z", "+00:00")).timestamp() * 1000


@pytest.mark.parametrize("transport", ["sse", "websocket"])
def test_every_status_is_timed_once_on_every_stream(
    transport: str, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    author = make_user("lsa")
    readers = [make_user("lsr") for _ in range(3)]
    for reader in readers:
        answer = http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth)
        assert answer.status_code == 200, answer.text
    # One token the gateway refuses: that stream fails to open, and says why, without stopping the others.
    listeners = Listeners([r.token for r in readers] + ["not-a-token"], transport, concurrency=2)
    try:
        assert asyncio.run(listeners.wait_open()) == 3
        # A refused WebSocket handshake is a 403 (an ASGI server's answer to a close before accept).
        refused = "403" if transport == "websocket" else "401"
        assert listeners.failed == 1 and f"HTTP/1.1 {refused}" in listeners.first_error

        # The fanout learns of new streams through pub/sub: post until one status reaches all three.
        def warmed() -> bool:
            listeners.mark()
            _post(http, author, "warm-up")
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and listeners.count() < 3:
                time.sleep(0.05)
            return listeners.count() == 3

        eventually(warmed, timeout=60, interval=0.1)

        listeners.mark()
        posted = dict(_post(http, author, f"timed {i}") for i in range(4))
        eventually(lambda: listeners.count() >= 12, timeout=30)
        time.sleep(0.3)  # nothing more may arrive: no status twice
        recorded = listeners.dump()
        dumped_at = time.time() * 1000
    finally:
        listeners.close()

    assert Counter(status_id for status_id, _ in recorded.deliveries) == dict.fromkeys(posted, 3)
    for status_id, latency_ms in recorded.deliveries:
        # Timed between the status's creation and the dump (created_at is truncated to the ms, so a delivery
        # within that ms may read up to 1 ms early).
        assert -1.0 <= latency_ms <= dumped_at - posted[status_id] + 1.0
    assert recorded.parse_errors == 0 and recorded.closed == 0
    assert recorded.cpu_seconds > 0
    assert listeners.process.returncode == 0

"""The timeline and post services are killed (SIGKILL) behind a gateway that stays up, then restarted.

The gateway calls them on their call sockets (kicau/internal_rpc.py), one connection each, which the kill breaks.
While a service is down its requests answer 503 with a Mastodon error at once, never 500 and never a hang; once
`stack up` has restarted it, the same gateway process reconnects on the next request, a post retried with its
Idempotency-Key yields exactly one status, and every status answered 2xx reaches the follower's home timeline.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import User
from tests.faults import harness
from tests.faults.conftest import Faults

# A refused call is answered at once; this bounds a loaded two-core machine's request, not a timeout.
DOWN_ANSWER_SECONDS = 3.0


@pytest.mark.timeout(300)
def test_timeline_and_post_services_killed_behind_a_live_gateway(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults
) -> None:
    author, follower = make_user("ia"), make_user("if")
    harness.follow(http, follower, author)
    harness.materialise(http, follower)
    gateway = harness.service_pid("gateway")
    before = http.post("/api/v1/statuses", headers=author.auth, data={"status": "before the crash"})
    assert before.status_code == 200, before.text
    harness.wait_for(lambda: before.json()["id"] in harness.home_ids(http, follower), 30, "the first status home")

    faults.kill(harness.service_pid("timeline"))
    started = time.monotonic()
    home_down = http.get("/api/v1/timelines/home", headers=follower.auth)
    home_down_seconds = time.monotonic() - started
    assert home_down.status_code == 503 and "error" in home_down.json(), home_down.text
    assert home_down_seconds < DOWN_ANSWER_SECONDS

    faults.kill(harness.service_pid("post"))
    key = {"Idempotency-Key": uuid.uuid4().hex}
    started = time.monotonic()
    post_down = http.post("/api/v1/statuses", headers={**author.auth, **key}, data={"status": "during the crash"})
    post_down_seconds = time.monotonic() - started
    assert post_down.status_code == 503 and "error" in post_down.json(), post_down.text
    assert post_down_seconds < DOWN_ANSWER_SECONDS

    restart_seconds = harness.stack_up()
    assert harness.service_pid("gateway") == gateway, "the gateway was restarted: its reconnection is untested"
    retried = http.post("/api/v1/statuses", headers={**author.auth, **key}, data={"status": "during the crash"})
    assert retried.status_code == 200, retried.text
    again = http.post("/api/v1/statuses", headers={**author.auth, **key}, data={"status": "during the crash"})
    assert again.status_code == 200 and again.json()["id"] == retried.json()["id"], again.text
    expected = [retried.json()["id"], before.json()["id"]]
    harness.wait_for(lambda: harness.home_ids(http, follower)[:2] == expected, 60, "both statuses home")
    posted = harness.home_ids(http, follower)
    assert posted.count(retried.json()["id"]) == 1 and posted.count(before.json()["id"]) == 1, posted
    harness.figure(
        f"timeline and post services SIGKILLed behind a live gateway: home read 503 in {home_down_seconds:.2f}s, "
        f"post 503 in {post_down_seconds:.2f}s while down; restarted in {restart_seconds:.1f}s; the same gateway "
        f"then served both, the retried key gave one status, and both statuses are home exactly once"
    )

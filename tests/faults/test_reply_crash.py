"""The post service dies (``os._exit`` at a crash point, as a SIGKILL would end it) right after a reply was made
durable and published, before its parent's replies_count moved (kicau/replies.py). The client gets a Mastodon
error, never 500; its retry with the same Idempotency-Key, once `stack up` has restarted the service, answers the
same reply, and the parent counts it exactly once."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from kicau.crash_points import CRASH_EXIT_CODE
from tests.conftest import User
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.timeline.test_replies_count import replies_count
from tests.timeline.test_threads import context, reply


@pytest.mark.timeout(300)
def test_a_reply_retried_after_a_post_service_crash_counts_once(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults,
) -> None:
    author, fan = make_user("rcr_a"), make_user("rcr_f")
    root = reply(http, author, None, "answer me")
    assert replies_count(http, root) == 0  # cached now, with its count: the crash must not leave it stale

    faults.kill(harness.service_pid("post"))
    crashing = faults.spawn_service("post", {"KICAU_CRASH_AT": "post.status.published"})
    harness.wait_http_ready(crashing.port)
    headers = {**fan.auth, "Idempotency-Key": f"crash-{fan.id}"}
    broken = http.post("/api/v1/statuses", headers=headers, json={"status": "here", "in_reply_to_id": root})
    assert broken.status_code in (502, 503) and "error" in broken.json(), broken.text
    assert crashing.proc.wait(timeout=30) == CRASH_EXIT_CODE, "the post service did not die at its crash point"

    restart_seconds = harness.stack_up()
    retried = http.post("/api/v1/statuses", headers=headers, json={"status": "here", "in_reply_to_id": root})
    assert retried.status_code == 200, retried.text
    assert replies_count(http, root) == 1
    assert context(http, root, None) == ([], [retried.json()["id"]])
    again = http.post("/api/v1/statuses", headers=headers, json={"status": "here", "in_reply_to_id": root})
    assert again.json()["id"] == retried.json()["id"] and replies_count(http, root) == 1
    harness.figure(f"post service died after publishing a reply: answered {broken.status_code}; restarted in "
                   f"{restart_seconds:.1f}s; the retry answered the same reply, counted once")

"""The graph service dies (``os._exit``, as a SIGKILL would end it) in the middle of a follow: after the edge is
claimed and counted, before the follow's event is published. The follow answers a Mastodon error, never 500; its
retry, once `stack up` has restarted the service, completes the follow and notifies the followee exactly once,
with the follow counted once. A repeated follow of the settled edge notifies no one.

Until the edge recorded the notification it owes (stack/migrations/0008_follow_notifications.cql), the retry
found the follow claimed and the notification was lost."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from kicau.crash_points import CRASH_EXIT_CODE
from tests.conftest import User
from tests.faults import harness
from tests.faults.conftest import Faults


def _follow_notifications(http: httpx.Client, user: User) -> list[dict[str, Any]]:
    answer = http.get("/api/v1/notifications?types[]=follow&limit=80", headers=user.auth)
    assert answer.status_code == 200, answer.text
    notifications: list[dict[str, Any]] = answer.json()
    return notifications


def _follow(http: httpx.Client, follower: User, followee: User) -> httpx.Response:
    return http.post(f"/api/v1/accounts/{followee.id}/follow", headers=follower.auth)


@pytest.mark.timeout(300)
def test_follow_retried_after_a_graph_crash_notifies_once(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults
) -> None:
    follower, followee, witness = make_user("gcf"), make_user("gce"), make_user("gcw")
    faults.kill(harness.service_pid("graph"))
    crashing = faults.spawn_service("graph", {"KICAU_CRASH_AT": "graph.follow.claimed"})
    harness.wait_http_ready(crashing.port)

    broken = _follow(http, follower, followee)
    assert broken.status_code in (502, 503) and "error" in broken.json(), broken.text
    assert crashing.proc.wait(timeout=30) == CRASH_EXIT_CODE, "the graph service did not die at its crash point"

    restart_seconds = harness.stack_up()
    retried = _follow(http, follower, followee)
    assert retried.status_code == 200 and retried.json()["following"], retried.text
    harness.wait_for(lambda: len(_follow_notifications(http, followee)) == 1, 60,
                     "the follow notification after the retry")
    notified = _follow_notifications(http, followee)
    assert notified[0]["account"]["id"] == follower.id

    # A repeat notifies no one. Follow events are ordered by follower: once a later follow of the same follower
    # has notified its followee, the repeat has been applied.
    assert _follow(http, follower, followee).status_code == 200
    assert _follow(http, follower, witness).status_code == 200
    harness.wait_for(lambda: len(_follow_notifications(http, witness)) == 1, 60, "the witness's notification")
    # The two may share a batch whose writes go out side by side: the batch is whole once its offsets are committed.
    harness.wait_for(lambda: harness.consumer_lag() == 0, 60, "the fanout to commit the witness's batch")
    assert [n["id"] for n in _follow_notifications(http, followee)] == [notified[0]["id"]]

    counted = http.get(f"/api/v1/accounts/{followee.id}").json()
    assert counted["followers_count"] == 1, counted
    assert http.get(f"/api/v1/accounts/{follower.id}").json()["following_count"] == 2
    harness.figure(
        f"graph service died between claiming a follow and publishing it: the follow answered "
        f"{broken.status_code}; restarted in {restart_seconds:.1f}s; the retry notified the followee once, "
        f"the repeat no one, and the follow is counted once"
    )

"""The post service dies (``os._exit`` at a crash point, as a SIGKILL would end it) between recording a vote in
Cassandra and counting it in the poll's tallies in Redis (kicau/polls.py). The request answers a Mastodon error,
never 500; its retry, once `stack up` has restarted the service, is Mastodon's "already voted" (the vote was
recorded) and counts the vote, once: the tallies every read shows hold it."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import User
from tests.faults import harness
from tests.faults.conftest import Faults


def _vote(http: httpx.Client, voter: User, poll_id: str) -> httpx.Response:
    return http.post(f"/api/v1/polls/{poll_id}/votes", headers=voter.auth, json={"choices": [1]})


@pytest.mark.timeout(300)
def test_a_vote_retried_after_a_post_service_crash_is_counted_once(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults,
) -> None:
    author, voter = make_user("pvc_a"), make_user("pvc_v")
    created = http.post("/api/v1/statuses", headers=author.auth, json={
        "status": "crash or not?", "poll": {"options": ["yes", "no"], "expires_in": 3600}})
    assert created.status_code == 200, created.text
    poll_id = created.json()["poll"]["id"]
    assert http.get(f"/api/v1/polls/{poll_id}").json()["votes_count"] == 0  # its tallies built in Redis

    broken, restart_seconds = faults.crash_during("post", "post.poll_vote.claimed", lambda: _vote(http, voter, poll_id))

    retried = _vote(http, voter, poll_id)
    assert retried.status_code == 422 and "already voted" in retried.json()["error"], retried.text
    shown = http.get(f"/api/v1/polls/{poll_id}", headers=voter.auth).json()
    assert ([o["votes_count"] for o in shown["options"]], shown["voters_count"], shown["own_votes"]) == ([0, 1], 1, [1])
    assert _vote(http, voter, poll_id).status_code == 422  # and again: still counted once
    assert http.get(f"/api/v1/polls/{poll_id}").json()["voters_count"] == 1
    harness.figure(f"post service died at post.poll_vote.claimed: answered {broken.status_code}; restarted in "
                   f"{restart_seconds:.1f}s; the retry counted the vote once")

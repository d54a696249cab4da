"""The graph service dies (``os._exit`` at a crash point, as a SIGKILL would end it) in the middle of following or
unfollowing a hashtag (kicau/tag_follows.py): after the claim, before the list entry and the follower row; after
those were removed, before the claim was given back. The request answers a Mastodon error, never 500; its retry,
once `stack up` has restarted the service, finishes what the crash left: the hashtag followed once, listed once,
and its statuses delivered (or, unfollowed, none of these)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import User, eventually
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.timeline.test_home_invariant import home_ids
from tests.timeline.test_tag_follows import fresh_tag


def _change(http: httpx.Client, user: User, tag: str, undo: bool = False) -> httpx.Response:
    return http.post(f"/api/v1/tags/{tag}/{'unfollow' if undo else 'follow'}", headers=user.auth)


def _state(http: httpx.Client, reader: User, tag: str) -> tuple[bool, list[str]]:
    """``following`` as the reader reads the Tag, and the names the reader's followed hashtags list."""
    answer = http.get(f"/api/v1/tags/{tag}", headers=reader.auth)
    following = answer.status_code == 200 and bool(answer.json()["following"])
    return following, [t["name"] for t in http.get("/api/v1/followed_tags", headers=reader.auth).json()]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("crash_at", ["graph.tag_follow.claimed", "graph.tag_unfollow.unlisted"])
def test_a_tag_follow_retried_after_a_graph_crash_is_whole(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults, crash_at: str,
) -> None:
    author, reader = make_user("tfc_a"), make_user("tfc_r")
    tag = fresh_tag()
    undo = crash_at.startswith("graph.tag_unfollow")
    if undo:
        assert _change(http, reader, tag).status_code == 200
    assert home_ids(http, reader) == []  # a timeline of its own, so the fanout writes into it
    # The author's too: waiting for its status there then waits for the fanout (a missing one would be rebuilt
    # from Cassandra, where the status is before the fanout has seen it).
    assert home_ids(http, author) == []

    broken, restart_seconds = faults.crash_during("graph", crash_at, lambda: _change(http, reader, tag, undo))

    retried = _change(http, reader, tag, undo)
    assert retried.status_code == 200, retried.text
    assert retried.json()["following"] is not undo
    assert _state(http, reader, tag) == ((False, []) if undo else (True, [tag]))
    # What the fanout reads agrees: a status with the hashtag reaches the reader's home timeline, or does not.
    # (Statuses of one author are fanned out in order: once the later one reached the author's own timeline,
    # the earlier one has been dealt with.)
    shown = http.post("/api/v1/statuses", headers=author.auth, json={"status": f"for #{tag}"}).json()["id"]
    later = http.post("/api/v1/statuses", headers=author.auth, json={"status": "later"}).json()["id"]
    eventually(lambda: later in home_ids(http, author) or None)
    assert home_ids(http, reader) == ([] if undo else [shown])
    # A repeat changes nothing; a follow made again after an unfollow is listed once.
    assert _change(http, reader, tag).status_code == 200
    assert _state(http, reader, tag) == (True, [tag])
    harness.figure(f"graph service died at {crash_at}: answered {broken.status_code}; restarted in "
                   f"{restart_seconds:.1f}s; the retry left the hashtag's follow whole")

"""``replies_count`` (kicau/replies.py, kicau/status_tallies.py) through the public API of the running system: as
Mastodon counts it (the live public and unlisted replies, not those below them), wherever the status is shown,
after a delete and its thread, after an Idempotency-Key replay, and counted again from Cassandra once Redis lost
it."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import redis

from kicau import keys
from tests.conftest import User
from tests.timeline.test_threads import context, reply


def replies_count(http: httpx.Client, status_id: str, reader: User | None = None) -> int:
    answer = http.get(f"/api/v1/statuses/{status_id}", headers=reader.auth if reader else {})
    assert answer.status_code == 200, answer.text
    count: int = answer.json()["replies_count"]
    return count


def test_public_and_unlisted_replies_count_and_stop_counting_once_deleted(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    alice, bob, carol = make_user("rc_a"), make_user("rc_b"), make_user("rc_c")
    assert http.post(f"/api/v1/accounts/{alice.id}/follow", headers=carol.auth).status_code == 200
    root = reply(http, alice, None, "what do you think?")
    assert replies_count(http, root) == 0
    first = reply(http, bob, root, "yes")
    second = reply(http, carol, root, "no", visibility="unlisted")
    reply(http, alice, root, "between us", visibility="private")  # Mastodon counts neither of these two
    reply(http, bob, root, f"@{alice.username} psst", visibility="direct")
    below = reply(http, alice, first, "why?")  # a reply to a reply counts under its own parent only
    assert replies_count(http, root) == 2
    assert replies_count(http, first) == 1 and replies_count(http, below) == 0

    # The same count wherever the status is shown: the author's profile and a follower's home.
    profile = http.get(f"/api/v1/accounts/{alice.id}/statuses", headers=carol.auth).json()
    assert {s["id"]: s["replies_count"] for s in profile}[root] == 2
    home = http.get("/api/v1/timelines/home?limit=40", headers=carol.auth).json()
    assert {s["id"]: s["replies_count"] for s in home}[root] == 2

    # A deleted reply stops counting; its thread is still reached through it.
    assert http.delete(f"/api/v1/statuses/{first}", headers=bob.auth).status_code == 200
    assert replies_count(http, root) == 1
    assert context(http, root, None) == ([], [below, second])

    # Counted again from Cassandra once Redis lost the cached status: the same figure.
    stack_redis.delete(keys.status_cache(int(root)))
    assert replies_count(http, root) == 1
    assert http.delete(f"/api/v1/statuses/{second}", headers=carol.auth).status_code == 200
    assert replies_count(http, root) == 0
    stack_redis.delete(keys.status_cache(int(root)))
    assert replies_count(http, root) == 0


def test_a_replayed_reply_counts_once(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, fan = make_user("rc_r"), make_user("rc_f")
    root = reply(http, author, None, "ask me anything")
    headers = {**fan.auth, "Idempotency-Key": f"reply-{fan.id}"}
    answers = [http.post("/api/v1/statuses", headers=headers, json={"status": "hello", "in_reply_to_id": root})
               for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 3 and len({a.json()["id"] for a in answers}) == 1
    assert replies_count(http, root) == 1

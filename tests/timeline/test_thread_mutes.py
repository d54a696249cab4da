"""Muted threads (kicau/thread_mutes.py) through the public API of the running system: ``muted`` for the muter alone,
on every status of the thread and on every read; muting through a reply or a reblog; nothing in a muted thread
notifies (mentions, favourites, reblogs), while the rest still does; unmuting; bad input; the flag rebuilt from
Cassandra after Redis lost it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import redis

from kicau import keys
from tests.conftest import User, eventually, narrow_token
from tests.timeline.test_favourites import favourite
from tests.timeline.test_notifications import follow, notifications, summary
from tests.timeline.test_visibility import post


def mute(http: httpx.Client, user: User, status_id: str, undo: bool = False) -> dict[str, Any]:
    answer = http.post(f"/api/v1/statuses/{status_id}/{'unmute' if undo else 'mute'}", headers=user.auth)
    assert answer.status_code == 200, answer.text
    shown: dict[str, Any] = answer.json()
    assert shown["id"] == status_id
    return shown


def muted(http: httpx.Client, status_id: str, reader: User | None = None) -> bool:
    answer = http.get(f"/api/v1/statuses/{status_id}", headers=reader.auth if reader else {})
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["muted"])


def home_flags(http: httpx.Client, reader: User) -> dict[str, bool]:
    answer = http.get("/api/v1/timelines/home", headers=reader.auth)
    assert answer.status_code == 200, answer.text
    return {status["id"]: status["muted"] for status in answer.json()}


def test_a_muted_thread_reads_muted_for_its_muter_alone(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    alice, bob, carol = make_user("thm_a"), make_user("thm_b"), make_user("thm_c")
    follow(http, alice, bob)
    root = post(http, alice, "a thread")
    reply = post(http, bob, "a reply", in_reply_to_id=root)
    deeper = post(http, alice, "a reply to the reply", in_reply_to_id=reply)
    elsewhere = post(http, bob, "another thread")

    # Muted through a reply: the whole thread, from its root down.
    assert mute(http, alice, reply)["muted"] is True
    assert mute(http, alice, reply)["muted"] is True  # again: one mute still
    assert [muted(http, s, alice) for s in (root, reply, deeper, elsewhere)] == [True, True, True, False]
    assert [muted(http, s, bob) for s in (root, reply, deeper)] == [False, False, False]
    assert muted(http, root) is False
    eventually(lambda: {root, reply, deeper, elsewhere} <= home_flags(http, alice).keys())
    assert home_flags(http, alice) == {root: True, reply: True, deeper: True, elsewhere: False}
    context = http.get(f"/api/v1/statuses/{reply}/context", headers=alice.auth).json()
    assert [s["muted"] for s in (*context["ancestors"], *context["descendants"])] == [True, True]

    # Redis lost the reader's marks: the flag comes back from Cassandra's claims.
    stack_redis.delete(keys.marks(int(alice.id)))
    assert muted(http, deeper, alice) is True

    # Unmuted through another status of the thread; again: nothing to undo.
    assert mute(http, alice, root, undo=True)["muted"] is False
    assert mute(http, alice, root, undo=True)["muted"] is False
    assert home_flags(http, alice) == {root: False, reply: False, deeper: False, elsewhere: False}

    # A reblog mutes the thread of the status it reblogs, which the client shows.
    boost = http.post(f"/api/v1/statuses/{root}/reblog", headers=carol.auth)
    assert boost.status_code == 200, boost.text
    shown = mute(http, alice, boost.json()["id"])
    assert shown["reblog"]["id"] == root and shown["reblog"]["muted"] is True
    assert muted(http, deeper, alice) is True


def test_nothing_in_a_muted_thread_notifies(http: httpx.Client, make_user: Callable[..., User]) -> None:
    alice, bob = make_user("thn_a"), make_user("thn_b")
    quiet = post(http, alice, "mute me")
    loud = post(http, alice, "not this one")
    assert mute(http, alice, quiet)["muted"] is True

    # Each in the muted thread first, then one of each outside it. Bob's statuses, favourites and reblogs travel
    # on one key, in order: once the last ones notified, the first ones would have.
    post(http, bob, f"@{alice.username} replying in the muted thread", in_reply_to_id=quiet)
    favourite(http, bob, quiet)
    assert http.post(f"/api/v1/statuses/{quiet}/reblog", headers=bob.auth).status_code == 200
    mention = post(http, bob, f"@{alice.username} somewhere else")
    favourite(http, bob, loud)
    assert http.post(f"/api/v1/statuses/{loud}/reblog", headers=bob.auth).status_code == 200
    expected = {("mention", bob.id, mention), ("favourite", bob.id, loud), ("reblog", bob.id, loud)}
    eventually(lambda: set(summary(notifications(http, alice))) >= expected)
    assert set(summary(notifications(http, alice))) == expected

    # Unmuted, the thread notifies again.
    mute(http, alice, quiet, undo=True)
    again = post(http, bob, f"@{alice.username} heard now", in_reply_to_id=quiet)
    eventually(lambda: ("mention", bob.id, again) in summary(notifications(http, alice)))


def test_bad_mute_input_is_a_clear_4xx(
    http: httpx.Client, make_user: Callable[..., User], app_credentials: dict[str, Any],
) -> None:
    author, stranger = make_user("thb_a"), make_user("thb_s")
    hidden = post(http, author, "followers only", visibility="private")
    public = post(http, author, "public")
    reading_only = narrow_token(http, app_credentials, stranger, "read write:statuses")
    for path, headers, code in [
        (f"/api/v1/statuses/{hidden}/mute", stranger.auth, 404),  # not the stranger's to see: missing to it
        (f"/api/v1/statuses/{hidden}/unmute", stranger.auth, 404),
        ("/api/v1/statuses/99999999999/mute", stranger.auth, 404),
        ("/api/v1/statuses/not-an-id/mute", stranger.auth, 404),
        (f"/api/v1/statuses/{public}/mute", {}, 401),
        (f"/api/v1/statuses/{public}/mute", reading_only, 403),
    ]:
        answer = http.post(path, headers=headers)
        assert answer.status_code == code, (path, answer.text)
        assert set(answer.json()) == {"error"}, answer.text
    assert muted(http, public, stranger) is False  # nothing was written
    assert muted(http, hidden, author) is False

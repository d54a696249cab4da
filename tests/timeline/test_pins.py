"""Pinned statuses (kicau/pins.py) through the public API of the running system: pinning one's own statuses,
``pinned`` on the author's reads (and for no one else), the profile's ``pinned=true`` for every reader as it may
see them, Mastodon's rules (not someone else's, not a boost, not a direct one, at most five) answered 422, a
deleted status leaving its pin, bad input, and the flag rebuilt from Cassandra after Redis lost it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import redis

from kicau import keys
from tests.conftest import User
from tests.timeline.test_favourites import ids
from tests.timeline.test_notifications import follow
from tests.timeline.test_reblogs import reblog
from tests.timeline.test_visibility import post


def pin(http: httpx.Client, user: User, status_id: str, undo: bool = False) -> dict[str, Any]:
    answer = http.post(f"/api/v1/statuses/{status_id}/{'unpin' if undo else 'pin'}", headers=user.auth)
    assert answer.status_code == 200, answer.text
    shown: dict[str, Any] = answer.json()
    assert shown["id"] == status_id
    return shown


def pinned(http: httpx.Client, author: User, reader: User | None = None, query: str = "") -> list[str]:
    answer = http.get(f"/api/v1/accounts/{author.id}/statuses?pinned=true{query}",
                      headers=reader.auth if reader else {})
    assert answer.status_code == 200, answer.text
    assert "link" not in answer.headers, "a pinned page links nowhere"
    return ids(answer)


def flag(http: httpx.Client, status_id: str, reader: User | None = None) -> bool:
    answer = http.get(f"/api/v1/statuses/{status_id}", headers=reader.auth if reader else {})
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["pinned"])


def test_pinned_statuses_come_first_on_the_profile_most_recently_pinned_first(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    author, follower, stranger = make_user("pin_a"), make_user("pin_f"), make_user("pin_s")
    follow(http, follower, author)
    first, second = post(http, author, "pin me first"), post(http, author, "pin me second")
    private = post(http, author, "followers only, pinned", visibility="private")
    post(http, author, "not pinned")
    assert pin(http, author, second)["pinned"] is True
    assert pin(http, author, first)["pinned"] is True
    assert pin(http, author, first)["pinned"] is True  # again: one pin still
    pin(http, author, private)

    # Most recently pinned first, to each reader as it may see them (followers-only to followers alone).
    assert pinned(http, author, author) == [private, first, second]
    assert pinned(http, author, follower) == [private, first, second]
    assert pinned(http, author, stranger) == [first, second] == pinned(http, author)
    # Mastodon's cursors (status ids) and limit cut the few there are.
    assert pinned(http, author, author, "&limit=1") == [private]
    assert pinned(http, author, author, f"&max_id={private}") == [first, second]
    assert pinned(http, author, author, f"&since_id={first}") == [private, second]
    # ``pinned`` on the author's reads alone: the status, its profile, its home timeline.
    assert flag(http, first, author) and not flag(http, first, follower) and not flag(http, first)
    profile = http.get(f"/api/v1/accounts/{author.id}/statuses", headers=author.auth).json()
    assert {s["id"]: s["pinned"] for s in profile} == {s["id"]: s["id"] in (first, second, private) for s in profile}
    home = http.get("/api/v1/timelines/home", headers=author.auth).json()
    assert [s["id"] for s in home if s["pinned"]] == [private, second, first]

    # Unpin (and again: nothing to do); the rest stay in order.
    assert pin(http, author, first, undo=True)["pinned"] is False
    assert pin(http, author, first, undo=True)["pinned"] is False
    assert pinned(http, author, author) == [private, second]
    assert not flag(http, first, author)


def test_mastodons_rules_for_what_may_be_pinned(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, other = make_user("pinr_a"), make_user("pinr_o")
    theirs = post(http, other, "someone else's")
    direct = post(http, author, f"@{other.username} just us", visibility="direct")
    boost = reblog(http, author, theirs)["id"]
    for status_id, error in [
        (theirs, "Validation failed: Someone else's post cannot be pinned"),
        (boost, "Validation failed: A boost cannot be pinned"),
        (direct, "Validation failed: Posts that are only visible to mentioned users cannot be pinned"),
    ]:
        answer = http.post(f"/api/v1/statuses/{status_id}/pin", headers=author.auth)
        assert (answer.status_code, answer.json()) == (422, {"error": error}), answer.text
    assert pinned(http, author, author) == []

    # At most five: the sixth is refused and nothing changes; a deleted one leaves its pin, and with it a place.
    five = [post(http, author, f"pinned {n}") for n in range(5)]
    for status_id in five:
        pin(http, author, status_id)
    sixth = post(http, author, "one too many")
    answer = http.post(f"/api/v1/statuses/{sixth}/pin", headers=author.auth)
    assert answer.status_code == 422, answer.text
    assert answer.json() == {"error": "Validation failed: You have already pinned the maximum number of posts"}
    assert pinned(http, author, author) == five[::-1] and not flag(http, sixth, author)
    assert http.get("/api/v2/instance").json()["configuration"]["accounts"]["max_pinned_statuses"] == 5
    assert http.delete(f"/api/v1/statuses/{five[2]}", headers=author.auth).status_code == 200
    assert pinned(http, author, author) == [five[4], five[3], five[1], five[0]]
    assert pin(http, author, sixth)["pinned"] is True
    assert pinned(http, author, author) == [sixth, five[4], five[3], five[1], five[0]]


def test_bad_pin_input_is_a_clear_4xx(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, stranger = make_user("pinb_a"), make_user("pinb_s")
    hidden = post(http, author, "followers only", visibility="private")
    public = post(http, author, "public")
    for path, who, code in [
        (f"/api/v1/statuses/{hidden}/pin", stranger, 404),  # not the stranger's to see: missing to it
        (f"/api/v1/statuses/{hidden}/unpin", stranger, 404),
        ("/api/v1/statuses/99999999999/pin", author, 404),
        ("/api/v1/statuses/not-an-id/pin", author, 404),
        (f"/api/v1/statuses/{public}/pin", None, 401),
        (f"/api/v1/statuses/{public}/unpin", None, 401),
    ]:
        answer = http.post(path, headers=who.auth if who else {})
        assert answer.status_code == code, (path, answer.text)
        assert set(answer.json()) == {"error"}, answer.text
    assert pinned(http, author, author) == []  # nothing was written
    answer = http.get(f"/api/v1/accounts/{author.id}/statuses?pinned=true&max_id=x")
    assert answer.status_code == 400 and set(answer.json()) == {"error"}, answer.text


def test_the_flag_comes_back_after_redis_lost_it(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    author = make_user("pinl_a")
    kept = post(http, author, "kept pinned")
    pin(http, author, kept)
    stack_redis.delete(keys.marks(int(author.id)))
    assert flag(http, kept, author)  # the set built again from the pins' claims
    assert pinned(http, author, author) == [kept]

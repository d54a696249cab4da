"""Bookmarks (kicau/bookmarks.py, kicau/reader_marks.py) through the public API of the running system: bookmarking
and giving back, ``bookmarked`` wherever the reader sees the status (and for no one else), ``/api/v1/bookmarks``
with its cursors, a bookmark beside a favourite, bad input, and flags rebuilt from Cassandra after Redis lost
them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import redis

from kicau import keys
from tests.conftest import User
from tests.timeline.test_favourites import favourite, ids, next_link
from tests.timeline.test_visibility import post


def bookmark(http: httpx.Client, user: User, status_id: str, undo: bool = False) -> dict[str, Any]:
    answer = http.post(f"/api/v1/statuses/{status_id}/{'unbookmark' if undo else 'bookmark'}", headers=user.auth)
    assert answer.status_code == 200, answer.text
    shown: dict[str, Any] = answer.json()
    assert shown["id"] == status_id
    return shown


def flags(http: httpx.Client, status_id: str, reader: User | None = None) -> tuple[bool, bool]:
    """(bookmarked, favourited) of a status as ``reader`` (or no one) reads it by id."""
    answer = http.get(f"/api/v1/statuses/{status_id}", headers=reader.auth if reader else {})
    assert answer.status_code == 200, answer.text
    return answer.json()["bookmarked"], answer.json()["favourited"]


def test_bookmarked_for_the_reader_alone_everywhere(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, reader, other = make_user("bmk_a"), make_user("bmk_r"), make_user("bmk_o")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth).status_code == 200
    status = post(http, author, "keep this")
    answered = bookmark(http, reader, status)
    assert (answered["bookmarked"], answered["favourited"], answered["favourites_count"]) == (True, False, 0)
    assert bookmark(http, reader, status)["bookmarked"] is True  # again: one bookmark still
    assert flags(http, status, reader) == (True, False)
    assert flags(http, status, other) == (False, False) and flags(http, status) == (False, False)

    # On every read of the reader's: home, the author's profile, the bookmarks themselves.
    home = {s["id"]: s["bookmarked"] for s in http.get("/api/v1/timelines/home", headers=reader.auth).json()}
    assert home[status] is True
    profile = http.get(f"/api/v1/accounts/{author.id}/statuses", headers=reader.auth).json()
    assert {s["id"]: s["bookmarked"] for s in profile}[status] is True
    assert [s["bookmarked"] for s in http.get("/api/v1/bookmarks", headers=reader.auth).json()] == [True]

    # Beside a favourite, each flag its own; giving one back leaves the other.
    favourite(http, reader, status)
    assert flags(http, status, reader) == (True, True)
    undone = bookmark(http, reader, status, undo=True)
    assert (undone["bookmarked"], undone["favourited"], undone["favourites_count"]) == (False, True, 1)
    assert bookmark(http, reader, status, undo=True)["bookmarked"] is False  # again: nothing to give back
    assert ids(http.get("/api/v1/bookmarks", headers=reader.auth)) == []
    assert ids(http.get("/api/v1/favourites", headers=reader.auth)) == [status]


def test_bookmarks_page_newest_first_by_bookmark(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, reader = make_user("bml_a"), make_user("bml_r")
    statuses = [post(http, author, f"status {n}") for n in range(3)]
    for status in (statuses[1], statuses[0], statuses[2]):  # bookmarked in this order
        bookmark(http, reader, status)
    newest_first = [statuses[2], statuses[0], statuses[1]]
    assert ids(http.get("/api/v1/bookmarks", headers=reader.auth)) == newest_first

    walked: list[str] = []
    url: str | None = "/api/v1/bookmarks?limit=1"
    while url:
        answer = http.get(url, headers=reader.auth)
        if not answer.json():
            break
        walked += ids(answer)
        url = next_link(answer)
    assert walked == newest_first
    first = http.get("/api/v1/bookmarks?limit=1", headers=reader.auth)
    previous = re.search(r'<([^>]+)>; rel="prev"', first.headers["link"])
    assert previous is not None and ids(http.get(previous.group(1), headers=reader.auth)) == []

    # A deleted status leaves the list.
    assert http.delete(f"/api/v1/statuses/{statuses[0]}", headers=author.auth).status_code == 200
    assert ids(http.get("/api/v1/bookmarks", headers=reader.auth)) == [statuses[2], statuses[1]]


def test_bad_bookmark_input_is_a_clear_4xx(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, stranger = make_user("bmb_a"), make_user("bmb_s")
    hidden = post(http, author, "followers only", visibility="private")
    public = post(http, author, "public")
    for path, who, code in [
        (f"/api/v1/statuses/{hidden}/bookmark", stranger, 404),  # not the stranger's to see: missing to it
        (f"/api/v1/statuses/{hidden}/unbookmark", stranger, 404),
        ("/api/v1/statuses/99999999999/bookmark", stranger, 404),
        ("/api/v1/statuses/not-an-id/bookmark", stranger, 404),
        (f"/api/v1/statuses/{public}/bookmark", None, 401),
        (f"/api/v1/statuses/{public}/unbookmark", None, 401),
    ]:
        answer = http.post(path, headers=who.auth if who else {})
        assert answer.status_code == code, (path, answer.text)
        assert set(answer.json()) == {"error"}, answer.text
    assert ids(http.get("/api/v1/bookmarks", headers=stranger.auth)) == []  # nothing was written
    assert http.get("/api/v1/bookmarks").status_code == 401
    for query in ("?max_id=x", "?limit=many", "?min_id=-1"):
        answer = http.get(f"/api/v1/bookmarks{query}", headers=stranger.auth)
        assert answer.status_code == 400 and set(answer.json()) == {"error"}, (query, answer.text)


def test_flags_come_back_after_redis_lost_them(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    author, reader = make_user("bmr_a"), make_user("bmr_r")
    kept, liked = post(http, author, "kept"), post(http, author, "liked")
    bookmark(http, reader, kept)
    favourite(http, reader, liked)
    stack_redis.delete(keys.marks(int(reader.id)))
    assert flags(http, kept, reader) == (True, False)  # the set built again from both kinds of claims
    assert flags(http, liked, reader) == (False, True)
    # A bookmark into a set Redis lost (it has no "0"): the next read merges the claims in.
    stack_redis.delete(keys.marks(int(reader.id)))
    third = post(http, author, "and this")
    bookmark(http, reader, third)
    assert flags(http, kept, reader) == (True, False) and flags(http, third, reader) == (True, False)

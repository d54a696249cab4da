"""Favourites (kicau/favourites.py) through the public API of the running system: favouriting and giving back,
``favourites_count`` and ``favourited`` wherever a status is shown, ``/api/v1/favourites`` and ``favourited_by``
with their cursors, the author's ``favourite`` notification (recorded, streamed, gone with the favourite), bad
input, and counts and flags rebuilt from Cassandra after Redis lost them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import redis

from kicau import keys
from tests.conftest import User, eventually
from tests.gateway.test_streaming import read_events
from tests.timeline.test_notifications import follow, notifications, summary
from tests.timeline.test_visibility import post, user_streams


def favourite(http: httpx.Client, user: User, status_id: str, undo: bool = False) -> dict[str, Any]:
    answer = http.post(f"/api/v1/statuses/{status_id}/{'unfavourite' if undo else 'favourite'}", headers=user.auth)
    assert answer.status_code == 200, answer.text
    shown: dict[str, Any] = answer.json()
    assert shown["id"] == status_id
    return shown


def shown(http: httpx.Client, status_id: str, reader: User | None = None) -> tuple[int, bool]:
    """(favourites_count, favourited) of a status as ``reader`` (or no one) reads it by id."""
    answer = http.get(f"/api/v1/statuses/{status_id}", headers=reader.auth if reader else {})
    assert answer.status_code == 200, answer.text
    return answer.json()["favourites_count"], answer.json()["favourited"]


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [entry["id"] for entry in answer.json()]


def next_link(answer: httpx.Response) -> str | None:
    found = re.search(r'<([^>]+)>; rel="next"', answer.headers.get("link", ""))
    return found.group(1) if found else None


def test_favourites_counts_and_flags_everywhere(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, fan, other = make_user("fav_a"), make_user("fav_f"), make_user("fav_o")
    follow(http, fan, author)
    status = post(http, author, "like me")

    answered = favourite(http, fan, status)
    assert (answered["favourites_count"], answered["favourited"]) == (1, True)
    assert favourite(http, fan, status)["favourites_count"] == 1  # again: one favourite still
    assert favourite(http, other, status)["favourites_count"] == 2
    assert shown(http, status, fan) == (2, True)
    assert shown(http, status, author) == (2, False)
    assert shown(http, status) == (2, False)  # no one reads: nobody's favourite

    # In the home timeline and on the profile, as read by each.
    def home_entry(reader: User) -> tuple[int, bool]:
        entry = next(s for s in http.get("/api/v1/timelines/home", headers=reader.auth).json() if s["id"] == status)
        return entry["favourites_count"], entry["favourited"]

    assert eventually(lambda: home_entry(fan) == (2, True) or None)
    assert home_entry(author) == (2, False)
    profile = http.get(f"/api/v1/accounts/{author.id}/statuses", headers=other.auth).json()
    assert (profile[0]["favourites_count"], profile[0]["favourited"]) == (2, True)

    # Given back: the count and the flag follow; giving back what is not favourited changes nothing.
    undone = favourite(http, fan, status, undo=True)
    assert (undone["favourites_count"], undone["favourited"]) == (1, False)
    assert favourite(http, fan, status, undo=True)["favourites_count"] == 1
    assert home_entry(fan) == (1, False)
    assert shown(http, status, other) == (1, True)


def test_favourites_and_favourited_by_page_newest_first(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, fan = make_user("fvl_a"), make_user("fvl_f")
    statuses = [post(http, author, f"status {n}") for n in range(3)]
    for status in (statuses[1], statuses[0], statuses[2]):  # favourited in this order
        favourite(http, fan, status)
    newest_first = [statuses[2], statuses[0], statuses[1]]
    assert ids(http.get("/api/v1/favourites", headers=fan.auth)) == newest_first

    # One at a time through the Link headers (the cursors are favourite ids, not status ids).
    walked: list[str] = []
    url: str | None = "/api/v1/favourites?limit=1"
    while url:
        answer = http.get(url, headers=fan.auth)
        if not answer.json():
            break
        walked += ids(answer)
        url = next_link(answer)
    assert walked == newest_first
    first = http.get("/api/v1/favourites?limit=1", headers=fan.auth)
    previous = re.search(r'<([^>]+)>; rel="prev"', first.headers["link"])
    assert previous is not None and ids(http.get(previous.group(1), headers=fan.auth)) == []

    # A deleted status leaves the list; one given back too.
    assert http.delete(f"/api/v1/statuses/{statuses[0]}", headers=author.auth).status_code == 200
    favourite(http, fan, statuses[1], undo=True)
    assert ids(http.get("/api/v1/favourites", headers=fan.auth)) == [statuses[2]]

    fans = [make_user(f"fvl_{n}") for n in range(3)]
    for user in fans:
        favourite(http, user, statuses[2])
    by = http.get(f"/api/v1/statuses/{statuses[2]}/favourited_by")
    assert ids(by) == [fans[2].id, fans[1].id, fans[0].id, fan.id]
    assert by.json()[0]["username"] == fans[2].username
    page = http.get(f"/api/v1/statuses/{statuses[2]}/favourited_by?limit=2")
    assert ids(page) == [fans[2].id, fans[1].id]
    following = next_link(page)
    assert following is not None and ids(http.get(following)) == [fans[0].id, fan.id]


def test_the_author_is_notified_and_the_notification_goes_with_the_favourite(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    author, fan = make_user("fvn_a"), make_user("fvn_f")
    own = post(http, author, "my own")
    favourite(http, author, own)  # one's own favourite notifies no one
    with user_streams(gateway_url, http, author, author) as (lines,):
        status = post(http, author, "notify me")
        assert read_events(lines, 1)[0]["event"] == "update"
        favourite(http, fan, status)
        (event,) = read_events(lines, 1)
        assert event["event"] == "notification" and "id" not in event
        streamed = json.loads(event["data"])
        assert (streamed["type"], streamed["account"]["id"], streamed["status"]["id"]) == ("favourite", fan.id, status)
        assert streamed["status"]["favourites_count"] == 1 and streamed["status"]["favourited"] is False
    eventually(lambda: summary(notifications(http, author, "?types[]=favourite")) == [("favourite", fan.id, status)])
    assert notifications(http, author, "?exclude_types[]=favourite") == []
    favourite(http, fan, status, undo=True)
    eventually(lambda: notifications(http, author) == [])


def test_bad_favourite_input_is_a_clear_4xx(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, stranger = make_user("fvb_a"), make_user("fvb_s")
    hidden = post(http, author, "followers only", visibility="private")
    public = post(http, author, "public")
    for path, who, code in [
        (f"/api/v1/statuses/{hidden}/favourite", stranger, 404),  # not the stranger's to see: missing to it
        (f"/api/v1/statuses/{hidden}/unfavourite", stranger, 404),
        ("/api/v1/statuses/99999999999/favourite", stranger, 404),
        ("/api/v1/statuses/not-an-id/favourite", stranger, 404),
        (f"/api/v1/statuses/{public}/favourite", None, 401),
    ]:
        answer = http.post(path, headers=who.auth if who else {})
        assert answer.status_code == code, (path, answer.text)
        assert set(answer.json()) == {"error"}, answer.text
    assert shown(http, hidden, author) == (0, False)  # nothing was written
    assert http.get(f"/api/v1/statuses/{hidden}/favourited_by", headers=stranger.auth).status_code == 404
    assert http.get("/api/v1/favourites").status_code == 401
    for query in ("?max_id=x", "?limit=many", "?min_id=-1"):
        answer = http.get(f"/api/v1/favourites{query}", headers=stranger.auth)
        assert answer.status_code == 400 and set(answer.json()) == {"error"}, (query, answer.text)


def test_counts_and_flags_come_back_after_redis_lost_them(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    author, fan, other = make_user("fvr_a"), make_user("fvr_f"), make_user("fvr_o")
    status = post(http, author, "remember me")
    favourite(http, fan, status)
    favourite(http, other, status)
    stack_redis.delete(keys.status_cache(int(status)), keys.marks(int(fan.id)), keys.marks(int(other.id)))
    assert shown(http, status, fan) == (2, True)  # counted from Cassandra, the set built from the claims
    assert stack_redis.sismember(keys.marks(int(fan.id)), status)
    # A favourite into a set Redis lost (it has no "0"): the next read merges the claims in.
    stack_redis.delete(keys.marks(int(fan.id)))
    second = post(http, author, "and me")
    favourite(http, fan, second)
    assert shown(http, status, fan) == (2, True)
    assert shown(http, second, fan) == (1, True)

"""Reblogs (kicau/reblogs.py) through the public API of the running system: a reblog in the home timelines of the
booster's followers with the reblogged status in it, ``reblogs_count`` and ``reblogged`` wherever that status is
shown, ``reblogged_by``, the author's ``reblog`` notification, the stream's update and delete, who may reblog what,
giving a reblog back (by unreblog or by delete), a deleted status taking its reblogs out of reads, bad input, and
counts and flags rebuilt after Redis lost them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import redis

from kicau import keys
from tests.conftest import User, eventually
from tests.gateway.test_streaming import read_events
from tests.timeline.test_favourites import ids
from tests.timeline.test_notifications import follow, notifications, summary
from tests.timeline.test_visibility import post, user_streams


def reblog(http: httpx.Client, user: User, status_id: str, **body: Any) -> dict[str, Any]:
    answer = http.post(f"/api/v1/statuses/{status_id}/reblog", headers=user.auth, json=body)
    assert answer.status_code == 200, answer.text
    shown: dict[str, Any] = answer.json()
    return shown


def unreblog(http: httpx.Client, user: User, status_id: str) -> dict[str, Any]:
    answer = http.post(f"/api/v1/statuses/{status_id}/unreblog", headers=user.auth)
    assert answer.status_code == 200, answer.text
    shown: dict[str, Any] = answer.json()
    return shown


def counted(http: httpx.Client, status_id: str, reader: User | None = None) -> tuple[int, bool]:
    """(reblogs_count, reblogged) of a status as ``reader`` (or no one) reads it by id."""
    answer = http.get(f"/api/v1/statuses/{status_id}", headers=reader.auth if reader else {})
    assert answer.status_code == 200, answer.text
    return answer.json()["reblogs_count"], answer.json()["reblogged"]


def home(http: httpx.Client, reader: User) -> list[tuple[str, str | None]]:
    """(id, id of the status it reblogs) of each entry of the reader's home timeline."""
    answer = http.get("/api/v1/timelines/home?limit=40", headers=reader.auth)
    assert answer.status_code == 200, answer.text
    return [(s["id"], s["reblog"]["id"] if s["reblog"] else None) for s in answer.json()]


def statuses_count(http: httpx.Client, user: User) -> int:
    return int(http.get(f"/api/v1/accounts/{user.id}").json()["statuses_count"])


def test_a_reblog_reaches_the_boosters_followers_and_goes_when_given_back(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    author, booster, follower = make_user("rb_a"), make_user("rb_b"), make_user("rb_f")
    follow(http, follower, booster)  # the follower does not follow the author
    status = post(http, author, "worth sharing")

    shared = reblog(http, booster, status)
    reblog_id = shared["id"]
    assert reblog_id != status and shared["account"]["id"] == booster.id and shared["content"] == ""
    assert (shared["reblog"]["id"], shared["reblog"]["account"]["id"]) == (status, author.id)
    assert (shared["reblog"]["reblogs_count"], shared["reblog"]["reblogged"]) == (1, True)
    assert reblog(http, booster, status)["id"] == reblog_id  # again: the same reblog
    assert counted(http, status) == (1, False) and counted(http, status, booster) == (1, True)

    eventually(lambda: home(http, follower)[:1] == [(reblog_id, status)], interval=0.5)
    assert [s["id"] for s in http.get(f"/api/v1/accounts/{booster.id}/statuses").json()] == [reblog_id]
    assert statuses_count(http, booster) == 1
    by_id = http.get(f"/api/v1/statuses/{reblog_id}").json()
    assert (by_id["reblog"]["id"], by_id["reblog"]["reblogs_count"]) == (status, 1)
    assert ids(http.get(f"/api/v1/statuses/{status}/reblogged_by")) == [booster.id]
    eventually(lambda: summary(notifications(http, author, "?types[]=reblog")) == [("reblog", booster.id, status)])
    # Reblogs stay out of the public timeline, as on Mastodon.
    assert reblog_id not in ids(http.get("/api/v1/timelines/public?limit=40"))

    given_back = unreblog(http, booster, status)
    assert (given_back["id"], given_back["reblogs_count"], given_back["reblogged"]) == (status, 0, False)
    assert unreblog(http, booster, status)["reblogged"] is False  # again: nothing to give back
    assert counted(http, status, booster) == (0, False)
    eventually(lambda: home(http, follower) == [], interval=0.5)
    assert http.get(f"/api/v1/statuses/{reblog_id}").status_code == 404
    assert ids(http.get(f"/api/v1/statuses/{status}/reblogged_by")) == []
    assert statuses_count(http, booster) == 0
    eventually(lambda: notifications(http, author) == [])

    # Reblogged anew: a new reblog; then given back by deleting it, as Mastodon allows.
    again = reblog(http, booster, status)["id"]
    assert again != reblog_id
    deleted = http.delete(f"/api/v1/statuses/{again}", headers=booster.auth)
    assert deleted.status_code == 200 and deleted.json()["id"] == again, deleted.text
    assert (deleted.json()["text"], deleted.json()["reblog"]["id"]) == ("", status)
    assert counted(http, status, booster) == (0, False)


def test_favouriting_or_bookmarking_a_reblog_marks_the_status_it_reblogs(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    """As on Mastodon: clients act on the id of the timeline's entry, which for a reblog is the reblog's. The
    favourite (counted, notified to the status's author, not to the booster) and the bookmark go to the
    reblogged status; the answer is the reblog, the status inside it marked; giving back by either id works."""
    author, booster, reader = make_user("rbf_a"), make_user("rbf_b"), make_user("rbf_r")
    original = post(http, author, "favour me through a boost")
    boost = reblog(http, booster, original)["id"]

    shown = http.post(f"/api/v1/statuses/{boost}/favourite", headers=reader.auth)
    assert shown.status_code == 200, shown.text
    assert shown.json()["id"] == boost and shown.json()["reblog"]["id"] == original
    assert shown.json()["reblog"]["favourited"] is True and shown.json()["reblog"]["favourites_count"] == 1
    status = http.get(f"/api/v1/statuses/{original}", headers=reader.auth).json()
    assert (status["favourited"], status["favourites_count"]) == (True, 1)
    assert ids(http.get("/api/v1/favourites", headers=reader.auth)) == [original]
    assert http.get(f"/api/v1/statuses/{boost}/favourited_by").json() == []
    assert [a["id"] for a in http.get(f"/api/v1/statuses/{original}/favourited_by").json()] == [reader.id]
    assert eventually(lambda: ("favourite", reader.id, original) in summary(notifications(http, author)))
    assert not any(n["type"] == "favourite" for n in notifications(http, booster))
    # Again, by the status's own id: the same favourite.
    again = http.post(f"/api/v1/statuses/{original}/favourite", headers=reader.auth).json()
    assert (again["favourited"], again["favourites_count"]) == (True, 1)

    marked = http.post(f"/api/v1/statuses/{boost}/bookmark", headers=reader.auth)
    assert marked.status_code == 200, marked.text
    assert marked.json()["reblog"]["bookmarked"] is True
    assert ids(http.get("/api/v1/bookmarks", headers=reader.auth)) == [original]
    assert http.get(f"/api/v1/statuses/{original}", headers=reader.auth).json()["bookmarked"] is True

    # Given back through the reblog's id.
    taken = http.post(f"/api/v1/statuses/{boost}/unfavourite", headers=reader.auth).json()
    assert (taken["reblog"]["favourited"], taken["reblog"]["favourites_count"]) == (False, 0)
    unmarked = http.post(f"/api/v1/statuses/{boost}/unbookmark", headers=reader.auth).json()
    assert unmarked["reblog"]["bookmarked"] is False
    assert ids(http.get("/api/v1/favourites", headers=reader.auth)) == []
    assert ids(http.get("/api/v1/bookmarks", headers=reader.auth)) == []
    status = http.get(f"/api/v1/statuses/{original}", headers=reader.auth).json()
    assert (status["favourited"], status["favourites_count"], status["bookmarked"]) == (False, 0, False)


def test_the_stream_carries_the_reblog_and_its_deletion(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    author, booster, follower = make_user("rbs_a"), make_user("rbs_b"), make_user("rbs_f")
    follow(http, follower, booster)
    status = post(http, author, "stream me")
    with user_streams(gateway_url, http, booster, follower) as (lines,):
        reblog_id = reblog(http, booster, status)["id"]
        (event,) = read_events(lines, 1)
        update = json.loads(event["data"])
        assert (event["event"], update["id"], update["account"]["id"]) == ("update", reblog_id, booster.id)
        assert (update["reblog"]["id"], update["reblog"]["account"]["id"]) == (status, author.id)
        assert update["reblog"]["reblogged"] is False  # as no one in particular sees it
        unreblog(http, booster, status)
        (gone,) = read_events(lines, 1)
        assert (gone["event"], gone["data"]) == ("delete", reblog_id)


def test_who_may_reblog_what(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, fan, stranger = make_user("rbw_a"), make_user("rbw_f"), make_user("rbw_s")
    follow(http, fan, author)
    private = post(http, author, "followers only", visibility="private")
    direct = post(http, author, f"@{fan.username} just you", visibility="direct")
    public = post(http, author, "for all")
    for path, who, code in [
        (f"/api/v1/statuses/{private}/reblog", fan, 403),  # a follower sees it, and may not share it
        (f"/api/v1/statuses/{direct}/reblog", fan, 403),
        (f"/api/v1/statuses/{direct}/reblog", author, 403),
        (f"/api/v1/statuses/{private}/reblog", stranger, 404),  # not the stranger's to see: missing to it
        (f"/api/v1/statuses/{private}/unreblog", stranger, 404),
        ("/api/v1/statuses/99999999999/reblog", fan, 404),
        ("/api/v1/statuses/not-an-id/reblog", fan, 404),
        (f"/api/v1/statuses/{public}/reblog", None, 401),
        (f"/api/v1/statuses/{public}/unreblog", None, 401),
    ]:
        answer = http.post(path, headers=who.auth if who else {})
        assert answer.status_code == code, (path, answer.text)
        assert set(answer.json()) == {"error"}, answer.text
    bad: list[dict[str, Any]] = [{"visibility": "direct"}, {"visibility": "everyone"}, {"visibility": 3},
                                 {"visibility": {}}, {"visibility": ""}]
    for body in bad:
        answer = http.post(f"/api/v1/statuses/{public}/reblog", headers=fan.auth, json=body)
        assert answer.status_code == 422 and set(answer.json()) == {"error"}, (body, answer.text)
    assert counted(http, public, fan) == (0, False)  # nothing was written

    # Its author may share a followers-only status, and the reblog stays followers-only.
    own = reblog(http, author, private, visibility="public")
    assert (own["visibility"], own["reblog"]["id"]) == ("private", private)
    assert http.get(f"/api/v1/statuses/{own['id']}", headers=stranger.auth).status_code == 404
    # Whom the booster chooses; and a reblog of a reblog shares the original.
    quiet = reblog(http, fan, public, visibility="unlisted")
    assert quiet["visibility"] == "unlisted"
    onward = reblog(http, stranger, quiet["id"])
    assert onward["reblog"]["id"] == public and counted(http, public) == (2, False)
    assert http.get(f"/api/v1/statuses/{quiet['id']}/reblogged_by").json() == []


def test_a_deleted_status_takes_its_reblogs_with_it(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    """As on Mastodon: the reblogs are deleted too, out of their boosters' profiles and counts, and their
    readers' streams get a ``delete`` for each."""
    author, booster, other, follower = (make_user("rbd_a"), make_user("rbd_b"), make_user("rbd_o"),
                                        make_user("rbd_f"))
    follow(http, follower, booster)
    status = post(http, author, "soon gone")
    with user_streams(gateway_url, http, booster, follower) as (lines,):  # the booster posts markers
        markers = statuses_count(http, booster)
        reblog_id = reblog(http, booster, status)["id"]
        reblog(http, other, status)
        assert read_events(lines, 1)[0]["id"] == reblog_id
        eventually(lambda: home(http, follower)[:1] == [(reblog_id, status)], interval=0.5)
        assert http.delete(f"/api/v1/statuses/{status}", headers=author.auth).status_code == 200
        (gone,) = read_events(lines, 1)
        assert (gone["event"], gone["data"]) == ("delete", reblog_id)
    eventually(lambda: reblog_id not in [entry for entry, _ in home(http, follower)], interval=0.5)
    assert http.get(f"/api/v1/statuses/{reblog_id}").status_code == 404
    assert reblog_id not in [s["id"] for s in http.get(f"/api/v1/accounts/{booster.id}/statuses").json()]
    assert statuses_count(http, booster) == markers
    assert http.get(f"/api/v1/accounts/{other.id}/statuses").json() == [] and statuses_count(http, other) == 0
    assert notifications(http, author) == []


def test_counts_and_flags_come_back_after_redis_lost_them(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    author, booster, other = make_user("rbr_a"), make_user("rbr_b"), make_user("rbr_o")
    status = post(http, author, "remember my reblogs")
    reblog_id = reblog(http, booster, status)["id"]
    reblog(http, other, status)
    stack_redis.delete(keys.status_cache(int(status)), keys.status_cache(int(reblog_id)),
                       keys.marks(int(booster.id)))
    assert counted(http, status, booster) == (2, True)  # counted from Cassandra, the set built from the claims
    shown = http.get(f"/api/v1/statuses/{reblog_id}", headers=booster.auth).json()
    assert (shown["reblog"]["id"], shown["reblog"]["reblogs_count"], shown["reblog"]["reblogged"]) == (status, 2, True)

"""Blocks and mutes as the reader's pages show them (kicau/blocks_and_mutes.py, ``Hides``; kicau/status_cards.py),
against the running stack: Mastodon's rules for what is already written.

* A status of an account that blocks the reader is not the reader's to see anywhere: by its id (404, and nothing
  done to it: no favourite, reblog or reply), on its author's profile, in a thread (which goes on past it), in its
  bookmarks, as a reblog
  in its home timeline, in the public timeline. Anyone else still sees it; an unblock gives it back.
* The statuses of an account the reader blocks or mutes leave its home timeline (kicau/fanout), the public and
  hashtag timelines and threads (the thread goes on past them), and another account's reblog of one leaves every
  page, a profile's included; the status itself is still shown by its id and on its author's profile, and in the
  reader's own reblog of it, as on Mastodon.
  A reblog already in the home timeline when the mute is made leaves it too, and a mute with a duration gives
  everything back when it ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import User, eventually
from tests.graph.test_blocks_and_mutes import change, follow
from tests.timeline.test_home_invariant import home_ids
from tests.timeline.test_visibility import post, profile

NOT_FOUND = {"error": "Record not found"}


def reblog(http: httpx.Client, user: User, status_id: str) -> str:
    answer = http.post(f"/api/v1/statuses/{status_id}/reblog", headers=user.auth)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def reply(http: httpx.Client, author: User, parent: str, text: str) -> str:
    return post(http, author, text, in_reply_to_id=parent)


def thread(http: httpx.Client, reader: User | None, status_id: str) -> tuple[list[str], list[str]]:
    answer = http.get(f"/api/v1/statuses/{status_id}/context", headers=reader.auth if reader else {})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return [s["id"] for s in body["ancestors"]], [s["id"] for s in body["descendants"]]


def home_reblogs(http: httpx.Client, reader: User) -> list[str]:
    answer = http.get("/api/v1/timelines/home?limit=40", headers=reader.auth)
    assert answer.status_code == 200, answer.text
    return [s["reblog"]["id"] for s in answer.json() if s["reblog"]]


def profile_reblogs(http: httpx.Client, author: User, reader: User) -> list[str]:
    answer = http.get(f"/api/v1/accounts/{author.id}/statuses?limit=40", headers=reader.auth)
    assert answer.status_code == 200, answer.text
    return [s["reblog"]["id"] for s in answer.json() if s["reblog"]]


def public_ids(http: httpx.Client, reader: User) -> list[str]:
    answer = http.get("/api/v1/timelines/public?limit=40", headers=reader.auth)
    assert answer.status_code == 200, answer.text
    return [s["id"] for s in answer.json()]


def refused(answer: httpx.Response, status: int, body: dict[str, str]) -> bool:
    return (answer.status_code, answer.json()) == (status, body)


def test_a_blockers_statuses_are_not_the_blocked_accounts_to_see(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    blocker, blocked, friend = make_user("hb_a"), make_user("hb_b"), make_user("hb_c")
    assert follow(http, blocked, friend).status_code == 200
    said = post(http, blocker, "the blocker's")
    answered = reply(http, friend, said, "the friend's answer")
    again = reply(http, blocker, answered, "the blocker answers back")
    last = reply(http, friend, again, "the friend's last word")
    shared = reblog(http, friend, said)
    assert http.post(f"/api/v1/statuses/{said}/bookmark", headers=blocked.auth).status_code == 200
    eventually(lambda: shared in home_ids(http, blocked) or None)
    assert thread(http, blocked, answered) == ([said], [again, last])

    change(http, blocker, blocked, "block")

    # By its id, and every action on it: as if it did not exist.
    assert refused(http.get(f"/api/v1/statuses/{said}", headers=blocked.auth), 404, NOT_FOUND)
    for action in ("favourite", "reblog", "bookmark", "pin"):
        answer = http.post(f"/api/v1/statuses/{said}/{action}", headers=blocked.auth)
        assert answer.status_code == 404, (action, answer.text)
        assert answer.json() == NOT_FOUND, (action, answer.text)
    for listing in ("favourited_by", "reblogged_by", "context"):
        assert refused(http.get(f"/api/v1/statuses/{said}/{listing}", headers=blocked.auth), 404, NOT_FOUND)
    answer = http.post("/api/v1/statuses", headers=blocked.auth,
                       json={"status": "a reply", "in_reply_to_id": said})
    assert answer.status_code == 422, answer.text
    # Its author's profile is empty to it; the thread leaves the blocker's statuses out and goes on past them, up
    # and down, as Mastodon walks it; the bookmark and the reblog are gone from its pages.
    assert profile(http, blocker, blocked) == []
    assert thread(http, blocked, answered) == ([], [last])
    assert thread(http, blocked, last) == ([answered], [])
    bookmarks = http.get("/api/v1/bookmarks", headers=blocked.auth)
    assert bookmarks.status_code == 200 and bookmarks.json() == [], bookmarks.text
    eventually(lambda: shared not in home_ids(http, blocked) or None)
    assert said not in public_ids(http, blocked) and again not in public_ids(http, blocked)
    # Everyone else sees them as before.
    for reader in (None, friend):
        assert profile(http, blocker, reader)[:2] == [again, said]
        assert thread(http, reader, answered) == ([said], [again, last])
    assert http.get(f"/api/v1/statuses/{said}").status_code == 200
    assert shared in home_ids(http, friend)

    # An unblock gives them back (the follows it ended stay ended).
    change(http, blocker, blocked, "unblock")
    eventually(lambda: http.get(f"/api/v1/statuses/{said}", headers=blocked.auth).status_code == 200 or None)
    assert profile(http, blocker, blocked)[:2] == [again, said]
    assert thread(http, blocked, answered) == ([said], [again, last])
    assert shared in home_ids(http, blocked)


def test_what_a_reader_blocks_or_mutes_leaves_its_pages_but_stays_on_their_own(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    reader, muted, blocked, friend = make_user("hm_r"), make_user("hm_m"), make_user("hm_b"), make_user("hm_f")
    assert follow(http, reader, friend).status_code == 200
    opening = post(http, friend, "the friend opens a thread")
    muted_reply = reply(http, muted, opening, "the muted account joins in")
    friend_reply = reply(http, friend, muted_reply, "the friend answers the muted account")
    blocked_reply = reply(http, blocked, opening, "the blocked account joins in")
    muted_said, blocked_said = post(http, muted, "the muted account's"), post(http, blocked, "the blocked one's")
    shared = [reblog(http, friend, muted_said), reblog(http, friend, blocked_said)]
    eventually(lambda: set(shared) <= set(home_ids(http, reader)) or None)

    change(http, reader, muted, "mute")
    change(http, reader, blocked, "block")

    # The reblogs that were already in the home timeline leave it, and the friend's profile, as the reader reads them.
    eventually(lambda: not set(shared) & set(home_ids(http, reader)) or None)
    assert opening in home_ids(http, reader)
    assert profile_reblogs(http, friend, reader) == []
    assert profile_reblogs(http, friend, make_user("hm_x")) == [blocked_said, muted_said]
    # The thread goes on past what the reader hides.
    assert thread(http, reader, opening) == ([], [friend_reply])
    assert thread(http, reader, friend_reply) == ([opening], [])
    # The public timeline leaves them out.
    public = public_ids(http, reader)
    assert opening in public and not {muted_reply, blocked_reply, muted_said, blocked_said} & set(public)
    # Their own profiles and their statuses by id are still shown, as Mastodon shows them.
    assert profile(http, muted, reader)[:2] == [muted_said, muted_reply]
    assert profile(http, blocked, reader)[:2] == [blocked_said, blocked_reply]
    for status_id in (muted_said, blocked_said):
        assert http.get(f"/api/v1/statuses/{status_id}", headers=reader.auth).status_code == 200
    # A blocked account's statuses may not be favourited or reblogged (a muted one's may), as on Mastodon.
    forbidden = {"error": "This action is not allowed"}
    for action in ("favourite", "reblog"):
        assert refused(http.post(f"/api/v1/statuses/{blocked_said}/{action}", headers=reader.auth), 403, forbidden)
    assert http.post(f"/api/v1/statuses/{muted_said}/favourite", headers=reader.auth).status_code == 200
    # The reader's own reblog of a muted account's status is its own to see, on its profile and in its home.
    own = reblog(http, reader, muted_said)
    assert profile_reblogs(http, reader, reader) == [muted_said]
    eventually(lambda: own in home_ids(http, reader) or None)

    # Undone, everything is back.
    change(http, reader, muted, "unmute")
    change(http, reader, blocked, "unblock")
    eventually(lambda: set(shared) <= set(home_ids(http, reader)) or None)
    assert thread(http, reader, opening) == ([], [muted_reply, friend_reply, blocked_reply])
    assert profile_reblogs(http, friend, reader) == [blocked_said, muted_said]


def test_a_mute_with_a_duration_gives_everything_back_when_it_ends(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    reader, muted, friend = make_user("hd_r"), make_user("hd_m"), make_user("hd_f")
    assert follow(http, reader, friend).status_code == 200
    shared = reblog(http, friend, post(http, muted, "reblogged before the mute"))
    eventually(lambda: shared in home_ids(http, reader) or None)
    # The page is read (and its copy of the reader's hides kept, kicau/reader_copies.py) before the mute ends.
    started = time.monotonic()
    change(http, reader, muted, "mute", duration=4)
    assert shared not in home_ids(http, reader)
    assert time.monotonic() - started < 4, "the machine was too slow to see the mute before it ended"
    eventually(lambda: shared in home_ids(http, reader) or None, timeout=30, interval=0.5)

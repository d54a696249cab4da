"""Followed hashtags against the running stack (kicau/tag_follows.py): following and unfollowing
(``/api/v1/tags/:name/follow``, ``/unfollow``), the Tag's ``following``, ``/api/v1/followed_tags`` with Mastodon's
cursors; a followed hashtag's public statuses (never an unlisted, private or direct one, nor a reblog) in the
follower's home timeline and on its user stream, once each, their deletions taken out; nothing after an
unfollow; bad input answered 4xx."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import redis

from tests.conftest import User, eventually, narrow_token
from tests.gateway.test_streaming import read_events, warm_until_seen
from tests.timeline.test_home_invariant import home_ids
from tests.timeline.test_large_accounts import in_home_feed
from tests.timeline.test_visibility import post


def fresh_tag() -> str:
    """A hashtag no other test uses (the tables outlive a test)."""
    return "ft" + uuid.uuid4().hex[:12]


def follow_tag(http: httpx.Client, user: User, tag: str, change: str = "follow") -> dict[str, Any]:
    answer = http.post(f"/api/v1/tags/{tag}/{change}", headers=user.auth)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def followed(http: httpx.Client, user: User, query: str = "") -> httpx.Response:
    answer = http.get(f"/api/v1/followed_tags{query}", headers=user.auth)
    assert answer.status_code == 200, answer.text
    return answer


def names(answer: httpx.Response) -> list[str]:
    return [tag["name"] for tag in answer.json()]


def test_following_a_hashtag(http: httpx.Client, make_user: Callable[..., User]) -> None:
    reader, other = make_user("ftag_r"), make_user("ftag_o")
    first, second, third = fresh_tag(), fresh_tag(), fresh_tag()

    # Any hashtag's name may be followed, used or not yet, in any case; again changes nothing.
    tag = follow_tag(http, reader, first.upper())
    assert (tag["name"], tag["following"], len(tag["history"])) == (first, True, 7), tag
    assert tag["url"].endswith(f"/tags/{first}")
    assert follow_tag(http, reader, f"%23{first}")["following"] is True
    assert names(followed(http, reader)) == [first]
    assert all(t["following"] is True for t in followed(http, reader).json())

    # The Tag says so to its follower alone; no one else finds a hashtag no public status has carried.
    answer = http.get(f"/api/v1/tags/{first}", headers=reader.auth)
    assert (answer.status_code, answer.json()["following"]) == (200, True), answer.text
    for headers in (other.auth, {}):
        answer = http.get(f"/api/v1/tags/{first}", headers=headers)
        assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), answer.text
    # Once a public status carries it, everyone finds it; ``following`` as each reader's own.
    post(http, other, f"now in use #{first}")
    eventually(lambda: http.get(f"/api/v1/tags/{first}").status_code == 200 or None)
    assert http.get(f"/api/v1/tags/{first}", headers=other.auth).json()["following"] is False
    assert "following" not in http.get(f"/api/v1/tags/{first}").json()  # an anonymous reader follows nothing
    assert http.get(f"/api/v1/tags/{first}", headers=reader.auth).json()["following"] is True

    # The list: most recently followed first, paged by follow id with Mastodon's Link headers.
    follow_tag(http, reader, second)
    follow_tag(http, reader, third)
    assert names(followed(http, reader)) == [third, second, first]
    page = followed(http, reader, "?limit=1")
    assert names(page) == [third]
    link = page.headers["link"]
    after = re.search(r'<([^>]+)>; rel="next"', link)
    before = re.search(r'<([^>]+)>; rel="prev"', link)
    assert after and before and "/api/v1/followed_tags?" in after.group(1), link
    assert names(http.get(after.group(1), headers=reader.auth)) == [second]
    assert http.get(before.group(1), headers=reader.auth).json() == []
    second_page = http.get(after.group(1), headers=reader.auth)
    beyond = re.search(r'<([^>]+)>; rel="next"', second_page.headers["link"])
    assert beyond and names(http.get(beyond.group(1), headers=reader.auth)) == [first]
    min_link = re.search(r'<([^>]+)>; rel="prev"', second_page.headers["link"])
    assert min_link and names(http.get(min_link.group(1), headers=reader.auth)) == [third]
    assert followed(http, other).json() == []

    # Unfollowing: the Tag with ``following`` false, out of the list; again changes nothing.
    tag = follow_tag(http, reader, second, "unfollow")
    assert (tag["name"], tag["following"]) == (second, False)
    assert names(followed(http, reader)) == [third, first]
    assert follow_tag(http, reader, second, "unfollow")["following"] is False
    assert follow_tag(http, other, fresh_tag(), "unfollow")["following"] is False  # never followed
    # Following it again is a new follow: the newest in the list.
    follow_tag(http, reader, second)
    assert names(followed(http, reader)) == [second, third, first]


def test_tag_follows_answer_bad_input_with_4xx(http: httpx.Client, make_user: Callable[..., User],
                                               app_credentials: dict[str, Any]) -> None:
    reader = make_user("ftag_bad")
    for name in ("123", "a%20b", "%23", "a-b", "x" * 200):
        for change in ("follow", "unfollow"):
            answer = http.post(f"/api/v1/tags/{name}/{change}", headers=reader.auth)
            assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), (name, answer.text)
    assert followed(http, reader).json() == []  # nothing written
    for path in ("/api/v1/tags/kicau/follow", "/api/v1/tags/kicau/unfollow"):
        answer = http.post(path)
        assert answer.status_code == 401 and set(answer.json()) == {"error"}, answer.text
    answer = http.get("/api/v1/followed_tags")
    assert answer.status_code == 401 and set(answer.json()) == {"error"}, answer.text
    for query in ("?limit=x", "?max_id=x", "?since_id=-1", "?min_id=1e3"):
        answer = http.get(f"/api/v1/followed_tags{query}", headers=reader.auth)
        assert answer.status_code == 400 and set(answer.json()) == {"error"}, (query, answer.text)
    # A token without the follows scopes may neither follow nor list.
    narrow = narrow_token(http, app_credentials, reader)
    for verb, path in (("POST", "/api/v1/tags/kicau/follow"), ("GET", "/api/v1/followed_tags")):
        answer = http.request(verb, path, headers=narrow)
        assert answer.status_code == 403 and set(answer.json()) == {"error"}, answer.text


def test_a_followed_hashtags_public_statuses_reach_the_home_timeline(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    author, reader, fan, friend = (make_user("ftag_a"), make_user("ftag_h"), make_user("ftag_f"),
                                   make_user("ftag_b"))
    tag, kept = fresh_tag(), fresh_tag()
    follow_tag(http, reader, tag)
    follow_tag(http, reader, kept)
    # The fan follows both the author and the hashtag: each status once.
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=fan.auth).status_code == 200
    follow_tag(http, fan, tag)
    # The timelines exist before the posts, so what is in them below is what the fanout wrote.
    assert home_ids(http, reader) == home_ids(http, fan) == []

    shown = post(http, author, f"public #{tag.upper()}")
    for visibility in ("unlisted", "private", "direct"):
        post(http, author, f"not public: {visibility} #{tag}", visibility=visibility)
    post(http, author, "public, without it")
    other = post(http, author, f"public, another hashtag #{fresh_tag()}")
    # A reblog of a followed hashtag's status is not delivered for it.
    reblog = http.post(f"/api/v1/statuses/{shown}/reblog", headers=friend.auth)
    assert reblog.status_code == 200, reblog.text
    both = post(http, author, f"two followed hashtags #{tag} #{kept}")
    eventually(lambda: both in home_ids(http, reader) or None)
    assert home_ids(http, reader) == [both, shown]
    assert in_home_feed(stack_redis, reader, shown) and in_home_feed(stack_redis, reader, both)
    fan_home = home_ids(http, fan)
    assert fan_home[0] == both and shown in fan_home and other in fan_home
    assert len(fan_home) == len(set(fan_home)), fan_home

    # A deletion leaves the timelines it reached for the hashtag.
    assert http.delete(f"/api/v1/statuses/{shown}", headers=author.auth).status_code == 200
    eventually(lambda: not in_home_feed(stack_redis, reader, shown) or None)
    assert home_ids(http, reader) == [both]

    # After an unfollow, the hashtag brings nothing more; the other still does, to a follower who came after
    # the fanout had kept its list of followers too. The author's statuses are fanned out in order: once the
    # later one is in, the earlier has been dealt with.
    late = make_user("ftag_l")
    assert home_ids(http, late) == []
    follow_tag(http, reader, tag, "unfollow")
    follow_tag(http, late, kept)
    after = post(http, author, f"after the unfollow #{tag}")
    later = post(http, author, f"still followed #{kept}")
    eventually(lambda: later in home_ids(http, reader) or None)
    assert after not in home_ids(http, reader) and not in_home_feed(stack_redis, reader, after)
    assert home_ids(http, reader) == [later, both]
    eventually(lambda: home_ids(http, late) == [later] or None)


@contextlib.contextmanager
def user_stream(gateway_url: str, author: User, reader: User, tag: str) -> Iterator[Iterator[str]]:
    """``reader``'s user stream, read past warm-ups ``author`` posts with ``tag`` until one arrives."""
    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(30, read=30)) as client, \
            client.stream("GET", "/api/v1/streaming/user", headers=reader.auth) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        warm_until_seen(gateway_url, author, lines, text=f"warm-up #{tag}")
        yield lines


def test_a_followed_hashtags_statuses_stream_once(gateway_url: str, http: httpx.Client,
                                                  make_user: Callable[..., User]) -> None:
    author, reader, fan = make_user("ftst_a"), make_user("ftst_r"), make_user("ftst_f")
    tag = fresh_tag()
    follow_tag(http, reader, tag)
    follow_tag(http, fan, tag)
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=fan.auth).status_code == 200
    with user_stream(gateway_url, author, reader, tag) as reader_lines, \
            user_stream(gateway_url, author, fan, tag) as fan_lines:
        marker = post(http, author, f"marker #{tag}")
        for lines in (reader_lines, fan_lines):
            while read_events(lines, 1)[0].get("id") != marker:
                pass
        quiet = post(http, author, f"unlisted #{tag}", visibility="unlisted")
        shown = post(http, author, f"public #{tag}")
        last = post(http, author, f"last #{tag}")
        # The reader follows the hashtag alone: the public ones. The fan follows the author too: every one that
        # reaches followers, each once.
        assert [(e["event"], e["id"]) for e in read_events(reader_lines, 2)] == [("update", shown), ("update", last)]
        assert [(e["event"], e["id"]) for e in read_events(fan_lines, 3)] == [
            ("update", quiet), ("update", shown), ("update", last)]
        assert http.delete(f"/api/v1/statuses/{shown}", headers=author.auth).status_code == 200
        end = post(http, author, f"the end #{tag}")
        for lines in (reader_lines, fan_lines):
            assert [(e["event"], e.get("id", e["data"])) for e in read_events(lines, 2)] == [
                ("delete", shown), ("update", end)]

"""Followers-only and direct statuses (kicau/visibility.py), through the public API of the running system: who
finds them in home timelines, on the author's profile, by id, in streams, and as the status replied to.

The statuses here mention nobody, so a direct status is its author's alone; tests/timeline/test_mentions.py has
the statuses that do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import redis

from tests.conftest import User, eventually
from tests.gateway.test_streaming import read_events, warm_until_seen
from tests.timeline.test_home_invariant import home_ids
from tests.timeline.test_large_accounts import in_home_feed


def post(http: httpx.Client, author: User, text: str, **fields: Any) -> str:
    answer = http.post("/api/v1/statuses", headers=author.auth, json={"status": text, **fields})
    assert answer.status_code == 200, answer.text
    assert answer.json()["visibility"] == fields.get("visibility", "public")
    return str(answer.json()["id"])


def profile(http: httpx.Client, author: User, reader: User | None) -> list[str]:
    answer = http.get(f"/api/v1/accounts/{author.id}/statuses?limit=40", headers=reader.auth if reader else {})
    assert answer.status_code == 200, answer.text
    return [status["id"] for status in answer.json()]


@contextlib.contextmanager
def user_streams(gateway_url: str, http: httpx.Client, author: User, *readers: User) -> Iterator[list[Iterator[str]]]:
    """The user streams of ``readers``, open and each read past a marker ``author`` posted: the next event each
    gives is one of what comes after. Streams register asynchronously, the fanout learning of them late when the
    machine is loaded: each is read while warm-ups by ``author`` keep coming until it gets one; then all read up
    to the marker (one stream may also have got warm-ups meant for another)."""
    timeout = httpx.Timeout(30, read=30)
    with contextlib.ExitStack() as opened:
        streams = []
        for reader in readers:
            client = opened.enter_context(httpx.Client(base_url=gateway_url, timeout=timeout))
            stream = opened.enter_context(client.stream("GET", "/api/v1/streaming/user", headers=reader.auth))
            assert stream.status_code == 200
            streams.append(stream.iter_lines())
        for lines in streams:
            warm_until_seen(gateway_url, author, lines)
        marker = post(http, author, "marker")
        for lines in streams:
            while read_events(lines, 1)[0].get("id") != marker:
                pass
        yield streams


def test_followers_only_and_direct_statuses_reach_only_whom_they_may(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    author, follower, stranger = make_user("vis_a"), make_user("vis_f"), make_user("vis_s")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=follower.auth).status_code == 200
    # Both home timelines exist before the posts, so what is in them below is what the fanout wrote. (A timeline
    # rebuilt from Cassandra takes every status of its authors' lists; reads then leave out what the reader may
    # not see, as the checks of the pages show.)
    assert home_ids(http, follower) == home_ids(http, author) == []
    public = post(http, author, "for everyone")
    unlisted = post(http, author, "for everyone, quietly", visibility="unlisted")
    followers_only = post(http, author, "for my followers", visibility="private")
    direct = post(http, author, "for me alone", visibility="direct")
    last = post(http, author, "the last one")
    # One author's statuses are fanned out in order: once the last is in, the others have been dealt with.
    eventually(lambda: last in home_ids(http, follower))

    everything = [last, direct, followers_only, unlisted, public]
    assert home_ids(http, author)[:5] == everything
    assert home_ids(http, follower)[:4] == [last, followers_only, unlisted, public]
    assert not in_home_feed(stack_redis, follower, direct)  # not written, not merely hidden
    assert in_home_feed(stack_redis, author, direct)

    assert profile(http, author, author) == everything
    assert profile(http, author, follower) == [last, followers_only, unlisted, public]
    assert profile(http, author, stranger) == [last, unlisted, public]
    assert profile(http, author, None) == [last, unlisted, public]

    for status, readers in [(followers_only, [author, follower]), (direct, [author]), (public, [author, stranger])]:
        for reader in [author, follower, stranger, None]:
            answer = http.get(f"/api/v1/statuses/{status}", headers=reader.auth if reader else {})
            if reader in readers or status == public:
                assert answer.status_code == 200 and answer.json()["id"] == status, answer.text
            else:
                # Exactly as a status that does not exist: nothing says it is there.
                assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), answer.text

    def reply(replier: User, to: str) -> httpx.Response:
        return http.post("/api/v1/statuses", headers=replier.auth, json={"status": "re", "in_reply_to_id": to})

    assert reply(follower, followers_only).status_code == 200
    for replier, to in [(stranger, followers_only), (follower, direct), (stranger, direct)]:
        answer = reply(replier, to)
        assert answer.status_code == 422, answer.text
        assert answer.json() == {"error": "The status you are trying to reply to does not appear to exist."}
    assert reply(author, direct).status_code == 200


def test_a_direct_status_and_its_deletion_stream_to_its_author_only(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    author, follower = make_user("vst_a"), make_user("vst_f")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=follower.auth).status_code == 200
    with user_streams(gateway_url, http, author, author, follower) as (author_lines, follower_lines):
        secret = post(http, author, "to myself", visibility="direct")
        after = post(http, author, "to everyone")
        assert [e["id"] for e in read_events(author_lines, 2)] == [secret, after]
        # The follower's next update is the public one: the direct status never came.
        assert read_events(follower_lines, 1)[0]["id"] == after
        # Nor does its deletion.
        assert http.delete(f"/api/v1/statuses/{secret}", headers=author.auth).status_code == 200
        later = post(http, author, "to everyone, later")
        assert [(e["event"], e["data"]) for e in read_events(author_lines, 1)] == [("delete", secret)]
        assert [(e["event"], e["id"]) for e in read_events(author_lines, 1)] == [("update", later)]
        assert [(e["event"], e["id"]) for e in read_events(follower_lines, 1)] == [("update", later)]

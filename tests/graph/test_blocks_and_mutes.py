"""Blocks and mutes against the running stack (kicau/blocks_and_mutes.py): blocking, muting and undoing them
(``/api/v1/accounts/:id/block``, ``/unblock``, ``/mute``, ``/unmute``), the Relationship's fields,
``/api/v1/blocks`` and ``/api/v1/mutes`` with Mastodon's cursors; a block ending the follows both ways and
refusing new ones; the target's statuses leaving the hider's home timeline and never reaching it or its stream
again, nor reblogs of them, nor their hashtags' or mentions' copies; notifications kept out unless a mute keeps
them; an unmute bringing a followed account's statuses back; bad input answered 4xx."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import redis

from kicau import keys
from tests.conftest import User, eventually, narrow_token
from tests.gateway.test_streaming import read_events, warm_until_seen
from tests.timeline.test_home_invariant import home_ids
from tests.timeline.test_large_accounts import in_home_feed
from tests.timeline.test_tag_follows import follow_tag, fresh_tag
from tests.timeline.test_visibility import post


def change(http: httpx.Client, user: User, target: User, verb: str, **params: Any) -> dict[str, Any]:
    answer = http.post(f"/api/v1/accounts/{target.id}/{verb}", headers=user.auth, json=params or None)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["id"] == target.id
    return body


def follow(http: httpx.Client, follower: User, followee: User) -> httpx.Response:
    return http.post(f"/api/v1/accounts/{followee.id}/follow", headers=follower.auth)


def relationship(http: httpx.Client, viewer: User, target: User) -> dict[str, Any]:
    answer = http.get(f"/api/v1/accounts/relationships?id[]={target.id}", headers=viewer.auth)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()[0]
    return body


def hiding(body: dict[str, Any]) -> tuple[bool, bool, bool, bool, bool]:
    return (body["following"], body["blocking"], body["blocked_by"], body["muting"], body["muting_notifications"])


def listed(http: httpx.Client, user: User, which: str, query: str = "") -> httpx.Response:
    answer = http.get(f"/api/v1/{which}{query}", headers=user.auth)
    assert answer.status_code == 200, answer.text
    return answer


def ids(answer: httpx.Response) -> list[str]:
    return [account["id"] for account in answer.json()]


def notification_ids(http: httpx.Client, user: User) -> list[str]:
    answer = http.get("/api/v1/notifications?limit=40", headers=user.auth)
    assert answer.status_code == 200, answer.text
    return [n["status"]["id"] for n in answer.json() if n.get("status")]


def test_blocking_and_muting_change_the_relationship_and_the_lists(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    user, first, second, third = (make_user("bm_u"), make_user("bm_1"), make_user("bm_2"), make_user("bm_3"))
    assert follow(http, user, first).status_code == 200
    assert follow(http, first, user).status_code == 200

    # A block ends the follows both ways; again changes nothing.
    assert hiding(change(http, user, first, "block")) == (False, True, False, False, False)
    assert hiding(change(http, user, first, "block")) == (False, True, False, False, False)
    assert hiding(relationship(http, first, user)) == (False, False, True, False, False)
    assert relationship(http, user, first)["followed_by"] is False
    for follower, followee in ((user, first), (first, user)):  # neither may follow the other
        answer = follow(http, follower, followee)
        assert (answer.status_code, answer.json()) == (403, {"error": "This action is not allowed"}), answer.text
    counts = http.get(f"/api/v1/accounts/{first.id}").json()
    assert (counts["followers_count"], counts["following_count"]) == (0, 0), counts

    # Mutes: notifications hidden too by default, kept when asked (a form's words too); the follow stays.
    assert follow(http, user, second).status_code == 200
    assert hiding(change(http, user, second, "mute")) == (True, False, False, True, True)
    answer = http.post(f"/api/v1/accounts/{second.id}/mute", headers=user.auth, data={"notifications": "false"})
    assert answer.status_code == 200 and hiding(answer.json()) == (True, False, False, True, False), answer.text
    assert hiding(change(http, user, third, "mute", duration=3600)) == (False, False, False, True, True)
    assert hiding(relationship(http, third, user)) == (False, False, False, False, False)  # a mute is not shown

    # The lists, most recent first, paged by block and mute ids with Mastodon's Link headers.
    change(http, user, second, "block")
    assert ids(listed(http, user, "blocks")) == [second.id, first.id]
    mutes = listed(http, user, "mutes").json()
    assert [m["id"] for m in mutes] == [third.id, second.id]
    assert mutes[0]["mute_expires_at"] is not None and mutes[1]["mute_expires_at"] is None
    assert mutes[0]["acct"] == third.username
    page = listed(http, user, "blocks", "?limit=1")
    assert ids(page) == [second.id]
    after = re.search(r'<([^>]+)>; rel="next"', page.headers["link"])
    before = re.search(r'<([^>]+)>; rel="prev"', page.headers["link"])
    assert after and before, page.headers["link"]
    assert ids(listed(http, user, "blocks", after.group(1)[after.group(1).index("?"):])) == [first.id]
    assert ids(listed(http, user, "blocks", before.group(1)[before.group(1).index("?"):])) == []

    # Undone: gone from the lists and the Relationship; the follows a block ended stay ended.
    assert hiding(change(http, user, first, "unblock")) == (False, False, False, False, False)
    assert hiding(change(http, user, first, "unblock")) == (False, False, False, False, False)
    assert hiding(change(http, user, third, "unmute")) == (False, False, False, False, False)
    assert ids(listed(http, user, "blocks")) == [second.id]
    assert ids(listed(http, user, "mutes")) == [second.id]
    assert follow(http, first, user).status_code == 200  # a follow is allowed again


def test_blocks_and_mutes_answer_bad_input_with_4xx(
    http: httpx.Client, make_user: Callable[..., User], app_credentials: dict[str, Any],
) -> None:
    user, other = make_user("bm_bad"), make_user("bm_bad_o")
    for verb in ("block", "unblock", "mute", "unmute"):
        for target in ("123", "x", "9" * 30):
            answer = http.post(f"/api/v1/accounts/{target}/{verb}", headers=user.auth)
            assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), (verb, answer.text)
        answer = http.post(f"/api/v1/accounts/{other.id}/{verb}")
        assert answer.status_code == 401 and set(answer.json()) == {"error"}, answer.text
    for verb in ("block", "mute"):
        answer = http.post(f"/api/v1/accounts/{user.id}/{verb}", headers=user.auth)
        assert (answer.status_code, answer.json()) == (403, {"error": "This action is not allowed"}), answer.text
    for params in ({"duration": -1}, {"duration": "soon"}, {"duration": 1.5}, {"duration": 365 * 86400 + 1},
                   {"duration": False}, {"duration": " 5"},
                   {"notifications": "perhaps"}, {"notifications": [1]}):
        answer = http.post(f"/api/v1/accounts/{other.id}/mute", headers=user.auth, json=params)
        assert answer.status_code == 422 and set(answer.json()) == {"error"}, (params, answer.text)
    assert hiding(relationship(http, user, other)) == (False, False, False, False, False)  # nothing written
    assert listed(http, user, "mutes").json() == [] and listed(http, user, "blocks").json() == []
    for which in ("blocks", "mutes"):
        assert http.get(f"/api/v1/{which}").status_code == 401
        for query in ("?limit=x", "?max_id=x", "?since_id=-1"):
            answer = http.get(f"/api/v1/{which}{query}", headers=user.auth)
            assert answer.status_code == 400 and set(answer.json()) == {"error"}, (query, answer.text)
    # A token without the blocks and mutes scopes may do none of it.
    narrow = narrow_token(http, app_credentials, user)
    for verb, path in (("POST", f"/api/v1/accounts/{other.id}/block"), ("POST", f"/api/v1/accounts/{other.id}/mute"),
                       ("GET", "/api/v1/blocks"), ("GET", "/api/v1/mutes")):
        answer = http.request(verb, path, headers=narrow)
        assert answer.status_code == 403 and set(answer.json()) == {"error"}, answer.text


def test_a_hidden_accounts_statuses_leave_the_home_timeline_and_stay_out(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    reader, muted, blocked, friend, other, fan = (make_user("bmh_r"), make_user("bmh_m"), make_user("bmh_b"),
                                                  make_user("bmh_f"), make_user("bmh_o"), make_user("bmh_n"))
    for followee in (muted, blocked, friend):
        assert follow(http, reader, followee).status_code == 200
    assert follow(http, fan, friend).status_code == 200
    tag = fresh_tag()
    follow_tag(http, reader, tag)
    assert home_ids(http, reader) == []
    muted_before = post(http, muted, "before the mute")
    blocked_before = post(http, blocked, "before the block")
    kept = post(http, friend, "a friend's")
    eventually(lambda: {muted_before, blocked_before, kept} <= set(home_ids(http, reader)) or None)

    change(http, reader, muted, "mute")
    change(http, reader, blocked, "block")
    eventually(lambda: home_ids(http, reader) == [kept] or None)
    assert not in_home_feed(stack_redis, reader, muted_before)

    # Nothing of theirs comes back: statuses, reblogs of them by a followed account, their hashtags' statuses,
    # their direct mentions; the friend's own statuses still do.
    post(http, muted, "after the mute")
    post(http, muted, f"a followed hashtag #{tag}")
    post(http, muted, f"@{reader.username} a direct mention", visibility="direct")
    reblogged = post(http, other, "reblogged by the friend")
    hidden_reblog = post(http, muted, "reblogged by the friend too")
    for status_id in (reblogged, hidden_reblog):
        answer = http.post(f"/api/v1/statuses/{status_id}/reblog", headers=friend.auth)
        assert answer.status_code == 200, answer.text
    last = post(http, friend, "the friend's last")
    eventually(lambda: last in home_ids(http, reader) or None)
    home = http.get("/api/v1/timelines/home?limit=40", headers=reader.auth).json()
    assert home[0]["id"] == last
    assert {s["account"]["id"] for s in home} == {friend.id}, home
    assert [s["reblog"]["id"] for s in home if s["reblog"]] == [reblogged]
    # The friend's other followers still receive the reblog the reader does not.
    fan_home = http.get("/api/v1/timelines/home?limit=40", headers=fan.auth).json()
    assert [s["reblog"]["id"] for s in fan_home if s["reblog"]] == [hidden_reblog, reblogged], fan_home

    # A home timeline rebuilt from Cassandra leaves their statuses out too.
    stack_redis.delete(keys.home_feed(int(reader.id)))
    rebuilt = http.get("/api/v1/timelines/home?limit=40", headers=reader.auth).json()
    assert rebuilt and {s["account"]["id"] for s in rebuilt} == {friend.id}, rebuilt

    # Unmuting a followed account brings its newest statuses back; unblocking does not restore the follow.
    change(http, reader, muted, "unmute")
    eventually(lambda: muted_before in home_ids(http, reader) or None)
    change(http, reader, blocked, "unblock")
    after = post(http, blocked, "after the unblock")
    marker = post(http, friend, "marker")
    eventually(lambda: marker in home_ids(http, reader) or None)
    assert after not in home_ids(http, reader)


def test_following_a_muted_account_brings_nothing_of_it(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    reader, muted, friend = make_user("bmf_r"), make_user("bmf_m"), make_user("bmf_f")
    assert home_ids(http, reader) == []
    old = post(http, muted, "before the follow")
    said = post(http, friend, "the friend's")
    change(http, reader, muted, "mute")
    assert follow(http, reader, muted).status_code == 200  # a mute does not stop a follow
    # One follower's follow events are applied in order: once the second follow's backfill is in, the first's
    # has been applied too.
    assert follow(http, reader, friend).status_code == 200
    eventually(lambda: said in home_ids(http, reader) or None)
    later = post(http, muted, "after the follow")
    eventually(lambda: later in home_ids(http, muted) or None)  # fanned out, in the same batch as its followers'
    assert home_ids(http, reader) == [said]
    assert not in_home_feed(stack_redis, reader, old) and not in_home_feed(stack_redis, reader, later)


def test_a_blockers_statuses_do_not_reach_the_blocked(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    """Mastodon keeps a blocker's statuses from the account it blocks as well: here, those its hashtags would
    bring to a follower of them, and the mention's notification."""
    blocker, blocked, fan = make_user("bmx_b"), make_user("bmx_d"), make_user("bmx_f")
    tag = fresh_tag()
    for reader in (blocked, fan):
        follow_tag(http, reader, tag)
        assert home_ids(http, reader) == []
    change(http, blocker, blocked, "block")
    hidden = post(http, blocker, f"@{blocked.username} for the hashtag #{tag}")
    eventually(lambda: hidden in home_ids(http, fan) or None)  # the hashtag's other follower has it
    eventually(lambda: hidden in home_ids(http, blocker) or None)  # and the batch that carried it is applied
    assert not in_home_feed(stack_redis, blocked, hidden) and home_ids(http, blocked) == []
    assert notification_ids(http, blocked) == []


def test_notifications_from_hidden_accounts(http: httpx.Client, make_user: Callable[..., User]) -> None:
    user, blocked, quiet, loud, friend = (make_user("bmn_u"), make_user("bmn_b"), make_user("bmn_q"),
                                          make_user("bmn_l"), make_user("bmn_f"))
    change(http, user, blocked, "block")
    change(http, user, quiet, "mute")  # notifications hidden too
    change(http, user, loud, "mute", notifications=False)
    post(http, blocked, f"@{user.username} from a blocked account")
    post(http, quiet, f"@{user.username} from a muted account")
    kept = post(http, loud, f"@{user.username} from a muted account that keeps notifications")
    last = post(http, friend, f"@{user.username} from a friend")
    eventually(lambda: last in notification_ids(http, user) or None)
    assert notification_ids(http, user) == [last, kept]


def test_a_hidden_accounts_statuses_never_reach_the_stream(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    reader, muted, friend = make_user("bms_r"), make_user("bms_m"), make_user("bms_f")
    for followee in (muted, friend):
        assert follow(http, reader, followee).status_code == 200
    change(http, reader, muted, "mute")
    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(30, read=30)) as client, \
            client.stream("GET", "/api/v1/streaming/user", headers=reader.auth) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        warm_until_seen(gateway_url, friend, lines)
        post(http, muted, "not for the reader's stream")
        reblog = post(http, muted, "nor its reblog")
        assert http.post(f"/api/v1/statuses/{reblog}/reblog", headers=friend.auth).status_code == 200
        marker = post(http, friend, "after them")
        event = read_events(lines, 1)[0]
        assert event["event"] == "update" and f'"id":"{marker}"' in event["data"], event


def test_public_and_hashtag_streams_leave_hidden_accounts_out(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    """Mastodon's streaming server leaves out of an account's public and hashtag streams the statuses of accounts it
    blocks or mutes and of those that block it, from the moment of the change (the gateway reads them again when
    the graph service announces one), and lets them through again once undone."""
    reader, muted, blocker, other = (make_user("bmp_r"), make_user("bmp_m"), make_user("bmp_b"),
                                     make_user("bmp_o"))
    tag = fresh_tag()
    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(30, read=30)) as client, \
            client.stream("GET", "/api/v1/streaming/public", headers=reader.auth) as public, \
            client.stream("GET", f"/api/v1/streaming/hashtag?tag={tag}", headers=reader.auth) as tagged:
        assert public.status_code == tagged.status_code == 200
        public_lines, tag_lines = public.iter_lines(), tagged.iter_lines()
        warm_until_seen(gateway_url, other, public_lines, text=f"warm-up #{tag}")
        warm_until_seen(gateway_url, other, tag_lines, text=f"warm-up #{tag}")
        settled = post(http, other, f"settled #{tag}")
        for lines in (public_lines, tag_lines):
            while f'"id":"{settled}"' not in read_events(lines, 1)[0]["data"]:
                pass

        change(http, reader, muted, "mute")  # made while the streams are open
        change(http, blocker, reader, "block")
        post(http, muted, f"muted #{tag}")
        post(http, blocker, f"blocking #{tag}")
        marker = post(http, other, f"marker #{tag}")
        for lines in (public_lines, tag_lines):
            event = read_events(lines, 1)[0]
            assert f'"id":"{marker}"' in event["data"], event

        change(http, reader, muted, "unmute")
        back = post(http, muted, f"unmuted #{tag}")
        for lines in (public_lines, tag_lines):
            event = read_events(lines, 1)[0]
            assert f'"id":"{back}"' in event["data"], event

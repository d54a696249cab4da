"""List timelines against the running stack (kicau/lists.py, ``/api/v1/timelines/list/:id``): the fanout pushes
members' statuses (reblogs too) into their lists' timelines in Redis and removes deleted ones; a missing or changed
list timeline is rebuilt from the members' statuses; the owner's blocks, mutes and follow options apply to its
lists as to its home timeline; the replies a list shows follow its policy; an exclusive list keeps its members'
statuses out of the owner's home timeline (written, rebuilt and streamed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import redis

from kicau import keys
from kicau.feeds import feed_member
from kicau.web import ACCOUNT_HEADER
from tests.conftest import User, eventually
from tests.faults.harness import service_port
from tests.gateway.test_streaming import read_events, warm_until_seen
from tests.graph.test_lists import add, follow, make_list
from tests.timeline.test_home_invariant import home_ids
from tests.timeline.test_large_accounts import home_headed_by
from tests.timeline.test_visibility import post


def list_ids(http: httpx.Client, owner: User, list_id: str, query: str = "?limit=40") -> list[str]:
    answer = http.get(f"/api/v1/timelines/list/{list_id}{query}", headers=owner.auth)
    assert answer.status_code == 200, answer.text
    return [status["id"] for status in answer.json()]


def in_list_feed(client: redis.Redis, list_id: str, status_id: str) -> bool:
    """Whether the list's timeline in Redis holds the status (the fanout wrote it there, not a rebuild)."""
    return feed_member(int(status_id)) in client.lrange(keys.list_feed(int(list_id)), 0, -1)


def list_headed_by(http: httpx.Client, owner: User, list_id: str, newest: str) -> list[str]:
    """The list's timeline once ``newest`` heads it."""

    def headed() -> list[str] | None:
        ids = list_ids(http, owner, list_id)
        return ids if ids[:1] == [newest] else None

    found = eventually(headed)
    assert found is not None
    return found


def home_headed(http: httpx.Client, reader: User, newest: str) -> list[str]:
    found = eventually(lambda: home_headed_by(http, reader, newest))
    assert found is not None
    return found


def test_members_statuses_reach_the_list_as_they_are_posted_and_leave_when_deleted(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    owner, first, second, outsider = make_user("lt_o"), make_user("lt_1"), make_user("lt_2"), make_user("lt_x")
    follow(http, owner, first, second, outsider)
    list_id = make_list(http, owner, "Close")["id"]
    assert add(http, owner, list_id, first, second).status_code == 200
    assert list_ids(http, owner, list_id) == []  # read once: the (empty) timeline now exists in Redis

    mine = post(http, owner, "the owner's own")
    theirs = post(http, first, "from the first member")
    elsewhere = post(http, outsider, "from someone outside the list")
    boosted = http.post(f"/api/v1/statuses/{elsewhere}/reblog", headers=second.auth).json()["id"]
    private = post(http, second, "followers only", visibility="private")
    direct = post(http, first, f"@{owner.username} just for you", visibility="direct")
    last = post(http, second, "the last")
    ids = list_headed_by(http, owner, list_id, last)
    assert ids == [last, private, boosted, theirs]
    assert mine not in ids and elsewhere not in ids and direct not in ids
    assert all(in_list_feed(stack_redis, list_id, s) for s in ids)  # pushed by the fanout, not rebuilt
    # The list's statuses are whole Statuses, the reblog wrapping the status it reblogs.
    page = http.get(f"/api/v1/timelines/list/{list_id}", headers=owner.auth).json()
    assert page[2]["reblog"]["id"] == elsewhere and page[0]["account"]["id"] == second.id

    # Paged like a home timeline.
    first_page = http.get(f"/api/v1/timelines/list/{list_id}?limit=2", headers=owner.auth)
    assert [s["id"] for s in first_page.json()] == [last, private]
    after = first_page.links["next"]["url"]
    assert [s["id"] for s in http.get(after, headers=owner.auth).json()] == [boosted, theirs]
    assert list_ids(http, owner, list_id, f"?min_id={theirs}&limit=1") == [boosted]

    # Deleted: gone from the list's timeline in Redis, not only from its reads.
    assert http.delete(f"/api/v1/statuses/{theirs}", headers=first.auth).status_code == 200
    eventually(lambda: not in_list_feed(stack_redis, list_id, theirs))
    assert theirs not in list_ids(http, owner, list_id)


def test_a_list_timeline_is_rebuilt_from_its_members_when_missing_or_changed(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    owner, first, second = make_user("lr_o"), make_user("lr_1"), make_user("lr_2")
    follow(http, owner, first, second)
    older = [post(http, first, f"older {n}") for n in range(3)]
    other = post(http, second, "before joining")
    list_id = make_list(http, owner)["id"]
    assert add(http, owner, list_id, first).status_code == 200
    assert list_ids(http, owner, list_id) == older[::-1]  # the first read rebuilds it

    # A member added: the timeline is rebuilt with its statuses; one taken out: without them.
    assert add(http, owner, list_id, second).status_code == 200
    assert list_ids(http, owner, list_id) == [other, *older[::-1]]
    assert http.delete(f"/api/v1/lists/{list_id}/accounts", headers=owner.auth,
                       params={"account_ids[]": [first.id]}).status_code == 200
    assert list_ids(http, owner, list_id) == [other]

    # Lost from Redis: rebuilt on the next read.
    stack_redis.delete(keys.list_feed(int(list_id)))
    assert list_ids(http, owner, list_id) == [other]
    newer = post(http, second, "after the rebuild")
    list_headed_by(http, owner, list_id, newer)


def test_replies_follow_the_lists_policy(http: httpx.Client, make_user: Callable[..., User]) -> None:
    owner, member, fellow, followed, stranger = (make_user("lp_o"), make_user("lp_m"), make_user("lp_f"),
                                                 make_user("lp_d"), make_user("lp_s"))
    follow(http, owner, member, fellow, followed)
    list_id = make_list(http, owner, "Talk")["id"]
    assert add(http, owner, list_id, member, fellow).status_code == 200
    list_ids(http, owner, list_id)
    parents = {who.id: post(http, who, f"a status of {who.username}") for who in (owner, member, fellow, followed,
                                                                                  stranger)}

    def reply(to: User) -> str:
        return post(http, member, f"@{to.username} a reply", in_reply_to_id=parents[to.id])

    to_owner, to_self, to_fellow, to_followed, to_stranger = (reply(owner), reply(member), reply(fellow),
                                                              reply(followed), reply(stranger))
    marker = post(http, fellow, "marker")
    list_headed_by(http, owner, list_id, marker)
    expected: dict[str, set[str]] = {
        "list": {to_owner, to_self, to_fellow},
        "followed": {to_owner, to_self, to_fellow, to_followed},
        "none": {to_owner, to_self},
    }
    replies = {to_owner, to_self, to_fellow, to_followed, to_stranger}
    for policy in ("list", "followed", "none", "list"):  # a change shows at once: the policy applies when read
        changed = http.put(f"/api/v1/lists/{list_id}", headers=owner.auth, json={"replies_policy": policy})
        assert changed.status_code == 200 and changed.json()["replies_policy"] == policy, changed.text
        shown = set(list_ids(http, owner, list_id)) & replies
        assert shown == expected[policy], policy


def test_the_owners_blocks_mutes_and_follow_options_apply_to_its_lists(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    owner, muted, quiet, other, outsider = (make_user("lh_o"), make_user("lh_m"), make_user("lh_q"),
                                            make_user("lh_x"), make_user("lh_s"))
    follow(http, owner, muted, other)
    # Followed without reblogs: its own statuses reach the list, its reblogs do not.
    answer = http.post(f"/api/v1/accounts/{quiet.id}/follow", headers=owner.auth, json={"reblogs": False})
    assert answer.status_code == 200, answer.text
    list_id = make_list(http, owner)["id"]
    assert add(http, owner, list_id, muted, quiet, other).status_code == 200
    list_ids(http, owner, list_id)
    assert http.post(f"/api/v1/accounts/{muted.id}/mute", headers=owner.auth).status_code == 200

    hushed = post(http, muted, "while muted")
    own = post(http, quiet, "quiet's own")
    elsewhere = post(http, outsider, "to be reblogged")
    boost = http.post(f"/api/v1/statuses/{elsewhere}/reblog", headers=quiet.auth).json()["id"]
    marker = post(http, other, "marker")
    ids = list_headed_by(http, owner, list_id, marker)
    assert own in ids and hushed not in ids and boost not in ids
    # A rebuild leaves them out too.
    assert http.delete(f"/api/v1/lists/{list_id}/accounts", headers=owner.auth,
                       params={"account_ids[]": [other.id]}).status_code == 200
    rebuilt = list_ids(http, owner, list_id)
    assert own in rebuilt and hushed not in rebuilt and boost not in rebuilt and marker not in rebuilt


def test_an_exclusive_list_keeps_its_members_out_of_the_home_timeline_and_stream(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    owner, apart, shared, plain = make_user("lx_o"), make_user("lx_a"), make_user("lx_s"), make_user("lx_p")
    follow(http, owner, apart, shared, plain)
    exclusive = make_list(http, owner, "Apart", exclusive=True)["id"]
    ordinary = make_list(http, owner, "Shared")["id"]
    assert add(http, owner, exclusive, apart).status_code == 200
    assert add(http, owner, ordinary, shared).status_code == 200
    home_ids(http, owner)
    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(30, read=30)) as streamer, \
            streamer.stream("GET", "/api/v1/streaming/user", headers=owner.auth) as stream:
        lines = stream.iter_lines()
        warm_until_seen(gateway_url, plain, lines)
        kept_apart = post(http, apart, "only in its list")
        in_both = post(http, shared, "in the list and at home")
        marker = post(http, plain, "marker")
        streamed = [e["id"] for e in read_events(lines, 2)]
    assert streamed == [in_both, marker]  # the exclusive member's status never reached the user stream
    home = home_headed(http, owner, marker)
    assert in_both in home and kept_apart not in home
    assert list_ids(http, owner, exclusive)[:1] == [kept_apart]
    assert list_ids(http, owner, ordinary)[:1] == [in_both]

    # A home timeline rebuilt from Cassandra leaves the exclusive list's members out too.
    stack_redis.delete(keys.home_feed(int(owner.id)))
    rebuilt = home_ids(http, owner)
    assert in_both in rebuilt and marker in rebuilt and kept_apart not in rebuilt

    # No longer exclusive: the member's new statuses reach home again.
    changed: dict[str, Any] = http.put(f"/api/v1/lists/{exclusive}", headers=owner.auth,
                                       json={"exclusive": False}).json()
    assert changed["exclusive"] is False
    back = post(http, apart, "at home again")
    assert back in home_headed(http, owner, back)


def test_joining_or_leaving_an_exclusive_list_moves_the_members_statuses_out_of_home_and_back(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    owner, member = make_user("lj_o"), make_user("lj_m")
    follow(http, owner, member)
    home_ids(http, owner)
    earlier = post(http, member, "before any list")
    home_headed(http, owner, earlier)

    def in_home() -> bool:
        return earlier in home_ids(http, owner)

    def settles_to(expected: bool) -> None:
        eventually(lambda: in_home() is expected or None)

    list_id = make_list(http, owner, "Apart", exclusive=True)["id"]
    assert add(http, owner, list_id, member).status_code == 200
    settles_to(False)  # joined an exclusive list: out of home
    assert http.delete(f"/api/v1/lists/{list_id}/accounts", headers=owner.auth,
                       params={"account_ids[]": [member.id]}).status_code == 200
    settles_to(True)  # left it: back
    assert add(http, owner, list_id, member).status_code == 200
    settles_to(False)
    assert http.put(f"/api/v1/lists/{list_id}", headers=owner.auth, json={"exclusive": False}).status_code == 200
    settles_to(True)  # the list no longer exclusive
    assert http.put(f"/api/v1/lists/{list_id}", headers=owner.auth, json={"exclusive": True}).status_code == 200
    settles_to(False)
    # An unmute puts back a followed account's statuses, but not those of one kept in an exclusive list. (A later
    # follow's backfill, on the same topic and key as the unmute's would be, shows the fanout got that far.)
    other = make_user("lj_x")
    marker = post(http, other, "a later follow's backfill")
    assert http.post(f"/api/v1/accounts/{member.id}/mute", headers=owner.auth).status_code == 200
    assert http.post(f"/api/v1/accounts/{member.id}/unmute", headers=owner.auth).status_code == 200
    follow(http, owner, other)
    home_headed(http, owner, marker)
    assert not in_home()
    assert http.delete(f"/api/v1/lists/{list_id}", headers=owner.auth).status_code == 200
    settles_to(True)  # the list deleted


def test_the_edits_and_deletions_of_a_lists_members_since_a_status_for_the_gateways_list_streams(
    http: httpx.Client, make_user: Callable[..., User]
) -> None:
    """``/internal/timelines/retracted?list=``: what a list's streams missed of its members' edits and deletions
    while the gateway's channel was lost; of members alone, direct statuses left out, edits as the owner sees them
    (a private status of a member it follows included) and as the list's replies policy shows them; the owner's
    list alone."""
    owner, member, stranger = make_user("lret_o"), make_user("lret_m"), make_user("lret_s")
    follow(http, owner, member, stranger)
    listed = make_list(http, owner)["id"]
    assert add(http, owner, listed, member).status_code == 200
    parent = post(http, stranger, "a parent")
    before = post(http, member, "before")
    edited = post(http, member, "private, to be edited", visibility="private")
    reply = post(http, member, f"@{stranger.username} a reply", in_reply_to_id=parent)
    assert http.put(f"/api/v1/statuses/{reply}", headers=member.auth, data={"status": "a reply, edited"}
                    ).status_code == 200
    deleted = post(http, member, "to be deleted")
    direct = post(http, member, f"@{owner.username} direct", visibility="direct")
    elsewhere = post(http, stranger, "not a member's")
    assert http.put(f"/api/v1/statuses/{edited}", headers=member.auth, data={"status": "private, edited"}
                    ).status_code == 200
    for author, status in ((member, deleted), (member, direct), (stranger, elsewhere)):
        assert http.delete(f"/api/v1/statuses/{status}", headers=author.auth).status_code == 200
    timeline = f"http://127.0.0.1:{service_port('timeline')}/internal/timelines/retracted"

    def read(reader: User) -> httpx.Response:
        return httpx.get(timeline, params={"after": before, "list": listed}, headers={ACCOUNT_HEADER: reader.id},
                         timeout=10)

    def told() -> dict[str, Any] | None:
        found: dict[str, Any] = read(owner).json()
        return found if [d["id"] for d in found["deleted"]] == [deleted] and found["edited"] else None

    found = eventually(told)
    assert found is not None and found["covered"] is True
    # Not the reply to the stranger: outside the list, under the default policy (``list``), the list hides it.
    assert [s["id"] for s in found["edited"]] == [edited] and "private, edited" in found["edited"][0]["content"]
    changed = http.put(f"/api/v1/lists/{listed}", headers=owner.auth, json={"replies_policy": "followed"})
    assert changed.status_code == 200, changed.text
    assert sorted(s["id"] for s in read(owner).json()["edited"]) == sorted([edited, reply]), "the owner follows it"
    assert read(stranger).status_code == 404, "another account's list"
    answer = httpx.get(timeline, params={"after": before, "list": "x"}, headers={ACCOUNT_HEADER: owner.id},
                       timeout=10)
    assert 400 <= answer.status_code < 500 and "error" in answer.json()

"""Lists as pure logic (kicau/lists.py, services/fanout/service.py): which replies a list shows, which lists a
batch's statuses go to, whom an exclusive list keeps a status from, and how the fanout's copies of an author's lists
follow its follower list's version. Lists against the real system: tests/graph/test_lists.py,
tests/timeline/test_list_timelines.py, tests/gateway/test_list_stream.py."""

from __future__ import annotations

import msgspec

from kicau.events import Event, StatusCreated, StatusDeleted
from kicau.follower_lists import KeptUnderVersions
from kicau.lists import AccountList, Membership, showing_reply, shows_reply
from services.fanout.service import exclusive_narrowed, list_audiences

AUTHOR, OWNER, OTHER_OWNER, FAN, LARGE = 1, 2, 3, 4, 5
FOLLOWERS = {AUTHOR: [OWNER, OTHER_OWNER, FAN]}
FRIENDS, APART, STRANGERS = Membership(10, OWNER, False), Membership(11, OTHER_OWNER, True), Membership(12, 99, False)
MEMBERSHIPS = {AUTHOR: [FRIENDS, APART, STRANGERS], LARGE: [Membership(13, OWNER, False)]}


def created(status_id: int, account_id: int = AUTHOR, **fields: object) -> StatusCreated:
    return msgspec.convert({"status_id": status_id, "account_id": account_id, "status_json": "{}", **fields},
                           StatusCreated)


def deleted(status_id: int, account_id: int = AUTHOR) -> StatusDeleted:
    return msgspec.convert({"status_id": status_id, "account_id": account_id}, StatusDeleted)


def test_which_replies_a_list_shows() -> None:
    def shows(policy: str, replied_to: int) -> bool:
        return shows_reply(policy, owner_id=OWNER, author_id=AUTHOR, replied_to=replied_to, members={AUTHOR, 7},
                           followed={8})

    for policy in ("followed", "list", "none"):
        # Not a reply, a reply to its own author (a thread), a reply to the list's owner: always.
        assert shows(policy, 0) and shows(policy, AUTHOR) and shows(policy, OWNER)
        assert not shows(policy, 9)  # to someone neither followed nor listed
    assert shows("list", 7) and not shows("list", 8)
    assert shows("followed", 8) and not shows("followed", 7)
    assert not shows("none", 7) and not shows("none", 8)


def test_a_list_as_mastodon_answers_it() -> None:
    assert AccountList(12, OWNER, "Friends", "followed", True).entity() == {
        "id": "12", "title": "Friends", "replies_policy": "followed", "exclusive": True}


def test_which_lists_a_batchs_statuses_go_to() -> None:
    events: list[Event] = [
        created(100),  # every list whose owner follows the author
        created(101, visibility="direct"),  # no list
        created(102, reblog_of=50, reblog_author=9),  # narrowed: OWNER hides the reblogged author
        created(103, LARGE),  # a large author: merged at read time
        deleted(104),  # every list of its author, whoever its owner follows now
        created(105, visibility="private"),
    ]
    narrowed = {102: [AUTHOR, OTHER_OWNER, FAN]}
    found = list_audiences(events, FOLLOWERS, narrowed, MEMBERSHIPS)
    assert found == {100: [FRIENDS, APART], 102: [APART], 104: [FRIENDS, APART, STRANGERS], 105: [FRIENDS, APART]}
    assert list_audiences(events, FOLLOWERS, narrowed, {}) == {}


def test_an_exclusive_list_keeps_its_members_statuses_from_its_owners_home() -> None:
    events: list[Event] = [created(100), created(101, visibility="direct"), created(102), deleted(103)]
    narrowed = {102: [AUTHOR, OTHER_OWNER]}  # already without OWNER and FAN (a reblog, say)
    assert exclusive_narrowed(events, FOLLOWERS, narrowed, MEMBERSHIPS) == {100: [AUTHOR, OWNER, FAN], 102: [AUTHOR]}
    # No exclusive list: nothing changes.
    plain = {AUTHOR: [FRIENDS]}
    assert exclusive_narrowed(events, FOLLOWERS, narrowed, plain) == {}


async def test_the_fanouts_copies_of_an_authors_lists_follow_its_version() -> None:
    reads: list[int] = []
    rows = {AUTHOR: [FRIENDS]}

    async def read(member: int) -> list[Membership]:
        reads.append(member)
        return list(rows.get(member, []))

    kept = KeptUnderVersions(read, max_kept=2)
    assert await kept.of({AUTHOR: b"t1", 6: b"t1"}) == {AUTHOR: [FRIENDS], 6: []}
    assert await kept.of({AUTHOR: b"t1"}) == {AUTHOR: [FRIENDS]}
    assert reads == [AUTHOR, 6]  # kept: nothing read
    rows[AUTHOR] = [FRIENDS, APART]
    assert await kept.of({AUTHOR: b"t2"}) == {AUTHOR: [FRIENDS, APART]}  # a change dropped the version
    await kept.of({7: b"t1"})  # a third account: the least recently used goes
    await kept.of({6: b"t1"})
    assert reads == [AUTHOR, 6, AUTHOR, 7, 6]


async def test_which_lists_streams_are_sent_a_reply_each_policy_reading_only_what_it_asks() -> None:
    """``showing_reply``: a status to no one else goes to every list with nothing read; a reply to someone else
    (9 here) to the lists whose policy shows it, reading the lists 9 is in only for a ``list`` policy and which
    owners follow 9 only for a ``followed`` one (once, for all of them)."""
    listed_with_9 = Membership(20, OWNER, False, "list")
    listed_without_9 = Membership(21, OWNER, False, "list")
    followed_by_owner = Membership(22, OWNER, False, "followed")
    followed_not = Membership(23, OTHER_OWNER, False, "followed")
    shown_none = Membership(24, OWNER, False, "none")
    of_9 = Membership(25, 9, False, "none")  # the replied-to account's own list: a reply to its owner
    every = [listed_with_9, listed_without_9, followed_by_owner, followed_not, shown_none, of_9]
    asked: list[tuple[str, int, list[int]]] = []

    async def lists_of(account_id: int) -> list[Membership]:
        asked.append(("lists", account_id, []))
        return [Membership(20, OWNER, False, "list"), Membership(30, 77, False, "list")]

    async def followers_among(account_id: int, candidates: list[int]) -> list[int]:
        asked.append(("followers", account_id, candidates))
        return [c for c in candidates if c == OWNER]

    async def shown(replied_to: int, memberships: list[Membership] = every) -> list[Membership]:
        return await showing_reply(memberships, author_id=AUTHOR, replied_to=replied_to, lists_of=lists_of,
                                   followers_among=followers_among)

    assert await shown(0) == every and await shown(AUTHOR) == every and asked == []
    assert await shown(9) == [listed_with_9, followed_by_owner, of_9]
    assert asked == [("lists", 9, []), ("followers", 9, [OWNER, OTHER_OWNER])]
    asked.clear()
    assert await shown(9, [shown_none, of_9]) == [of_9] and asked == [], "nothing to read for `none`"
    assert await shown(9, [listed_without_9]) == [] and asked == [("lists", 9, [])]

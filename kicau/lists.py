"""Lists: an account's named groups of accounts it follows, each with a timeline of its own (``/api/v1/lists``,
``/api/v1/lists/:id/accounts``, ``/api/v1/accounts/:id/lists``, ``/api/v1/timelines/list/:id``, the ``list``
stream).

As on Mastodon: only accounts the owner follows can be members, and an unfollow (a block's too) takes the followee
out of the follower's lists. A list's timeline holds its members' statuses that reach the owner's home timeline
(the same follow options and blocks and mutes apply), reblogs included, the owner's own statuses not; which replies
it shows is the list's ``replies_policy``: replies to any account the owner follows (``followed``), to the list's
members (``list``, the default) or none (``none``); a reply to the owner, or an author's reply to itself, always.
An ``exclusive`` list keeps its members' statuses out of the owner's home timeline and user stream. Pages apply the
replies policy as they are read (a changed policy shows at once); the list's stream as each status is sent
(``showing_reply``), as Mastodon pushes it.

The record is Cassandra's (stack/migrations/0023_lists.cql), written by the graph service:

* ``lists``: the owner's lists and their settings;
* ``list_members``: a list's members (paged by account id, and read by the timeline's rebuild);
* ``list_memberships``: which of an owner's lists hold an account (an unfollow's removal, an account's lists);
* ``member_lists``: the lists an author is in, with their owners, ``exclusive`` and ``replies_policy``, for the
  fanout, which keeps copies of them under the author's follower list version (kicau/follower_lists.py,
  ``KeptUnderVersions``): the graph service drops that version before and after each change, as for a follow.

Every write is idempotent (a membership is keyed by its list and account), so a retried request repairs a crash in
between. A list's timeline in Redis (``keys.list_feed``) is written by the fanout as home timelines are, into
timelines that exist; a change of membership deletes it, and the next read rebuilds it from the members' statuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.ids import ABOVE_EVERY_ID

REPLIES_POLICIES: Final = ("followed", "list", "none")
DEFAULT_REPLIES_POLICY: Final = "list"
# Mastodon's bound on an account's lists; and Kicau's on a list's members, which bounds the list timeline's rebuild
# (one read of each member's newest statuses).
MAX_LISTS: Final = 50
MAX_MEMBERS: Final = 1000
MAX_TITLE: Final = 256
# A list's members, and an author's lists, are read in pages of this many rows.
FETCH_SIZE = 5000


@dataclass(frozen=True, slots=True)
class AccountList:
    list_id: int
    owner_id: int
    title: str
    replies_policy: str
    exclusive: bool

    def entity(self) -> dict[str, Any]:
        """The List, as Mastodon answers it."""
        return {"id": str(self.list_id), "title": self.title, "replies_policy": self.replies_policy,
                "exclusive": self.exclusive}


@dataclass(frozen=True, slots=True)
class Membership:
    """One list an author is in, as the fanout reads it."""

    list_id: int
    owner_id: int
    exclusive: bool
    # Which of the author's replies the list's stream is sent as they are posted (``showing_reply``).
    replies_policy: str = DEFAULT_REPLIES_POLICY


def shows_reply(policy: str, *, owner_id: int, author_id: int, replied_to: int, members: Iterable[int],
                followed: Iterable[int]) -> bool:
    """Whether a list with ``policy`` shows a status by ``author_id`` replying to ``replied_to`` (0: no reply):
    a status that replies to no one, to its own author or to the list's owner always; else a reply to an account
    the owner follows (``followed``), to one of the list's ``members`` (``list``), or none (``none``)."""
    if replied_to in (0, author_id, owner_id):
        return True
    if policy == "followed":
        return replied_to in followed
    if policy == "list":
        return replied_to in members
    return False


async def showing_reply(memberships: list[Membership], *, author_id: int, replied_to: int,
                        lists_of: Callable[[int], Awaitable[list[Membership]]],
                        followers_among: Callable[[int, list[int]], Awaitable[Iterable[int]]]) -> list[Membership]:
    """Of the lists a status by ``author_id`` (new or edited) goes to, those whose streams are sent it: as a list's
    page shows it (``shows_reply``), each list's policy deciding for a reply to someone else (``replied_to``).
    Mastodon's streams apply the policy as a status is pushed; pages apply it as they are read, so a changed policy
    shows on every page at once. Reads only what the policies ask: the lists the replied-to account is in (``list``) and
    which owners follow it (``followed``), each once."""
    if replied_to in (0, author_id):
        return memberships
    asking = [m for m in memberships if m.owner_id != replied_to]
    in_lists = any(m.replies_policy == "list" for m in asking)
    owners = sorted({m.owner_id for m in asking if m.replies_policy == "followed"})
    replied_lists, following = await asyncio.gather(lists_of(replied_to) if in_lists else _no_lists(),
                                                    followers_among(replied_to, owners) if owners else _no_lists())
    listed = {m.list_id for m in replied_lists}
    followers = set(following)
    return [m for m in memberships
            if shows_reply(m.replies_policy, owner_id=m.owner_id, author_id=author_id, replied_to=replied_to,
                           members=(replied_to,) if m.list_id in listed else (),
                           followed=(replied_to,) if m.owner_id in followers else ())]


async def _no_lists() -> list[Any]:
    return []


class _Reply(msgspec.Struct):
    in_reply_to_account_id: str | None = None


_read_reply = msgspec.json.Decoder(_Reply).decode


def replied_account(status: bytes | str) -> int:
    """The account a rendered Status replies to (its ``in_reply_to_account_id``): what decides whether a list shows
    an edit of it; 0 for none, or for a Status that cannot be read."""
    try:
        found = _read_reply(status).in_reply_to_account_id
        return int(found) if found else 0
    except (msgspec.DecodeError, ValueError):
        return 0


def _list_of(row: dict[str, Any]) -> AccountList:
    return AccountList(int(row["list_id"]), int(row["account_id"]), row["title"] or "",
                       row["replies_policy"] or DEFAULT_REPLIES_POLICY, bool(row["exclusive"]))


class ListStore:
    """The lists' Cassandra tables."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        prepare = session.prepare
        self._save = write("INSERT INTO lists (account_id, list_id, title, replies_policy, exclusive)"
                           " VALUES (?, ?, ?, ?, ?)")
        self._drop = write("DELETE FROM lists WHERE account_id = ? AND list_id = ?")
        self._add_member = write("INSERT INTO list_members (list_id, account_id) VALUES (?, ?)")
        self._remove_member = write("DELETE FROM list_members WHERE list_id = ? AND account_id = ?")
        self._add_membership = write("INSERT INTO list_memberships (owner_id, member_id, list_id) VALUES (?, ?, ?)")
        self._remove_membership = write("DELETE FROM list_memberships WHERE owner_id = ? AND member_id = ?"
                                        " AND list_id = ?")
        self._add_member_list = write("INSERT INTO member_lists (member_id, list_id, owner_id, exclusive,"
                                      " replies_policy) VALUES (?, ?, ?, ?, ?)")
        self._remove_member_list = write("DELETE FROM member_lists WHERE member_id = ? AND list_id = ?")
        self._of_owner = prepare("SELECT * FROM lists WHERE account_id = ?")
        self._one = prepare("SELECT * FROM lists WHERE account_id = ? AND list_id = ?")
        self._members = prepare("SELECT account_id FROM list_members WHERE list_id = ?")
        self._members.fetch_size = FETCH_SIZE
        self._members_below = prepare("SELECT account_id FROM list_members WHERE list_id = ? AND account_id < ?"
                                      " AND account_id > ? LIMIT ?")
        self._members_above = prepare("SELECT account_id FROM list_members WHERE list_id = ? AND account_id > ?"
                                      " AND account_id < ? ORDER BY account_id ASC LIMIT ?")
        self._holding = prepare("SELECT list_id FROM list_memberships WHERE owner_id = ? AND member_id = ?")
        self._member_lists = prepare("SELECT list_id, owner_id, exclusive, replies_policy FROM member_lists"
                                     " WHERE member_id = ?")
        self._member_lists.fetch_size = FETCH_SIZE

    # Writes (the graph service) ------------------------------------------------------------------------------

    async def save(self, entry: AccountList) -> None:
        await execute(self._session, self._save, (entry.owner_id, entry.list_id, entry.title, entry.replies_policy,
                                                  entry.exclusive))

    async def drop(self, owner_id: int, list_id: int) -> None:
        await execute(self._session, self._drop, (owner_id, list_id))

    async def add_member(self, entry: AccountList, member_id: int) -> None:
        """The two rows of a membership beside the list's own (idempotent; written again to change
        ``exclusive`` or ``replies_policy``). The list's own row goes after (``list_member``): an account listed
        there is wholly a member, and ``GraphService.add_to_list`` takes it as one."""
        await asyncio.gather(
            execute(self._session, self._add_membership, (entry.owner_id, member_id, entry.list_id)),
            execute(self._session, self._add_member_list, (member_id, entry.list_id, entry.owner_id,
                                                           entry.exclusive, entry.replies_policy)))

    async def list_member(self, list_id: int, member_id: int) -> None:
        await execute(self._session, self._add_member, (list_id, member_id))

    async def remove_member(self, owner_id: int, list_id: int, member_id: int) -> None:
        """The two rows of a membership beside the list's own, which goes after (``unlist_member``): a retry
        after a crash finds the member still listed and removes the rest again (idempotent)."""
        await asyncio.gather(self.drop_member_list(list_id, member_id),
                             self.drop_membership(owner_id, list_id, member_id))

    async def drop_member_list(self, list_id: int, member_id: int) -> None:
        await execute(self._session, self._remove_member_list, (member_id, list_id))

    async def drop_membership(self, owner_id: int, list_id: int, member_id: int) -> None:
        await execute(self._session, self._remove_membership, (owner_id, member_id, list_id))

    async def unlist_member(self, list_id: int, member_id: int) -> None:
        await execute(self._session, self._remove_member, (list_id, member_id))

    # Reads ----------------------------------------------------------------------------------------------

    async def of_owner(self, owner_id: int) -> list[AccountList]:
        """The owner's lists, in the order made."""
        return [_list_of(row) for row in await execute(self._session, self._of_owner, (owner_id,))]

    async def one(self, owner_id: int, list_id: int) -> AccountList | None:
        """The owner's list ``list_id``; None when the owner has none by that id."""
        rows = await execute(self._session, self._one, (owner_id, list_id))
        return _list_of(rows[0]) if rows else None

    async def members(self, list_id: int) -> list[int]:
        """Every member of a list, highest account id first."""
        return [int(row["account_id"]) for row in await execute(self._session, self._members, (list_id,))]

    async def members_page(self, list_id: int, *, max_id: int | None, since_id: int | None, min_id: int | None,
                           limit: int) -> list[int]:
        """A page of a list's members, highest account id first, with Mastodon's cursors (account ids)."""
        upper = max_id if max_id is not None else ABOVE_EVERY_ID
        if min_id is not None:
            rows = await execute(self._session, self._members_above, (list_id, min_id, upper, limit))
            rows.reverse()
        else:
            lower = since_id if since_id is not None else -1
            rows = await execute(self._session, self._members_below, (list_id, upper, lower, limit))
        return [int(row["account_id"]) for row in rows]

    async def holding(self, owner_id: int, member_id: int) -> list[int]:
        """The owner's lists that hold ``member_id``."""
        rows = await execute(self._session, self._holding, (owner_id, member_id))
        return [int(row["list_id"]) for row in rows]

    async def lists_of_member(self, member_id: int) -> list[Membership]:
        """Every list the account is in (the fanout's read, kept under its follower list version). A row written
        before it carried the replies policy (migration 0053) takes it from its list's own row."""
        rows = await execute(self._session, self._member_lists, (member_id,))
        older = [row for row in rows if row["replies_policy"] is None]
        policies = dict(zip([int(row["list_id"]) for row in older], await asyncio.gather(*(
            self.one(int(row["owner_id"]), int(row["list_id"])) for row in older)), strict=True))
        return [Membership(int(row["list_id"]), int(row["owner_id"]), bool(row["exclusive"]),
                           row["replies_policy"] or _policy_of(policies.get(int(row["list_id"])))) for row in rows]


def _policy_of(found: AccountList | None) -> str:
    return found.replies_policy if found is not None else DEFAULT_REPLIES_POLICY

"""Direct conversations: Mastodon's ``/api/v1/conversations`` and its ``direct`` stream.

A direct status (kicau/visibility.py) joins a conversation of its author and of each account it mentions that is
notified of it (an account that blocks or mutes the author is not, kicau/blocks_and_mutes.py), as Mastodon adds it
to an ``AccountConversation`` of each. A conversation is one account's: the statuses of one thread (its root,
``statuses.conversation_id``: the status it replies to's root, or its own id) among one set of accounts (the
author and every account the status mentions). Its id is a function of the two, the same for every member, so
the fanout derives it from an event alone and writing the same status twice changes nothing; its other
``participants`` are the set less the member. A new status marks it unread for everyone but its author; a read
(``POST .../read``) marks it read; a deleted status leaves it, and a conversation left without statuses goes.

The fanout records conversations in Cassandra (``conversations``, one partition an account, and
``conversations_by_last``, the same rows ordered by their newest status: Mastodon orders and pages conversations
by ``last_status_id``) in the batch that applies the event, and sends each online member a ``conversation`` event
on its ``direct`` stream; the timeline service serves, reads and forgets them. The newest status is not stored:
it is the largest of the row's ``status_ids`` (a set, so concurrent writes of two statuses both land), and the
ordering row that names another is stale: a read skips it and deletes it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from kicau.clients import execute, write_preparer
from kicau.events import Event, StatusCreated, StatusDeleted
from kicau.ids import ABOVE_EVERY_ID, BELOW_EVERY_ID
from kicau.notifications import MENTION, Notification
from kicau.visibility import DIRECT

# A page's rows read from the ordering table beyond those asked for, so stale ones (above) rarely cost a second
# read; and how many reads a page may take before it answers with what it has.
_SPARE: Final = 8
_MAX_READS: Final = 4


def conversation_id(root_id: int, members: Iterable[int]) -> int:
    """The id of the conversation of ``members`` (its author and the accounts it mentions) in the thread of
    ``root_id``: 48 bits of a hash of both, never 0, and within the 53 bits a JavaScript client reads exactly."""
    digest = hashlib.blake2b(f"{root_id}:{','.join(map(str, sorted(set(members))))}".encode(),
                             digest_size=6).digest()
    return int.from_bytes(digest, "big") or 1


def thread_root(row: dict[str, Any]) -> int:
    """The root of the thread of the status in ``row`` (its ``statuses`` row): what a reply to it records as its
    own ``conversation_id``."""
    return int(row.get("conversation_id") or row["id"])


@dataclass(frozen=True, slots=True)
class ConversationChange:
    """A status joining (or leaving) one member's conversation."""

    account_id: int  # the member
    conversation_id: int
    root_id: int
    participants: tuple[int, ...]  # the conversation's other accounts, in id order
    status_id: int
    unread: bool = False


@dataclass(frozen=True, slots=True)
class Conversation:
    account_id: int
    id: int
    root_id: int
    participants: tuple[int, ...]
    status_ids: frozenset[int]
    unread: bool

    @property
    def last_status_id(self) -> int:
        return max(self.status_ids)


def _changes(event: StatusCreated | StatusDeleted, members: Iterable[int], unread: bool) -> list[ConversationChange]:
    everyone = {event.account_id, *event.mentions}
    root = event.conversation_id or event.status_id
    key = conversation_id(root, everyone)
    return [ConversationChange(member, key, root, tuple(sorted(everyone - {member})), event.status_id,
                               unread and member != event.account_id)
            for member in dict.fromkeys(members)]


def joined(events: Sequence[Event], notices: Sequence[Notification]) -> list[ConversationChange]:
    """The conversations the batch's new direct statuses join: their author's and those of the accounts notified
    of their mention (``notices``, after blocks and mutes)."""
    mentioned: dict[int, list[int]] = {}
    for notice in notices:
        if notice.type == MENTION and notice.status_id is not None:
            mentioned.setdefault(notice.status_id, []).append(notice.account_id)
    return [change for event in events
            if isinstance(event, StatusCreated) and event.visibility == DIRECT and not event.reblog_of
            for change in _changes(event, [event.account_id, *mentioned.get(event.status_id, ())], unread=True)]


def left(events: Sequence[Event]) -> list[ConversationChange]:
    """The conversations the batch's deleted direct statuses leave: their author's and every mentioned account's
    (one never joined is left unchanged)."""
    return [change for event in events
            if isinstance(event, StatusDeleted) and event.visibility == DIRECT and not event.reblog_of
            for change in _changes(event, [event.account_id, *event.mentions], unread=False)]


def shown_accounts(conversation: Conversation | ConversationChange) -> tuple[int, ...]:
    """The accounts a member's conversation shows: the other participants, or the member itself when it wrote to
    no one else (as Mastodon shows it)."""
    return conversation.participants or (conversation.account_id,)


def rendered(conversation: Conversation, accounts: Sequence[bytes], last_status: bytes | None) -> bytes:
    """Mastodon's Conversation entity, the account cards (``shown_accounts``') and the Status JSON (null: one its
    member may no longer see) spliced in undecoded."""
    unread = b"true" if conversation.unread else b"false"
    return (b'{"id":"' + str(conversation.id).encode() + b'","unread":' + unread + b',"accounts":['
            + b",".join(accounts) + b'],"last_status":' + (last_status or b"null") + b"}")


class ConversationStore:
    """The ``conversations`` and ``conversations_by_last`` tables: written by the fanout, read, marked read and
    forgotten through the timeline service."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        self._consistency = write_consistency
        write = write_preparer(session, write_consistency)
        self._join = write("UPDATE conversations SET status_ids = status_ids + ?, root_id = ?, participant_ids = ?,"
                           " unread = ? WHERE account_id = ? AND id = ?")
        self._leave = write("UPDATE conversations SET status_ids = status_ids - ? WHERE account_id = ? AND id = ?")
        self._mark = write("UPDATE conversations SET unread = ? WHERE account_id = ? AND id = ?")
        self._drop = write("DELETE FROM conversations WHERE account_id = ? AND id = ?")
        self._order = write("INSERT INTO conversations_by_last (account_id, last_status_id, id) VALUES (?, ?, ?)")
        self._unorder = write("DELETE FROM conversations_by_last WHERE account_id = ? AND last_status_id = ?"
                              " AND id = ?")
        prepare = session.prepare
        self._one = prepare("SELECT * FROM conversations WHERE account_id = ? AND id = ?")
        self._many = prepare("SELECT * FROM conversations WHERE account_id = ? AND id IN ?")
        self._newest = prepare("SELECT last_status_id, id FROM conversations_by_last WHERE account_id = ?"
                               " AND last_status_id < ? AND last_status_id > ? LIMIT ?")
        self._oldest_above = prepare("SELECT last_status_id, id FROM conversations_by_last WHERE account_id = ?"
                                     " AND last_status_id > ? AND last_status_id < ? ORDER BY last_status_id ASC"
                                     " LIMIT ?")
        self._statuses = prepare("SELECT id, account_id, visibility, conversation_id, mentions, deleted_at"
                                 " FROM statuses WHERE id IN ?")

    async def joined_late(self, member: int, status_ids: Iterable[int]) -> list[ConversationChange]:
        """The conversations ``member`` joins now for statuses that mentioned it before without (their
        notifications held back by its policy, kicau/notification_policies.py, then accepted): those of them
        still there and direct, unread, as the fanout would have joined them."""
        wanted = sorted(set(status_ids))
        if not wanted:
            return []
        rows = await execute(self._session, self._statuses, (wanted,))
        changes = []
        for row in rows:
            if row.get("visibility") != DIRECT or row.get("deleted_at") is not None:
                continue
            author = int(row["account_id"])
            everyone = {author, *(int(mentioned) for mentioned, _ in row.get("mentions") or ())}
            root = thread_root(row)
            changes.append(ConversationChange(member, conversation_id(root, everyone), root,
                                              tuple(sorted(everyone - {member})), int(row["id"]), member != author))
        return changes

    def _batch(self) -> BatchStatement:
        # Logged: the row and its place in the order land together or not at all, whatever fails between.
        return BatchStatement(batch_type=BatchType.LOGGED, consistency_level=self._consistency)

    async def apply(self, joined: Iterable[ConversationChange], left: Iterable[ConversationChange]) -> None:
        """Each change a read and a logged batch of its own, all at once (each falls in its member's partition).
        The batch's joins before its leaves, so a status posted and deleted in one batch leaves no trace."""
        await asyncio.gather(*(self.join(change) for change in joined))
        await asyncio.gather(*(self.leave(change) for change in left))

    async def join(self, change: ConversationChange) -> None:
        """The status joins the member's conversation (again: nothing changes)."""
        current = await self.one(change.account_id, change.conversation_id)
        if current is not None and change.status_id in current.status_ids:
            return
        key = (change.account_id, change.conversation_id)
        batch = self._batch()
        batch.add(self._join, ({change.status_id}, change.root_id, list(change.participants), change.unread, *key))
        last = change.status_id if current is None else max(current.last_status_id, change.status_id)
        batch.add(self._order, (change.account_id, last, change.conversation_id))
        if current is not None and current.last_status_id != last:
            batch.add(self._unorder, (change.account_id, current.last_status_id, change.conversation_id))
        await execute(self._session, batch)

    async def leave(self, change: ConversationChange) -> None:
        """The status leaves the member's conversation, which goes with its last status."""
        current = await self.one(change.account_id, change.conversation_id)
        if current is None or change.status_id not in current.status_ids:
            return
        remaining = current.status_ids - {change.status_id}
        if not remaining:
            await self._forget(current)
            return
        batch = self._batch()
        batch.add(self._leave, ({change.status_id}, change.account_id, change.conversation_id))
        last = max(remaining)
        if last != current.last_status_id:
            batch.add(self._order, (change.account_id, last, change.conversation_id))
            batch.add(self._unorder, (change.account_id, current.last_status_id, change.conversation_id))
        await execute(self._session, batch)

    async def one(self, account_id: int, conversation_id: int) -> Conversation | None:
        rows = await execute(self._session, self._one, (account_id, conversation_id))
        return _from_row(rows[0]) if rows else None

    async def mark_read(self, account_id: int, conversation_id: int) -> Conversation | None:
        """The conversation marked read (None: the account has none of that id)."""
        current = await self.one(account_id, conversation_id)
        if current is None:
            return None
        if current.unread:
            await execute(self._session, self._mark, (False, account_id, conversation_id))
        return Conversation(current.account_id, current.id, current.root_id, current.participants,
                            current.status_ids, unread=False)

    async def forget(self, account_id: int, conversation_id: int) -> bool:
        """The conversation removed from the account's (False: it had none of that id). A new status in it makes
        it again, as on Mastodon."""
        current = await self.one(account_id, conversation_id)
        if current is None:
            return False
        await self._forget(current)
        return True

    async def _forget(self, current: Conversation) -> None:
        batch = self._batch()
        batch.add(self._drop, (current.account_id, current.id))
        batch.add(self._unorder, (current.account_id, current.last_status_id, current.id))
        await execute(self._session, batch)

    async def page(self, account_id: int, *, max_id: int | None, since_id: int | None, min_id: int | None,
                   limit: int) -> list[Conversation]:
        """The account's conversations, newest last status first, with Mastodon's cursors (last status ids;
        ``min_id`` walks forward from the cursor)."""
        upper = max_id if max_id is not None else ABOVE_EVERY_ID
        lower = since_id if since_id is not None else BELOW_EVERY_ID
        forward = min_id is not None
        if forward:
            lower = max(lower, min_id or 0)
        found: list[Conversation] = []
        for _ in range(_MAX_READS):
            wanted = limit - len(found)
            statement = self._oldest_above if forward else self._newest
            bounds = (lower, upper) if forward else (upper, lower)
            ordered = await execute(self._session, statement, (account_id, *bounds, wanted + _SPARE))
            found += await self._current(account_id, ordered)
            if len(ordered) < wanted + _SPARE or len(found) >= limit:
                break
            edge = int(ordered[-1]["last_status_id"])
            lower, upper = (edge, upper) if forward else (lower, edge)
        found = found[:limit]
        if forward:
            found.reverse()
        return found

    async def _current(self, account_id: int, ordered: list[dict[str, Any]]) -> list[Conversation]:
        """The conversations the ordering rows name, in their order, each once and where its newest status is the
        row's; the stale rows are deleted."""
        if not ordered:
            return []
        rows = await execute(self._session, self._many,
                             (account_id, list(dict.fromkeys(int(row["id"]) for row in ordered))))
        current = {c.id: c for c in map(_from_row, rows) if c is not None}
        shown: list[Conversation] = []
        stale: list[tuple[int, int, int]] = []
        seen: set[int] = set()
        for row in ordered:
            key, last = int(row["id"]), int(row["last_status_id"])
            conversation = current.get(key)
            if conversation is None or conversation.last_status_id != last:
                stale.append((account_id, last, key))
            elif key not in seen:
                seen.add(key)
                shown.append(conversation)
        if stale:
            await asyncio.gather(*(execute(self._session, self._unorder, values) for values in stale))
        return shown


def _from_row(row: dict[str, Any]) -> Conversation | None:
    """A row without statuses (its last one left while a read marked it) is no conversation."""
    status_ids = row.get("status_ids")
    if not status_ids:
        return None
    return Conversation(int(row["account_id"]), int(row["id"]), int(row.get("root_id") or 0),
                        tuple(int(a) for a in row.get("participant_ids") or ()),
                        frozenset(int(s) for s in status_ids), bool(row.get("unread")))

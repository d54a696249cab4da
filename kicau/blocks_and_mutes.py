"""Blocks and mutes: accounts hiding other accounts (``/api/v1/accounts/:id/block``, ``/mute``, ``/api/v1/blocks``,
``/api/v1/mutes``, a Relationship's ``blocking``, ``blocked_by``, ``muting``, ``muting_notifications``).

The record is Cassandra's (stack/migrations/0020_blocks_and_mutes.cql), written by the graph service as followed
hashtags are (kicau/tag_follows.py):

* **hide** (block or mute): a claim per (account, target, kind) with a lightweight transaction (``account_hides``),
  so a repeated block or mute is one and keeps its id (the account's list is ordered and paged by it); then the
  account's list (``blocks_by_account`` or ``mutes_by_account``), the target's hider row (``account_hiders``) and
  the claim's own columns, written again by every retry, so a crash after the claim is repaired by the next
  attempt. A mute with a duration writes all of them with the duration as their TTL: it ends by itself.
* **unhide**: the hider row and the list entry first, then the claim given back (conditional on its id).

What hiding does (Mastodon's rules): neither a blocked nor a muted account's statuses reach the hider's home
timeline or streams, nor reblogs of them, nor its direct statuses, nor those its hashtags would bring; their
notifications reach the hider unless it is a mute that keeps them (``notifications`` false). A block also ends
the follows between the two accounts, both ways, and neither may follow the other while it lasts. Statuses
already in the hider's home timeline are removed when the hide is made (``AccountHidden``); unmuting a followed
account puts its newest statuses back, as a follow would.

What is already written is left out as it is shown (``Hides``, read through a copy of each reader's, kept by
``HideCopies`` as kicau/reader_copies.py keeps such copies): a status of an account that blocks the reader is not
the reader's to see anywhere, and another account's reblog of a status by an account the reader hides leaves every
page, so a reblog that was in the home timeline before the hide leaves it too (rules in ``Hides``).

The fanout learns who hides an author from ``hiders`` through copies in memory kept under the author's follower
list version (kicau/follower_lists.py): the graph service drops that version before and after it writes a hider
row, so a hide counts from the fanout's next batch on, exactly as a follow or unfollow does.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import msgspec
from cassandra.cluster import Session
from redis.asyncio import Redis

from kicau import keys
from kicau.clients import execute, write_preparer
from kicau.marked_lists import MarkedList
from kicau.reader_copies import COPY_SECONDS, ReaderCopies, change_commands
from kicau.tracked_cache import TrackedCache

Kind = Literal["block", "mute"]
BLOCK: Final = "block"
MUTE: Final = "mute"

# The longest mute with an end, a year: a mute's rows carry its duration as their TTL, and Cassandra refuses a TTL
# whose expiry falls past 2038-01-19 (in its 4.x-compatible storage mode); longer, mute without an end.
MAX_MUTE_SECONDS: Final = 365 * 86400
# An author's hiders are read in pages of this many rows.
HIDERS_FETCH_SIZE = 5000


@dataclass(frozen=True)
class Hide:
    """One block or mute as its claim holds it."""

    kind: str
    hide_id: int
    notifications: bool  # whether the target's notifications are hidden too (always, for a block)
    expires_at: datetime.datetime | None


@dataclass(frozen=True)
class Between:
    """What one account hides of another, and whether the other blocks it: a Relationship's hiding fields."""

    blocking: bool = False
    muting: bool = False
    muting_notifications: bool = False
    blocked_by: bool = False


def encode_hiders(rows: Iterable[tuple[int, str, bool]]) -> list[int]:
    """An author's hiders as the fanout keeps them, from (account, kind, notifications) rows: one int each, the
    account's id when it hides the author's notifications as well as its statuses (a block, or a mute of both),
    its negated id when it hides the statuses only (a mute that keeps notifications). Negated, so a list of
    them stays a flat array of machine integers in the fanout's cache (kicau/follower_lists.py)."""
    hides_notifications: dict[int, bool] = {}
    for account_id, kind, notifications in rows:
        both = kind == BLOCK or bool(notifications)
        hides_notifications[account_id] = hides_notifications.get(account_id, False) or both
    return [account if both else -account for account, both in hides_notifications.items()]


def status_hiders(encoded: Sequence[int]) -> set[int]:
    """Who hides the author's statuses: every hider (``encode_hiders``)."""
    return {abs(a) for a in encoded}


def notification_hiders(encoded: Sequence[int]) -> set[int]:
    """Who hides the author's notifications: blocks, and mutes that hide notifications too."""
    return {a for a in encoded if a > 0}


@dataclass(frozen=True, slots=True)
class Hides:
    """What an account's reads leave out, by author: the accounts it blocks or mutes (``hidden``), and those that
    block it (``blockers``).

    Mastodon's rules, applied as statuses are shown (kicau/status_cards.py): a status of an account that blocks the
    reader is not the reader's to see anywhere (a profile, a thread, a status by its id, a reblog of it); the
    statuses of accounts the reader blocks or mutes are left out of its home and list timelines, the public and
    hashtag timelines and threads (``kicau.status_cards.HIDING_CONTEXTS``), though still shown on their own profile
    or by id; and another account's reblog of a status by any of them is left out everywhere."""

    hidden: frozenset[int] = frozenset()
    blockers: frozenset[int] = frozenset()
    # Of ``hidden``, those it blocks: it may not favourite or reblog their statuses either.
    blocking: frozenset[int] = frozenset()
    # When the first of the reader's mutes with a duration ends (seconds since the epoch), if it has one: a copy
    # is not used past it.
    ends_at: float | None = None

    def __bool__(self) -> bool:
        return bool(self.hidden or self.blockers)

    def hides(self, author: int, *, hidden_too: bool) -> bool:
        """Whether a status by ``author`` is left out: always when the author blocks the reader; when the reader
        hides the author, only where ``hidden_too``."""
        return author in self.blockers or (hidden_too and author in self.hidden)

    def unwanted(self) -> frozenset[int]:
        """Every author left out of the reader's public and hashtag timelines."""
        return self.hidden | self.blockers


NO_HIDES: Final = Hides()


def encode_hides(hides: Hides) -> bytes:
    return msgspec.json.encode((sorted(hides.hidden), sorted(hides.blockers), sorted(hides.blocking), hides.ends_at))


def decode_hides(raw: bytes) -> Hides:
    hidden, blockers, blocking, ends_at = msgspec.json.decode(
        raw, type=tuple[list[int], list[int], list[int], float | None])
    return Hides(frozenset(hidden), frozenset(blockers), frozenset(blocking), ends_at) if hidden or blockers \
        else NO_HIDES


class HideCopies:
    """A reader's side: what each account's reads leave out (``Hides``), from its copy (kicau/reader_copies.py),
    built from Cassandra when missing and kept no longer than its first mute with a duration lasts."""

    def __init__(self, redis: Redis, store: BlocksAndMutes, copies: TrackedCache | None = None) -> None:
        self._store = store
        self._copies = ReaderCopies(redis, copies, key=keys.hides, version=keys.hides_version, build=self._build,
                                    decode=decode_hides)

    async def of(self, account_id: int) -> Hides:
        hides = await self._copies.of(account_id)
        if hides.ends_at is not None and time.time() >= hides.ends_at:
            # A mute has ended: Redis drops an expired copy only when it gets to it (and only then tells the
            # processes holding it), so the copy is rebuilt here rather than trusted.
            hides = decode_hides(await self._copies.build(account_id))
        return hides

    async def _build(self, account_id: int) -> tuple[bytes, int]:
        hides, first_end = await self._store.hidden_from(account_id)
        if first_end is None:
            return encode_hides(hides), COPY_SECONDS
        ends_at = (first_end.replace(tzinfo=datetime.UTC) if first_end.tzinfo is None else first_end).timestamp()
        return (encode_hides(Hides(hides.hidden, hides.blockers, hides.blocking, ends_at)),
                math.ceil(min(COPY_SECONDS, ends_at - time.time())))


def copy_changes(*account_ids: int) -> list[bytes]:
    """What a block, mute, unblock or unmute does to the copies of the two accounts' ``Hides``, before its writes and
    again after them (kicau/reader_copies.py)."""
    return change_commands(*((keys.hides(a), keys.hides_version(a)) for a in account_ids))


class BlocksAndMutes:
    """The blocks' and mutes' Cassandra tables: the claims, each account's lists and each author's hiders."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        prepare = session.prepare
        self._claim = write("INSERT INTO account_hides (account_id, target_id, kind, hide_id) VALUES (?, ?, ?, ?)"
                            " IF NOT EXISTS USING TTL ?")
        self._settle = write("INSERT INTO account_hides (account_id, target_id, kind, hide_id, notifications,"
                             " expires_at) VALUES (?, ?, ?, ?, ?, ?) USING TTL ?")
        self._release = write("DELETE FROM account_hides WHERE account_id = ? AND target_id = ? AND kind = ?"
                              " IF hide_id = ?")
        self._between = prepare("SELECT kind, hide_id, notifications, expires_at FROM account_hides"
                                " WHERE account_id = ? AND target_id = ?")
        self._hidden = prepare("SELECT target_id, kind, expires_at FROM account_hides WHERE account_id = ?")
        self._hidden.fetch_size = HIDERS_FETCH_SIZE
        self._list = {BLOCK: write("INSERT INTO blocks_by_account (account_id, block_id, target_id) VALUES (?, ?, ?)"
                                   " USING TTL ?"),
                      MUTE: write("INSERT INTO mutes_by_account (account_id, mute_id, target_id) VALUES (?, ?, ?)"
                                  " USING TTL ?")}
        self._unlist = {BLOCK: write("DELETE FROM blocks_by_account WHERE account_id = ? AND block_id = ?"),
                        MUTE: write("DELETE FROM mutes_by_account WHERE account_id = ? AND mute_id = ?")}
        self._add_hider = write("INSERT INTO account_hiders (target_id, account_id, kind, notifications)"
                                " VALUES (?, ?, ?, ?) USING TTL ?")
        self._remove_hider = write("DELETE FROM account_hiders WHERE target_id = ? AND account_id = ? AND kind = ?")
        self._hiders = prepare("SELECT account_id, kind, notifications FROM account_hiders WHERE target_id = ?")
        self._hiders.fetch_size = HIDERS_FETCH_SIZE
        # The account's blocks as its list holds them: written and removed with the hider rows (not the claims).
        self._blocked = prepare("SELECT target_id FROM blocks_by_account WHERE account_id = ?")
        self._blocked.fetch_size = HIDERS_FETCH_SIZE
        self._pages = {BLOCK: MarkedList.prepare(prepare, "blocks_by_account", "account_id", "block_id", "target_id"),
                       MUTE: MarkedList.prepare(prepare, "mutes_by_account", "account_id", "mute_id", "target_id")}

    # Writes (the graph service) ------------------------------------------------------------------------------

    async def claim(self, account_id: int, target_id: int, kind: Kind, hide_id: int, ttl: int) -> int:
        """Claim the hide under ``hide_id`` (a TTL of ``ttl`` seconds, 0 for none), or find the claim already made;
        the hide's id. The caller then writes ``settle``, on every call, so a retry repairs a crash between."""
        row = (await execute(self._session, self._claim, (account_id, target_id, kind, hide_id, ttl)))[0]
        return hide_id if row["[applied]"] else int(row["hide_id"])

    async def settle(self, account_id: int, target_id: int, kind: Kind, hide_id: int, *, notifications: bool,
                     ttl: int) -> None:
        """The list entry, the hider row and the claim's columns of a claimed hide (idempotent; a repeated mute
        takes its new ``notifications`` and duration)."""
        expires_at = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=ttl)) if ttl else None
        await asyncio.gather(
            execute(self._session, self._list[kind], (account_id, hide_id, target_id, ttl)),
            execute(self._session, self._add_hider, (target_id, account_id, kind, notifications, ttl)),
            execute(self._session, self._settle, (account_id, target_id, kind, hide_id, notifications, expires_at,
                                                  ttl)))

    async def unsettle(self, account_id: int, target_id: int, kind: Kind, hide_id: int) -> None:
        """Remove the hider row and the list entry of a hide (idempotent); the claim is given back after."""
        await asyncio.gather(execute(self._session, self._remove_hider, (target_id, account_id, kind)),
                             execute(self._session, self._unlist[kind], (account_id, hide_id)))

    async def release(self, account_id: int, target_id: int, kind: Kind, hide_id: int) -> bool:
        """Give the claim back; True when this call did (a concurrent undo may have)."""
        rows = await execute(self._session, self._release, (account_id, target_id, kind, hide_id))
        return bool(rows[0]["[applied]"])

    # Reads --------------------------------------------------------------------------------------------------

    async def hides(self, account_id: int, target_id: int) -> dict[str, Hide]:
        """The account's block and mute of the target, by kind (one read)."""
        rows = await execute(self._session, self._between, (account_id, target_id))
        return {row["kind"]: Hide(row["kind"], int(row["hide_id"]),
                                  row["kind"] == BLOCK or bool(row["notifications"]), row["expires_at"])
                for row in rows}

    async def between(self, account_id: int, target_id: int) -> Between:
        """What the account hides of the target and whether the target blocks it (two reads at once)."""
        mine, theirs = await asyncio.gather(self.hides(account_id, target_id), self.hides(target_id, account_id))
        mute = mine.get(MUTE)
        return Between(blocking=BLOCK in mine, muting=mute is not None,
                       muting_notifications=mute is not None and mute.notifications, blocked_by=BLOCK in theirs)

    async def blocked_either_way(self, account_id: int, target_id: int) -> bool:
        """Whether either account blocks the other: then neither may follow the other."""
        mine, theirs = await asyncio.gather(self.hides(account_id, target_id), self.hides(target_id, account_id))
        return BLOCK in mine or BLOCK in theirs

    async def hidden_by(self, account_id: int) -> set[int]:
        """Every account the account blocks or mutes (every page)."""
        rows = await execute(self._session, self._hidden, (account_id,))
        return {int(row["target_id"]) for row in rows}

    async def hidden_from(self, account_id: int) -> tuple[Hides, datetime.datetime | None]:
        """What the account's reads leave out (``Hides``, two reads at once), and when the first of its mutes with
        a duration ends (None for none)."""
        hidden, blockers = await asyncio.gather(execute(self._session, self._hidden, (account_id,)),
                                                self.blocked_by(account_id))
        ends = [row["expires_at"] for row in hidden if row["expires_at"] is not None]
        return (Hides(frozenset(int(row["target_id"]) for row in hidden), frozenset(blockers),
                      frozenset(int(row["target_id"]) for row in hidden if row["kind"] == BLOCK)),
                min(ends) if ends else None)

    async def blocking(self, account_id: int) -> set[int]:
        """Every account the account blocks (every page)."""
        rows = await execute(self._session, self._blocked, (account_id,))
        return {int(row["target_id"]) for row in rows}

    async def blocked_by(self, account_id: int) -> set[int]:
        """Every account that blocks the account (every page)."""
        rows = await execute(self._session, self._hiders, (account_id,))
        return {int(row["account_id"]) for row in rows if row["kind"] == BLOCK}

    async def hiders(self, target_id: int) -> list[int]:
        """Whom the account's statuses and notifications must not reach: who blocks or mutes it, and whom it blocks
        (Mastodon keeps a blocker's statuses from the blocked too), encoded for the fanout (``encode_hiders``). The
        fanout keeps copies of these lists under the account's follower list version, which the graph service
        drops before and after each hide and unhide of the account, and each block by it
        (``follower_lists.forget``)."""
        hiders, blocked = await asyncio.gather(execute(self._session, self._hiders, (target_id,)),
                                               execute(self._session, self._blocked, (target_id,)))
        return encode_hiders([*((int(row["account_id"]), row["kind"], bool(row["notifications"])) for row in hiders),
                              *((int(row["target_id"]), BLOCK, True) for row in blocked)])

    async def page(self, account_id: int, kind: Kind, *, max_id: int | None, since_id: int | None,
                   min_id: int | None, limit: int) -> list[tuple[int, int]]:
        """(hide id, target) of the account's blocks or mutes, most recent first, with Mastodon's cursors (hide
        ids, as Mastodon's Link headers give them)."""
        return await self._pages[kind].page(self._session, account_id, max_id=max_id, since_id=since_id,
                                            min_id=min_id, limit=limit)

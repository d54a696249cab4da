"""What a reader has marked, for ``favourited``, ``reblogged``, ``bookmarked``, ``pinned`` and ``muted`` on every
status it reads.

One Redis set a reader (``keys.marks``) holds the ids of the statuses it favourites (``<id>``), reblogs (``r<id>``),
bookmarks (``b<id>``) and pins (``p<id>``), the roots of the threads it mutes (``m<root id>``), and the member ``0``
once it was built from Cassandra's claims (kicau/favourites.py, kicau/reblogs.py, kicau/bookmarks.py,
kicau/pins.py, kicau/thread_mutes.py): a set lost with Redis, or expired after a day, is told apart from an empty one
and built again. The post service adds and removes members as it records each mark, whether or not the set exists
(a set without its ``0`` is built again, and merged, on its next read).

A page first asks whether the set was built and how large it is: two tiny reads, packed once per reader and
answered through the copies Redis keeps true (kicau/tracked_cache.py), so a reader who marked nothing new costs
no round trip. Only a reader who marked anything asks for the page's ids (and their threads' roots), in one
``SMISMEMBER``. Asking for the ids at once cost ~10 µs a page to pack, ~3% of a home page, for the many readers
with nothing to find.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple

from redis.asyncio import Redis

from kicau import keys
from kicau.claims import Claims
from kicau.resp import command, round_trip
from kicau.tracked_cache import TrackedCache

# A reader's set is built again from Cassandra after this long, whatever happened to it.
MARKS_SET_SECONDS: Final = 24 * 3600
_BUILT: Final = b"0"  # the member a built set always holds (no status has id 0)
_PACKED_KEPT: Final = 100_000  # readers whose first reads are kept packed (~250 bytes each)


class Mark(enum.Enum):
    """A kind of mark, by the prefix of its members."""

    FAVOURITE = b""
    REBLOG = b"r"
    BOOKMARK = b"b"
    PIN = b"p"
    MUTE = b"m"  # of a thread, by its root's id: every status of it reads ``muted``

    def member(self, status_id: int) -> bytes:
        return b"%s%d" % (self.value, status_id)


class Marked(NamedTuple):
    """Which statuses of a page the reader favourites, reblogs, bookmarks and pins, and which are in threads it
    mutes (fields in ``Mark``'s order)."""

    favourited: frozenset[int]
    reblogged: frozenset[int]
    bookmarked: frozenset[int]
    pinned: frozenset[int]
    muted: frozenset[int]


NOTHING: Final = Marked(frozenset(), frozenset(), frozenset(), frozenset(), frozenset())
# The kinds whose members are the page's status ids; the last, MUTE, is of their threads' roots.
_BY_STATUS: Final = tuple(mark for mark in Mark if mark is not Mark.MUTE)


class ReaderMarks:
    """Readers' sets of marks in Redis (module doc)."""

    def __init__(self, redis: Redis, claims: Mapping[Mark, Claims], copies: TrackedCache | None = None) -> None:
        """``claims``: each kind of mark's claims table (kicau/claims.py), to build a set from."""
        if set(claims) != set(Mark):
            raise ValueError("every kind of mark needs its claims table")
        self._redis = redis
        self._claims = claims
        self._copies = copies
        self._builds: dict[int, asyncio.Task[None]] = {}
        self._packed: dict[int, tuple[str, list[bytes]]] = {}

    async def among(self, account_id: int, status_ids: Sequence[int],
                    roots: Callable[[], Sequence[int]] | None = None) -> Marked:
        """Which of ``status_ids`` the account favourites, reblogs, bookmarks and pins, and which of them are in
        threads it mutes (``roots``: gives each status's thread's root, in the same order, asked only of a reader
        who marked anything; none given, none muted)."""
        if not status_ids:
            return NOTHING
        key, first = self._first_reads(account_id)
        built, size = await self._read(key, first)
        if not built:
            await self._build(account_id)
            built, size = await round_trip(self._redis, first)
        if size <= 1:
            return NOTHING  # the "0" alone
        members = [mark.member(s) for mark in _BY_STATUS for s in status_ids]
        if roots is not None:
            members += (Mark.MUTE.member(root) for root in roots())
        (held,) = await self._read(key, [command(b"SMISMEMBER", key.encode(), *members)])
        count = len(status_ids)
        found = [frozenset(s for s, member in zip(status_ids, held[start:start + count], strict=True) if member)
                 for start in range(0, len(held), count)]
        return Marked(*found, *(() if roots is not None else (frozenset(),)))

    def _first_reads(self, account_id: int) -> tuple[str, list[bytes]]:
        """The account's key and its two first reads, packed once per account (bounded: starts over past
        ``_PACKED_KEPT``)."""
        found = self._packed.get(account_id)
        if found is None:
            if len(self._packed) >= _PACKED_KEPT:
                self._packed.clear()
            key = keys.marks(account_id)
            framed = key.encode()
            found = self._packed[account_id] = (key, [command(b"SISMEMBER", framed, _BUILT),
                                                      command(b"SCARD", framed)])
        return found

    async def _read(self, key: str, reads: list[bytes]) -> list[Any]:
        if self._copies is not None:
            return await self._copies.read_many([(key, read) for read in reads])
        return await round_trip(self._redis, reads)

    async def _build(self, account_id: int) -> None:
        """The set from the account's claims, merged into whatever the post service added meanwhile; one build
        at a time per account in this process."""
        task = self._builds.get(account_id)
        if task is None:
            task = asyncio.create_task(self._build_once(account_id))
            self._builds[account_id] = task
            task.add_done_callback(lambda _: self._builds.pop(account_id, None))
        await asyncio.shield(task)

    async def _build_once(self, account_id: int) -> None:
        kinds = list(Mark)
        claimed = await asyncio.gather(*(self._claims[mark].claimed(account_id) for mark in kinds))
        members = [_BUILT, *(mark.member(s) for mark, ids in zip(kinds, claimed, strict=True) for s in ids)]
        key = keys.marks(account_id).encode()
        await round_trip(self._redis, [command(b"SADD", key, *members),
                                       command(b"EXPIRE", key, b"%d" % MARKS_SET_SECONDS)])


def mark_commands(account_id: int, status_id: int, mark: Mark, marked: bool) -> list[bytes]:
    """What a mark (or its undoing) changes in the reader's set. Written even when the set is missing: a set
    without its ``0`` is built again (and merged) on its next read."""
    return [command(b"SADD" if marked else b"SREM", keys.marks(account_id).encode(), mark.member(status_id))]

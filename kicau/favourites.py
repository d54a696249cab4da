"""Favourites: who favourites which status, each status's ``favourites_count`` and each reader's ``favourited``.

The record is Cassandra's (stack/migrations/0010_favourites.cql). The post service writes it:

* **favourite**: a claim per (account, status) with a lightweight transaction (``favourite_claims``), so a
  repeated favourite is one and keeps its id; then the two lists the API pages (``favourites_by_account`` and
  ``favourites_by_status``) in one logged batch, written again by every retry, so a crash after the claim is
  repaired by the next attempt. The claim records that its event (the author's notification) is still to be
  published (``unsent``), and a retry publishes it again, as a follow's does.
* **unfavourite**: the lists first, then the claim given back (conditional on its id): a crash in between leaves
  the claim, and the retry removes the lists again and gives it back.

Reads render each status from its cached fragment (kicau/status_cards.py), which never changes, so the two
values that do are kept beside it and spliced in when a status is rendered:

* ``favourites_count`` is a count in the head of the status's cached value (kicau/status_tallies.py). A new
  status is cached with 0; a status cached from Cassandra counts its ``favourites_by_status`` partition
  (``COUNT_QUERY``); a favourite or unfavourite moves the count of a cached status by one in place. Where a crash
  may have come between the record's change and the count's (a favourite retried while its claim is unsent, an
  unfavourite that finds no claim), the cached value is dropped instead and counted again when next read. The
  lists and the claims are exact.
* ``favourited`` comes from the reader's set of favourited status ids in Redis (``keys.favourited``), holding
  the member ``0`` once it was built from the claims, so a set lost with Redis (or expired, after a day) is told
  apart from an empty one and built again. A page asks it whether it holds the page's ids in one command
  (``SMISMEMBER``), through the copies Redis keeps true (kicau/tracked_cache.py): a reader who favourites
  nothing new reads the same answer from memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType, PreparedStatement
from redis.asyncio import Redis

from kicau import keys
from kicau.clients import execute, write_preparer
from kicau.resp import command, round_trip
from kicau.tracked_cache import TrackedCache

_MAX: Final = (1 << 63) - 1
# A reader's set of favourited statuses is built again from Cassandra after this long, whatever happened to it.
FAVOURITED_SET_SECONDS: Final = 24 * 3600
_BUILT: Final = b"0"  # the member a built set always holds (no status has id 0)
_PACKED_KEPT: Final = 100_000  # readers whose first reads are kept packed (~250 bytes each)

COUNT_QUERY: Final = "SELECT COUNT(*) AS n FROM favourites_by_status WHERE status_id = ?"


class Claim(NamedTuple):
    favourite_id: int
    created: bool  # this call made the claim
    unsent: bool  # its event is still to be published


def _list_reads(prepare: Callable[[str], PreparedStatement], table: str, key: str,
                column: str) -> tuple[PreparedStatement, PreparedStatement]:
    """The two reads of a favourites list with Mastodon's cursors: newest first below a cursor (``max_id``,
    ``since_id``), and oldest first just above one (``min_id``)."""
    head = f"SELECT favourite_id, {column} FROM {table} WHERE {key} = ? AND favourite_id"
    return (prepare(f"{head} < ? AND favourite_id > ? LIMIT ?"),
            prepare(f"{head} > ? AND favourite_id < ? ORDER BY favourite_id ASC LIMIT ?"))


class FavouriteStore:
    """The favourites' Cassandra tables."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        self._consistency = write_consistency
        write = write_preparer(session, write_consistency)
        prepare = session.prepare
        self._claim = write("INSERT INTO favourite_claims (account_id, status_id, favourite_id, unsent)"
                            " VALUES (?, ?, ?, true) IF NOT EXISTS")
        self._sent = write("UPDATE favourite_claims SET unsent = null WHERE account_id = ? AND status_id = ?"
                           " IF favourite_id = ?")
        self._release = write("DELETE FROM favourite_claims WHERE account_id = ? AND status_id = ?"
                              " IF favourite_id = ?")
        self._claim_of = prepare("SELECT favourite_id FROM favourite_claims WHERE account_id = ? AND status_id = ?")
        self._claimed = prepare("SELECT status_id FROM favourite_claims WHERE account_id = ?")
        self._list_by_account = write("INSERT INTO favourites_by_account (account_id, favourite_id, status_id)"
                                      " VALUES (?, ?, ?)")
        self._list_by_status = write("INSERT INTO favourites_by_status (status_id, favourite_id, account_id)"
                                     " VALUES (?, ?, ?)")
        self._unlist_by_account = write("DELETE FROM favourites_by_account WHERE account_id = ? AND favourite_id = ?")
        self._unlist_by_status = write("DELETE FROM favourites_by_status WHERE status_id = ? AND favourite_id = ?")
        self._of_account = _list_reads(prepare, "favourites_by_account", "account_id", "status_id")
        self._of_status = _list_reads(prepare, "favourites_by_status", "status_id", "account_id")

    # Writes (the post service) ------------------------------------------------------------------------------

    async def claim(self, account_id: int, status_id: int, favourite_id: int) -> Claim:
        """Claim the favourite under ``favourite_id``, or find the claim already made (a lightweight transaction
        that is not applied returns the row it found)."""
        row = (await execute(self._session, self._claim, (account_id, status_id, favourite_id)))[0]
        if row["[applied]"]:
            return Claim(favourite_id, created=True, unsent=True)
        return Claim(int(row["favourite_id"]), created=False, unsent=bool(row.get("unsent")))

    async def add_to_lists(self, account_id: int, status_id: int, favourite_id: int) -> None:
        """Both lists, in one logged batch: both or neither. Idempotent."""
        batch = BatchStatement(batch_type=BatchType.LOGGED, consistency_level=self._consistency)
        batch.add(self._list_by_account, (account_id, favourite_id, status_id))
        batch.add(self._list_by_status, (status_id, favourite_id, account_id))
        await execute(self._session, batch)

    async def sent(self, account_id: int, status_id: int, favourite_id: int) -> None:
        await execute(self._session, self._sent, (account_id, status_id, favourite_id))

    async def claim_of(self, account_id: int, status_id: int) -> int | None:
        rows = await execute(self._session, self._claim_of, (account_id, status_id))
        return int(rows[0]["favourite_id"]) if rows else None

    async def remove_from_lists(self, account_id: int, status_id: int, favourite_id: int) -> None:
        batch = BatchStatement(batch_type=BatchType.LOGGED, consistency_level=self._consistency)
        batch.add(self._unlist_by_account, (account_id, favourite_id))
        batch.add(self._unlist_by_status, (status_id, favourite_id))
        await execute(self._session, batch)

    async def release(self, account_id: int, status_id: int, favourite_id: int) -> bool:
        """Give the claim back; True when this call did (a concurrent unfavourite may have)."""
        rows = await execute(self._session, self._release, (account_id, status_id, favourite_id))
        return bool(rows[0]["[applied]"])

    # Reads ---------------------------------------------------------------------------------------------------

    async def favourited(self, account_id: int) -> list[int]:
        """Every status the account favourites (to build its set)."""
        rows = await execute(self._session, self._claimed, (account_id,))
        return [int(row["status_id"]) for row in rows]

    async def of_account(self, account_id: int, *, max_id: int | None, since_id: int | None, min_id: int | None,
                         limit: int) -> list[tuple[int, int]]:
        """(favourite id, status id) of the account's favourites, newest first, with Mastodon's cursors (which
        are favourite ids, as Mastodon's Link headers give them)."""
        return await self._page(self._of_account, account_id, max_id, since_id, min_id, limit, "status_id")

    async def of_status(self, status_id: int, *, max_id: int | None, since_id: int | None, min_id: int | None,
                        limit: int) -> list[tuple[int, int]]:
        """(favourite id, account id) of the status's favourites, newest first, as ``of_account``."""
        return await self._page(self._of_status, status_id, max_id, since_id, min_id, limit, "account_id")

    async def _page(self, reads: tuple[PreparedStatement, PreparedStatement], key: int, max_id: int | None,
                    since_id: int | None, min_id: int | None, limit: int, column: str) -> list[tuple[int, int]]:
        newest, oldest = reads
        upper = max_id if max_id is not None else _MAX
        if min_id is not None:
            rows = await execute(self._session, oldest, (key, min_id, upper, limit))
            rows.reverse()
        else:
            rows = await execute(self._session, newest, (key, upper, since_id if since_id is not None else -1, limit))
        return [(int(row["favourite_id"]), int(row[column])) for row in rows]


class FavouritedSets:
    """Readers' sets of favourited status ids in Redis (module doc)."""

    def __init__(self, redis: Redis, store: FavouriteStore, copies: TrackedCache | None = None) -> None:
        self._redis = redis
        self._store = store
        self._copies = copies
        self._builds: dict[int, asyncio.Task[None]] = {}
        self._packed: dict[int, tuple[str, list[bytes]]] = {}

    async def among(self, account_id: int, status_ids: Sequence[int]) -> set[int]:
        """Which of ``status_ids`` the account favourites.

        First whether the set was built and how large it is (two tiny reads, through the copies: nothing to ask
        Redis while the set is unchanged), then, only for an account that favourites anything, the page's ids.
        Asking for the ids at once cost ~10 µs a page to pack, ~3% of a home page, for the many readers with
        nothing to find."""
        if not status_ids:
            return set()
        key, first = self._first_reads(account_id)
        built, size = await self._read(key, first)
        if not built:
            await self._build(account_id)
            built, size = await round_trip(self._redis, first)
        if size <= 1:
            return set()  # the "0" alone
        (held,) = await self._read(key, [command(b"SMISMEMBER", key.encode(), *(b"%d" % s for s in status_ids))])
        return {status_id for status_id, member in zip(status_ids, held, strict=True) if member}

    def _first_reads(self, account_id: int) -> tuple[str, list[bytes]]:
        """The account's key and its two first reads, packed once per account (bounded: starts over past
        ``_PACKED_KEPT``)."""
        found = self._packed.get(account_id)
        if found is None:
            if len(self._packed) >= _PACKED_KEPT:
                self._packed.clear()
            key = keys.favourited(account_id)
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
        members = [_BUILT, *(b"%d" % s for s in await self._store.favourited(account_id))]
        key = keys.favourited(account_id).encode()
        await round_trip(self._redis, [command(b"SADD", key, *members),
                                       command(b"EXPIRE", key, b"%d" % FAVOURITED_SET_SECONDS)])


def set_commands(account_id: int, status_id: int, favourited: bool) -> list[bytes]:
    """What a favourite (or unfavourite) changes in the reader's set. Written even when the set is missing: a set
    without its ``0`` is built again (and merged) on its next read."""
    key = keys.favourited(account_id).encode()
    return [command(b"SADD" if favourited else b"SREM", key, b"%d" % status_id)]


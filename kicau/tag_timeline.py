"""Hashtag timelines: the public statuses carrying a hashtag, newest first (Mastodon's
``/api/v1/timelines/tag/:hashtag``).

Cassandra holds them (``statuses_by_tag``): one partition per hashtag and day of the status's id, so a busy
hashtag's partitions stay the size of a day's posts, and ``tag_days`` lists the days each hashtag has, so a page
of a hashtag used once a month reads that month's partition, not thirty empty ones. The fanout writes both in the
batch that applies the events, before their offsets are committed (a replay writes the same rows), and removes a
deleted status's rows; a day stays listed after its last status is deleted (reading it finds nothing).

Only public statuses are listed, and no reblog, as on Mastodon's hashtag timelines (kicau/visibility.py). There is
no Redis copy: a hashtag timeline is read far less than a home timeline, and a page costs one read of the days
and one read a day until it is full.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from kicau.clients import execute, write_preparer
from kicau.ids import ABOVE_EVERY_ID, BELOW_EVERY_ID, ms_from_id

DAY_MS = 86_400_000
# Days listed a read; days whose statuses are read at once.
_DAYS_A_READ = 64
_DAYS_AT_ONCE = 4


def day_of(status_id: int) -> int:
    return ms_from_id(status_id) // DAY_MS


class TaggedStatuses:
    """The ``statuses_by_tag`` and ``tag_days`` tables: written by the fanout, paged by the timeline service."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        self._consistency = write_consistency
        write = write_preparer(session, write_consistency)
        self._insert = write("INSERT INTO statuses_by_tag (tag, day, status_id) VALUES (?, ?, ?)")
        self._delete = write("DELETE FROM statuses_by_tag WHERE tag = ? AND day = ? AND status_id = ?")
        self._list_day = write("INSERT INTO tag_days (tag, day) VALUES (?, ?)")
        self._days_back = session.prepare(
            "SELECT day FROM tag_days WHERE tag = ? AND day <= ? AND day >= ? LIMIT ?")
        self._days_forward = session.prepare(
            "SELECT day FROM tag_days WHERE tag = ? AND day >= ? AND day <= ? ORDER BY day ASC LIMIT ?")
        self._any_day = session.prepare("SELECT day FROM tag_days WHERE tag = ? LIMIT 1")
        self._back = session.prepare("SELECT status_id FROM statuses_by_tag WHERE tag = ? AND day = ?"
                                     " AND status_id < ? AND status_id > ? LIMIT ?")
        self._forward = session.prepare("SELECT status_id FROM statuses_by_tag WHERE tag = ? AND day = ?"
                                        " AND status_id < ? AND status_id > ? ORDER BY status_id ASC LIMIT ?")

    async def apply(self, added: Iterable[tuple[str, int]], removed: Iterable[tuple[str, int]]) -> None:
        """List (hashtag, status id) pairs and unlist deleted ones; never one pair both added and removed in a
        call (the two writes would race). One unlogged batch a partition, all at once: a fanout batch's pairs
        fall in few partitions (a hashtag's day), and the days listed go in the hashtag's own batch."""
        batches: dict[tuple[str, int], BatchStatement] = {}
        days: dict[str, set[int]] = {}

        def batch_of(key: tuple[str, int]) -> BatchStatement:
            batch = batches.get(key)
            if batch is None:
                batch = batches[key] = BatchStatement(batch_type=BatchType.UNLOGGED,
                                                      consistency_level=self._consistency)
            return batch

        for tag, status_id in added:
            day = day_of(status_id)
            batch_of((tag, day)).add(self._insert, (tag, day, status_id))
            days.setdefault(tag, set()).add(day)
        for tag, status_id in removed:
            day = day_of(status_id)
            batch_of((tag, day)).add(self._delete, (tag, day, status_id))
        listings = []  # tag_days's partition is the hashtag alone
        for tag, listed in days.items():
            listing = BatchStatement(batch_type=BatchType.UNLOGGED, consistency_level=self._consistency)
            for day in listed:
                listing.add(self._list_day, (tag, day))
            listings.append(listing)
        await asyncio.gather(*(execute(self._session, batch) for batch in [*batches.values(), *listings]))

    async def exists(self, tag: str) -> bool:
        """Whether a public status ever carried the hashtag (a day is listed for it)."""
        return bool(await execute(self._session, self._any_day, (tag,)))

    async def page(self, tag: str, *, max_id: int | None = None, since_id: int | None = None,
                   min_id: int | None = None, limit: int = 20) -> list[int]:
        """A page of the hashtag's statuses, newest first, with Mastodon's cursors: older than ``max_id``; newer
        than ``since_id`` (the newest of them) or than ``min_id`` (those just after it)."""
        upper = ABOVE_EVERY_ID if max_id is None else max_id
        if min_id is not None:
            lower = max(min_id, since_id) if since_id is not None else min_id
            return list(reversed(await self._read(tag, upper, lower, limit, forward=True)))
        return await self._read(tag, upper, BELOW_EVERY_ID if since_id is None else since_id, limit, forward=False)

    async def _read(self, tag: str, upper: int, lower: int, limit: int, *, forward: bool) -> list[int]:
        """Up to ``limit`` ids strictly between ``lower`` and ``upper``: the newest of them newest first, or
        (``forward``) the oldest of them oldest first."""
        if upper <= lower + 1:
            return []
        first_day, last_day = day_of(max(lower, 0)), day_of(upper)
        found: list[int] = []
        while True:
            if forward:
                rows = await execute(self._session, self._days_forward, (tag, first_day, last_day, _DAYS_A_READ))
            else:
                rows = await execute(self._session, self._days_back, (tag, last_day, first_day, _DAYS_A_READ))
            days = [int(row["day"]) for row in rows]
            statement = self._forward if forward else self._back
            for start in range(0, len(days), _DAYS_AT_ONCE):
                chunk = days[start:start + _DAYS_AT_ONCE]
                pages = await asyncio.gather(*(execute(self._session, statement, (tag, day, upper, lower, limit))
                                               for day in chunk))
                for page in pages:  # in the order read: each day's ids in the same order
                    found.extend(int(row["status_id"]) for row in page)
                    if len(found) >= limit:
                        return found[:limit]
            if len(days) < _DAYS_A_READ:
                return found
            # More days than one read lists: go on past the last one listed.
            if forward:
                first_day = days[-1] + 1
            else:
                last_day = days[-1] - 1

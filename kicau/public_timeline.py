"""The public timeline: every public status on this server, newest first (Mastodon's ``/api/v1/timelines/public``
and its ``public`` stream). Kicau does not federate, so it is also the local timeline.

Read from Redis, as a home timeline is (``keys.public_feed``, a list in ``kicau.feeds``'s representation, capped
like one): the fanout pushes each public status into it with the status's other timeline writes and removes it
on delete. Its durable record is Cassandra's ``public_statuses``, one partition an hour of status ids (an hour
holds what a busy server posts without growing a partition past what one read takes), written by the fanout in
the batch that applies the events and before their offsets are committed, so a replay writes the same rows. A
timeline lost with Redis is rebuilt from the newest hours, going back at most ``REBUILD_HOURS``.

Unlisted, followers-only and direct statuses never enter it (kicau/visibility.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from kicau.clients import execute, write_preparer
from kicau.ids import ms_from_id

HOUR_MS = 3_600_000
# How far back a rebuild looks for public statuses: a week of hours, read a day at a time.
REBUILD_HOURS = 7 * 24
_HOURS_AT_ONCE = 24


def hour_of(status_id: int) -> int:
    return ms_from_id(status_id) // HOUR_MS


class PublicStatuses:
    """The ``public_statuses`` table: written by the fanout, read by the timeline service to rebuild."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        self._consistency = write_consistency
        write = write_preparer(session, write_consistency)
        self._insert = write("INSERT INTO public_statuses (hour, status_id) VALUES (?, ?)")
        self._delete = write("DELETE FROM public_statuses WHERE hour = ? AND status_id = ?")
        self._newest = session.prepare("SELECT status_id FROM public_statuses WHERE hour = ? LIMIT ?")

    async def apply(self, added: Iterable[int], removed: Iterable[int]) -> None:
        """Record public statuses and remove deleted ones; never one status both added and removed in a call (the
        two writes would race). One unlogged batch an hour, all at once: a fanout batch's statuses fall in one
        partition or two, and a single-partition batch costs Cassandra about one write, where a write a status
        would have cost it nearly as much again as the post's own writes."""
        by_hour: dict[int, BatchStatement] = {}

        def batch_of(status_id: int) -> BatchStatement:
            hour = hour_of(status_id)
            batch = by_hour.get(hour)
            if batch is None:
                batch = by_hour[hour] = BatchStatement(batch_type=BatchType.UNLOGGED,
                                                       consistency_level=self._consistency)
            return batch

        for status_id in added:
            batch_of(status_id).add(self._insert, (hour_of(status_id), status_id))
        for status_id in removed:
            batch_of(status_id).add(self._delete, (hour_of(status_id), status_id))
        await asyncio.gather(*(execute(self._session, batch) for batch in by_hour.values()))

    async def newest(self, limit: int, now_ms: float | None = None) -> list[int]:
        """Up to ``limit`` of the newest public statuses, newest first: the hours from now back, a day's hours
        read at once, until ``limit`` are found or ``REBUILD_HOURS`` were read."""
        # From the hour after now's: a status stamped by a clock a little ahead of this one is not missed.
        first = int((time.time() * 1000 if now_ms is None else now_ms) // HOUR_MS) + 1
        found: list[int] = []
        for start in range(first, first - REBUILD_HOURS, -_HOURS_AT_ONCE):
            hours = range(start, max(start - _HOURS_AT_ONCE, first - REBUILD_HOURS), -1)
            pages = await asyncio.gather(*(execute(self._session, self._newest, (hour, limit)) for hour in hours))
            for rows in pages:  # newest hour first, each newest first
                found.extend(int(row["status_id"]) for row in rows)
                if len(found) >= limit:
                    return found[:limit]
        return found

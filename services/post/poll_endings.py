"""Polls' ends (kicau/polls.py): when a poll ends, its author and everyone who voted in it are notified (``poll``),
as Mastodon notifies them.

A status posted with a poll is planned in Cassandra's ``poll_endings`` (the hour it ends in, migration 0035) before
it is published; a failed plan fails the post, which is rolled back. The ``PollEndings`` scheduler reads the hours
from the first that may still hold unpublished ends (``poll_endings_progress``) up to the current one, about once a
second, and for each poll that ended publishes ``poll.ended`` (kicau/events.py) with the status as anyone sees it
then, and removes the plan. The event's notification id is made from the moment the poll ended and the status's
id, the same however often it is published: a scheduler that dies between the publish and the removal publishes it
again, and the fanout records the one notification. A poll whose status was deleted meanwhile notifies no one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.crash_points import crash_point
from kicau.ids import id_from_ms

log = logging.getLogger(__name__)

_SHARD: Final = 0  # one progress row: one scheduler's hours (two post services publish the same, harmlessly)
FIRST_LOOK_BACK_HOURS: Final = 24  # a scheduler with no progress recorded (its first start) looks this far back
_LOW_BITS: Final = 0xFFFF


def hour_of(moment: datetime) -> int:
    return int(moment.timestamp()) // 3600


def notification_id(status_id: int, ends: datetime) -> int:
    """The id of a poll's end's notifications: of the moment it ended (so it reads as made then), with the low bits
    of the status's id (two polls ending in the same millisecond are told apart)."""
    return id_from_ms(int(ends.timestamp() * 1000)) | (status_id & _LOW_BITS)


@dataclass(frozen=True, slots=True)
class Ending:
    hour: int
    ends_at: datetime
    status_id: int
    author_id: int


class PollEndingStore:
    """``poll_endings`` and its progress row."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._plan = write("INSERT INTO poll_endings (hour, ends_at, status_id, author_id) VALUES (?, ?, ?, ?)")
        self._unplan = write("DELETE FROM poll_endings WHERE hour = ? AND ends_at = ? AND status_id = ?")
        self._due = session.prepare("SELECT ends_at, status_id, author_id FROM poll_endings WHERE hour = ?"
                                    " AND ends_at <= ?")
        self._progress = write("INSERT INTO poll_endings_progress (shard, hour) VALUES (?, ?)")
        self._read_progress = session.prepare("SELECT hour FROM poll_endings_progress WHERE shard = ?")

    async def plan(self, status_id: int, author_id: int, ends: datetime) -> None:
        await execute(self._session, self._plan, (hour_of(ends), ends, status_id, author_id))

    async def unplan(self, ending: Ending) -> None:
        await execute(self._session, self._unplan, (ending.hour, ending.ends_at, ending.status_id))

    async def due(self, hour: int, now: datetime) -> list[Ending]:
        rows = await execute(self._session, self._due, (hour, now))
        return [Ending(hour, row["ends_at"].replace(tzinfo=UTC), int(row["status_id"]), int(row["author_id"]))
                for row in rows]

    async def progress(self) -> int | None:
        rows = await execute(self._session, self._read_progress, (_SHARD,))
        return int(rows[0]["hour"]) if rows else None

    async def advance(self, hour: int) -> None:
        await execute(self._session, self._progress, (_SHARD, hour))


# Publishes one poll's end (the post service: the status as anyone sees it, then the event); False if the status
# is gone.
PublishEnd = Callable[[Ending], Awaitable[bool]]


class PollEndings:
    """Publishes polls' ends as they come (module doc)."""

    def __init__(self, store: PollEndingStore, publish: PublishEnd, *, poll_seconds: float = 1.0) -> None:
        self._store = store
        self._publish = publish
        self._poll_seconds = poll_seconds
        self._first_hour: int | None = None

    async def run(self) -> None:
        while True:
            try:
                await self.tick(datetime.now(UTC))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("poll endings: a round failed; trying again", exc_info=True)
            await asyncio.sleep(self._poll_seconds)

    async def tick(self, now: datetime) -> int:
        """Publish the ends due by ``now``; how many were published."""
        current = hour_of(now)
        if self._first_hour is None:
            recorded = await self._store.progress()
            self._first_hour = recorded if recorded is not None else current - FIRST_LOOK_BACK_HOURS
        published, complete = 0, True
        for hour in range(self._first_hour, current + 1):
            for ending in await self._store.due(hour, now):
                try:
                    published += await self._publish(ending)
                except Exception:
                    complete = False  # kept, for the next round
                    log.warning("poll of status %s: its end not published yet", ending.status_id, exc_info=True)
                    continue
                crash_point("post.poll_end.published")
                await self._store.unplan(ending)
        if complete and current > self._first_hour:
            await self._store.advance(current)  # every earlier hour is empty: the next rounds start here
            self._first_hour = current
        return published

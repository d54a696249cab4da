"""Polls' ends (kicau/polls.py): when a poll ends, its author and everyone who voted in it are notified (``poll``),
as Mastodon notifies them.

A status posted with a poll is planned in Cassandra's ``poll_endings`` (the hour it ends in, migration 0035) before
it is published; a failed plan fails the post, which is rolled back. ``poll_end_runner`` (a runner of
services/post/due_hours.py over ``poll_endings`` and ``poll_endings_progress``) publishes ``poll.ended``
(kicau/events.py) for each poll that ended, with the status as anyone sees it then, and removes the plan. The
event's notification id is made from the moment the poll ended and the status's id, the same however often it is
published: a scheduler that dies between the publish and the removal publishes it again, and the fanout records the
one notification. A poll whose status was deleted meanwhile notifies no one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.crash_points import crash_point
from kicau.ids import id_from_ms
from services.post.due_hours import DueRunner, HourProgress, hour_of

log = logging.getLogger(__name__)

_LOW_BITS: Final = 0xFFFF


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
        self.progress = HourProgress(session, write_consistency, "poll_endings_progress")

    async def plan(self, status_id: int, author_id: int, ends: datetime) -> None:
        await execute(self._session, self._plan, (hour_of(ends), ends, status_id, author_id))

    async def unplan(self, ending: Ending) -> None:
        await execute(self._session, self._unplan, (ending.hour, ending.ends_at, ending.status_id))

    async def due(self, hour: int, now: datetime) -> list[Ending]:
        rows = await execute(self._session, self._due, (hour, now))
        return [Ending(hour, row["ends_at"].replace(tzinfo=UTC), int(row["status_id"]), int(row["author_id"]))
                for row in rows]


# Publishes one poll's end (the post service: the status as anyone sees it, then the event); False if the status
# is gone.
PublishEnd = Callable[[Ending], Awaitable[bool]]


def poll_end_runner(store: PollEndingStore, publish: PublishEnd, *, poll_seconds: float = 1.0) -> DueRunner[Ending]:
    """Publishes polls' ends as they come (module doc)."""

    async def publish_end(ending: Ending) -> int:
        published = await publish(ending)
        crash_point("post.poll_end.published")
        await store.unplan(ending)
        return int(published)

    return DueRunner("poll endings", store, store.progress, publish_end, poll_seconds=poll_seconds)

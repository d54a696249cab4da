"""Markers: the last status (or notification) an account read in its home timeline and its notifications, saved
by one client and read by the others (``GET/POST /api/v1/markers``), as Mastodon keeps them.

The record is Cassandra's ``markers`` (stack/migrations/0016_markers.cql), written and read by the timeline
service. Each save moves ``version`` by one with a lightweight transaction conditional on the version it read
(Mastodon's optimistic lock): two devices saving at once both land, one after the other, each with its own
version; past ``SAVE_ATTEMPTS`` lost races the save answers 409, as Mastodon's does. A save is a plain
overwrite otherwise: the reading position may move back (a client that re-read older statuses says so).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.entities import iso_time
from kicau.web import ApiError

TIMELINES: Final = ("home", "notifications")
SAVE_ATTEMPTS: Final = 5


class Marker(msgspec.Struct):
    """A marker as Mastodon's API shows it."""

    last_read_id: str
    version: int
    updated_at: str


class MarkerStore:
    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._read = session.prepare("SELECT timeline, last_read_id, version, updated_at FROM markers"
                                     " WHERE account_id = ? AND timeline IN ?")
        self._first = write("INSERT INTO markers (account_id, timeline, last_read_id, version, updated_at)"
                            " VALUES (?, ?, ?, 1, ?) IF NOT EXISTS")
        self._next = write("UPDATE markers SET last_read_id = ?, version = ?, updated_at = ?"
                           " WHERE account_id = ? AND timeline = ? IF version = ?")

    async def of(self, account_id: int, timelines: list[str]) -> dict[str, Marker]:
        """The account's markers of ``timelines`` (those it never saved are left out)."""
        wanted = [t for t in TIMELINES if t in timelines]
        if not wanted:
            return {}
        rows = await execute(self._session, self._read, (account_id, wanted))
        return {row["timeline"]: _shown(row) for row in rows}

    async def save(self, account_id: int, timeline: str, last_read_id: int) -> Marker:
        """Move the marker to ``last_read_id``; the marker as saved."""
        if timeline not in TIMELINES:
            raise ValueError(f"no such timeline: {timeline}")
        for _ in range(SAVE_ATTEMPTS):
            now = datetime.now(UTC)
            rows = await execute(self._session, self._first, (account_id, timeline, last_read_id, now))
            found = rows[0]
            if found["[applied]"]:
                return Marker(str(last_read_id), 1, iso_time(now) or "")
            version = int(found["version"])
            rows = await execute(self._session, self._next,
                                 (last_read_id, version + 1, now, account_id, timeline, version))
            if rows[0]["[applied]"]:
                return Marker(str(last_read_id), version + 1, iso_time(now) or "")
        raise ApiError(409, "Conflict during update, please try again")


def _shown(row: dict[str, Any]) -> Marker:
    return Marker(str(row["last_read_id"]), int(row["version"]), iso_time(row["updated_at"]) or "")

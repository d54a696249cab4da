"""The public statuses sharing a page (Mastodon 4.3's ``GET /api/v1/timelines/link?url=``, the statuses behind a
trending link), newest first.

Cassandra's ``statuses_by_link`` (migration 0046), one partition a page's address: the post service lists a public
status once it shows the page's card (services/post/link_previews.py, with the share counted for trending links,
kicau/link_trends.py) and unlists it when an edit changes its address; a deleted status stays listed, and reading
leaves it out as every timeline does. The timeline service pages it.
"""

from __future__ import annotations

from typing import Any

from cassandra.cluster import Session
from cassandra.query import PreparedStatement

from kicau.clients import execute, write_preparer
from kicau.ids import ABOVE_EVERY_ID, BELOW_EVERY_ID


class LinkedStatuses:
    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._add = write("INSERT INTO statuses_by_link (url, status_id) VALUES (?, ?)")
        self._remove = write("DELETE FROM statuses_by_link WHERE url = ? AND status_id = ?")
        self._back = session.prepare("SELECT status_id FROM statuses_by_link WHERE url = ? AND status_id < ?"
                                     " AND status_id > ? LIMIT ?")
        self._forward = session.prepare("SELECT status_id FROM statuses_by_link WHERE url = ? AND status_id < ?"
                                        " AND status_id > ? ORDER BY status_id ASC LIMIT ?")
        self._any = session.prepare("SELECT status_id FROM statuses_by_link WHERE url = ? LIMIT 1")

    async def add(self, url: str, status_id: int) -> None:
        await execute(self._session, self._add, (url, status_id))

    def listing(self, url: str, status_id: int) -> tuple[PreparedStatement, tuple[Any, ...]]:
        """``add`` as a statement, for another store's batch."""
        return self._add, (url, status_id)

    def unlisting(self, url: str, status_id: int) -> tuple[PreparedStatement, tuple[Any, ...]]:
        """The status taken off the page's timeline, as a statement for another store's batch (an edit's)."""
        return self._remove, (url, status_id)

    async def shared(self, url: str) -> bool:
        """Whether any public status ever showed the page's card."""
        return bool(await execute(self._session, self._any, (url,)))

    async def page(self, url: str, *, max_id: int | None, since_id: int | None, min_id: int | None,
                   limit: int) -> list[int]:
        """Ids newest first: below ``max_id`` and above ``since_id``, or the ``limit`` just above ``min_id``."""
        below = ABOVE_EVERY_ID if max_id is None else max_id
        if min_id is not None:
            rows = await execute(self._session, self._forward, (url, below, min_id, limit))
            return [int(row["status_id"]) for row in reversed(rows)]
        above = BELOW_EVERY_ID if since_id is None else since_id
        rows = await execute(self._session, self._back, (url, below, above, limit))
        return [int(row["status_id"]) for row in rows]

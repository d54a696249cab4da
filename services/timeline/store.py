"""Cassandra reads of the timeline service: account status lists and the follow graph for rebuilds."""

from __future__ import annotations

from collections.abc import Iterable

from cassandra.cluster import Session

from kicau.clients import execute
from kicau.follow_options import NEWEST_ENTRIES, ListEntry, entry_of

_MAX = (1 << 63) - 1
_IN_CHUNK = 100


class TimelineStore:
    def __init__(self, session: Session) -> None:
        self._session = session
        prepare = session.prepare
        self._newest = prepare(
            "SELECT status_id FROM statuses_by_account WHERE account_id = ? AND status_id < ? AND status_id > ?"
            " LIMIT ?"
        )
        self._oldest_above = prepare(
            "SELECT status_id FROM statuses_by_account WHERE account_id = ? AND status_id > ? AND status_id < ?"
            " ORDER BY status_id ASC LIMIT ?"
        )
        self._following = prepare("SELECT followee_id FROM following WHERE follower_id = ?")
        self._followers = prepare("SELECT follower_id FROM followers WHERE followee_id = ?")
        self._followers.fetch_size = 5000
        self._newest_entries = prepare(NEWEST_ENTRIES)
        self._replies = prepare("SELECT reply_id FROM replies WHERE status_id = ? LIMIT ?")
        self._following_among = prepare(
            "SELECT followee_id FROM following WHERE follower_id = ? AND followee_id IN ?"
        )

    async def account_status_ids(
        self, account_id: int, *, max_id: int | None, since_id: int | None, min_id: int | None, limit: int
    ) -> list[int]:
        """Newest first, Mastodon cursor semantics (min_id walks forward from the cursor)."""
        upper = max_id if max_id is not None else _MAX
        if min_id is not None:
            rows = await execute(self._session, self._oldest_above, (account_id, min_id, upper, limit))
            return [int(r["status_id"]) for r in reversed(rows)]
        lower = since_id if since_id is not None else -1
        rows = await execute(self._session, self._newest, (account_id, upper, lower, limit))
        return [int(r["status_id"]) for r in rows]

    async def newest_status_ids(self, account_id: int, limit: int) -> list[int]:
        return await self.account_status_ids(account_id, max_id=None, since_id=None, min_id=None, limit=limit)

    async def replies(self, status_id: int, limit: int) -> list[int]:
        """The first ``limit`` replies to a status, oldest first (deleted ones included)."""
        rows = await execute(self._session, self._replies, (status_id, limit))
        return [int(r["reply_id"]) for r in rows]

    async def newest_entries(self, account_id: int, limit: int) -> list[ListEntry]:
        """The account's newest list entries, with what a follow's options look at (kicau/follow_options.py)."""
        rows = await execute(self._session, self._newest_entries, (account_id, limit))
        return [entry_of(row) for row in rows]

    async def followees(self, account_id: int) -> list[int]:
        rows = await execute(self._session, self._following, (account_id,))
        return [int(r["followee_id"]) for r in rows]

    async def followers(self, account_id: int) -> list[int]:
        """Every follower of the account (kept in memory for the log of edits and deletions: kicau/retractions.py)."""
        rows = await execute(self._session, self._followers, (account_id,))
        return [int(r["follower_id"]) for r in rows]

    async def followees_among(self, account_id: int, candidates: Iterable[int]) -> list[int]:
        """Which of ``candidates`` the account follows: reads within its one partition, 100 keys at a time."""
        pool = sorted(candidates)
        found: list[int] = []
        for start in range(0, len(pool), _IN_CHUNK):
            rows = await execute(self._session, self._following_among, (account_id, pool[start: start + _IN_CHUNK]))
            found.extend(int(r["followee_id"]) for r in rows)
        return found

"""Bookmarks: the statuses an account keeps for itself (``/api/v1/bookmarks``, ``bookmarked`` on its reads).

The record is Cassandra's (stack/migrations/0013_bookmarks.cql), written by the post service:

* **bookmark**: a claim per (account, status) with a lightweight transaction (``bookmark_claims``), so a repeated
  bookmark is one and keeps its id; then the account's list (``bookmarks_by_account``), written again by every
  retry, so a crash after the claim is repaired by the next attempt.
* **unbookmark**: the list entry first, then the claim given back (conditional on its id): a crash in between
  leaves the claim, and the retry removes the entry again and gives it back.

No one else sees a bookmark: no count, no event, no notification. ``bookmarked`` comes from the reader's set of
marks in Redis (kicau/reader_marks.py), built from the claims when Redis has none. A bookmarked status that is
deleted, or that its reader may no longer see, is left out of the list when it is read.
"""

from __future__ import annotations

from typing import NamedTuple

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.marked_lists import MarkedList


class BookmarkClaim(NamedTuple):
    bookmark_id: int
    created: bool  # this call made the claim


class BookmarkStore:
    """The bookmarks' Cassandra tables."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        prepare = session.prepare
        self._claim = write("INSERT INTO bookmark_claims (account_id, status_id, bookmark_id) VALUES (?, ?, ?)"
                            " IF NOT EXISTS")
        self._release = write("DELETE FROM bookmark_claims WHERE account_id = ? AND status_id = ?"
                              " IF bookmark_id = ?")
        self._claim_of = prepare("SELECT bookmark_id FROM bookmark_claims WHERE account_id = ? AND status_id = ?")
        self._claimed = prepare("SELECT status_id FROM bookmark_claims WHERE account_id = ?")
        self._list = write("INSERT INTO bookmarks_by_account (account_id, bookmark_id, status_id) VALUES (?, ?, ?)")
        self._unlist = write("DELETE FROM bookmarks_by_account WHERE account_id = ? AND bookmark_id = ?")
        self._of_account = MarkedList.prepare(prepare, "bookmarks_by_account", "account_id", "bookmark_id",
                                              "status_id")

    # Writes (the post service) ------------------------------------------------------------------------------

    async def claim(self, account_id: int, status_id: int, bookmark_id: int) -> BookmarkClaim:
        """Claim the bookmark under ``bookmark_id``, or find the claim already made (a lightweight transaction
        that is not applied returns the row it found)."""
        row = (await execute(self._session, self._claim, (account_id, status_id, bookmark_id)))[0]
        if row["[applied]"]:
            return BookmarkClaim(bookmark_id, created=True)
        return BookmarkClaim(int(row["bookmark_id"]), created=False)

    async def add_to_list(self, account_id: int, status_id: int, bookmark_id: int) -> None:
        """Idempotent: a retry writes the same row."""
        await execute(self._session, self._list, (account_id, bookmark_id, status_id))

    async def claim_of(self, account_id: int, status_id: int) -> int | None:
        rows = await execute(self._session, self._claim_of, (account_id, status_id))
        return int(rows[0]["bookmark_id"]) if rows else None

    async def remove_from_list(self, account_id: int, bookmark_id: int) -> None:
        await execute(self._session, self._unlist, (account_id, bookmark_id))

    async def release(self, account_id: int, status_id: int, bookmark_id: int) -> bool:
        """Give the claim back; True when this call did (a concurrent unbookmark may have)."""
        rows = await execute(self._session, self._release, (account_id, status_id, bookmark_id))
        return bool(rows[0]["[applied]"])

    # Reads ---------------------------------------------------------------------------------------------------

    async def bookmarked(self, account_id: int) -> list[int]:
        """Every status the account bookmarks (to build its set of marks)."""
        rows = await execute(self._session, self._claimed, (account_id,))
        return [int(row["status_id"]) for row in rows]

    async def of_account(self, account_id: int, *, max_id: int | None, since_id: int | None, min_id: int | None,
                         limit: int) -> list[tuple[int, int]]:
        """(bookmark id, status id) of the account's bookmarks, newest first, with Mastodon's cursors (which are
        bookmark ids, as Mastodon's Link headers give them)."""
        return await self._of_account.page(self._session, account_id, max_id=max_id, since_id=since_id,
                                           min_id=min_id, limit=limit)

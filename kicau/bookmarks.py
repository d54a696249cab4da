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

from cassandra.cluster import Session

from kicau.claims import Claims
from kicau.clients import execute, write_preparer
from kicau.marked_lists import MarkedList


class BookmarkStore(Claims):
    """The bookmarks' Cassandra tables: the claims (kicau/claims.py; no event) and the account's list."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        super().__init__(session, write_consistency, table="bookmark_claims", mark="bookmark_id", evented=False)
        self._session = session
        write = write_preparer(session, write_consistency)
        prepare = session.prepare
        self._list = write("INSERT INTO bookmarks_by_account (account_id, bookmark_id, status_id) VALUES (?, ?, ?)")
        self._unlist = write("DELETE FROM bookmarks_by_account WHERE account_id = ? AND bookmark_id = ?")
        self._of_account = MarkedList.prepare(prepare, "bookmarks_by_account", "account_id", "bookmark_id",
                                              "status_id")

    # Writes (the post service) ------------------------------------------------------------------------------

    async def add_to_list(self, account_id: int, status_id: int, bookmark_id: int) -> None:
        """Idempotent: a retry writes the same row."""
        await execute(self._session, self._list, (account_id, bookmark_id, status_id))

    async def remove_from_list(self, account_id: int, bookmark_id: int) -> None:
        await execute(self._session, self._unlist, (account_id, bookmark_id))

    async def of_account(self, account_id: int, *, max_id: int | None, since_id: int | None, min_id: int | None,
                         limit: int) -> list[tuple[int, int]]:
        """(bookmark id, status id) of the account's bookmarks, newest first, with Mastodon's cursors (which are
        bookmark ids, as Mastodon's Link headers give them)."""
        return await self._of_account.page(self._session, account_id, max_id=max_id, since_id=since_id,
                                           min_id=min_id, limit=limit)

"""Pinned statuses: an account's own statuses it shows first on its profile (``pinned=true``), at most
``MAX_PINS``; ``pinned`` on its own reads of them.

The record is Cassandra's (stack/migrations/0015_pins.cql), written by the post service as bookmarks are
(kicau/bookmarks.py):

* **pin**: a claim per (account, status) with a lightweight transaction (``pin_claims``), so a repeated pin is one
  and keeps its id; then the account's list (``pins_by_account``), written again by every retry, so a crash after
  the claim is repaired by the next attempt; then the member ``p<id>`` in the account's set of marks
  (kicau/reader_marks.py), from which ``pinned`` is read.
* **unpin**, and the delete of a pinned status: the list entry and the mark first, then the claim given back
  (conditional on its id): a crash in between leaves the claim, and the retry removes the rest again and gives it
  back. A claim left on a deleted status (a delete that died there) is given back by the next pin that finds the
  limit reached.

Mastodon's rules: only the account's own statuses, not a reblog, not a direct one; at most five (its default
``MAX_PINNED_STATUSES``). Two pins at the same moment may both pass the limit's check (Mastodon's check is not
atomic either); the list then holds six until one is unpinned.
"""

from __future__ import annotations

from typing import Final

from cassandra.cluster import Session

from kicau.claims import Claims
from kicau.clients import execute, write_preparer

MAX_PINS: Final = 5


class PinStore(Claims):
    """The pins' Cassandra tables: the claims (kicau/claims.py; no event) and the account's list."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        super().__init__(session, write_consistency, table="pin_claims", mark="pin_id", evented=False)
        self._session = session
        write = write_preparer(session, write_consistency)
        self._list = write("INSERT INTO pins_by_account (account_id, pin_id, status_id) VALUES (?, ?, ?)")
        self._unlist = write("DELETE FROM pins_by_account WHERE account_id = ? AND pin_id = ?")
        # Bounded: pins past the limit can only come from racing pins, and the profile shows the newest.
        self._of_account = session.prepare("SELECT pin_id, status_id FROM pins_by_account WHERE account_id = ?"
                                           f" LIMIT {4 * MAX_PINS}")

    # Writes (the post service) ------------------------------------------------------------------------------

    async def add_to_list(self, account_id: int, status_id: int, pin_id: int) -> None:
        """Idempotent: a retry writes the same row."""
        await execute(self._session, self._list, (account_id, pin_id, status_id))

    async def remove_from_list(self, account_id: int, pin_id: int) -> None:
        await execute(self._session, self._unlist, (account_id, pin_id))

    # Reads (the timeline service) ---------------------------------------------------------------------------

    async def of_account(self, account_id: int) -> list[int]:
        """The statuses the account pins, most recently pinned first."""
        rows = await execute(self._session, self._of_account, (account_id,))
        return [int(row["status_id"]) for row in rows]

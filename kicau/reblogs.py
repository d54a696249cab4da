"""Reblogs (boosts): an account shares another's status with its followers.

A reblog is a status of its own, as on Mastodon: the booster's, with no content, naming the status it reblogs
(``statuses.reblog_of_id``). It has an id, a place in the booster's list (its profile, its ``statuses_count``)
and the home timelines of the booster's followers, written and streamed by the fanout as any status of the
booster's; its cached value carries the reblogged status's id in its head, and readers render that status for
themselves and splice it in (kicau/status_cards.py). A reblog of a reblog reblogs the original.

The post service writes the record (stack/migrations/0014_reblogs.cql):

* **reblog**: a claim per (account, status) with a lightweight transaction (``reblog_claims``), so a repeated
  reblog is one and keeps its id; while the claim says its event is ``unsent``, the reblog's row, its place in
  the booster's list and in ``reblogs_by_status`` are written (again, by a retry: the same rows), the count moved
  and the event published, then the claim marked sent. The status's author is notified (``reblog``) by the fanout.
* **unreblog**: the reblog deleted as a status (its row kept as a tombstone, its entries gone, ``status.deleted``
  published, which takes it out of timelines and the author's notification), then the claim given back; a crash
  in between leaves the claim, and the retry repeats the rest.

Who may reblog what, as Mastodon's policy says: a public or unlisted status anyone who sees it; a followers-only
status its author alone (and that reblog stays followers-only); a direct status no one. ``reblogs_count`` is the
third count in the cached value's head (kicau/status_tallies.py), counted from ``reblogs_by_status`` when the
status is cached again; ``reblogged`` is the member ``r<id>`` of the reader's set of marks (kicau/reader_marks.py).
"""

from __future__ import annotations

from typing import Final, NamedTuple

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.marked_lists import MarkedList
from kicau.visibility import DIRECT, PRIVATE, PUBLIC, UNLISTED

COUNT_QUERY: Final = "SELECT COUNT(*) AS n FROM reblogs_by_status WHERE status_id = ?"
_NO_REBLOG: Final = b'"reblog":null'
VISIBILITIES: Final = (PUBLIC, UNLISTED, PRIVATE)  # what a reblog may be shown to (Mastodon's choice)


class ReblogClaim(NamedTuple):
    reblog_id: int
    created: bool  # this call made the claim
    unsent: bool  # its event is still to be published


def with_reblog(fragment: bytes, reblogged: bytes) -> bytes:
    """A reblog's Status fragment with the reblogged status (full Status JSON) in place of its ``"reblog":null``
    (which no string in the fragment can hold: its quotes would be escaped)."""
    return fragment.replace(_NO_REBLOG, b'"reblog":' + reblogged, 1)


def may_reblog(visibility: str, author_id: int, account_id: int) -> bool:
    """Mastodon's policy: no reblog of a direct status, nor of a followers-only one but by its author."""
    return visibility != DIRECT and (visibility != PRIVATE or author_id == account_id)


def reblog_visibility(original: str, asked: str) -> str:
    """A followers-only status's reblog stays followers-only; any other goes to whom the booster asks."""
    return original if original == PRIVATE else asked


class ReblogStore:
    """The reblogs' Cassandra tables (the reblog's own status row is the post service's StatusStore's)."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        prepare = session.prepare
        self._claim = write("INSERT INTO reblog_claims (account_id, status_id, reblog_id, unsent)"
                            " VALUES (?, ?, ?, true) IF NOT EXISTS")
        self._sent = write("UPDATE reblog_claims SET unsent = null WHERE account_id = ? AND status_id = ?"
                           " IF reblog_id = ?")
        self._release = write("DELETE FROM reblog_claims WHERE account_id = ? AND status_id = ? IF reblog_id = ?")
        self._claim_of = prepare("SELECT reblog_id FROM reblog_claims WHERE account_id = ? AND status_id = ?")
        self._claimed = prepare("SELECT status_id FROM reblog_claims WHERE account_id = ?")
        self._list = write("INSERT INTO reblogs_by_status (status_id, reblog_id, account_id) VALUES (?, ?, ?)")
        self._unlist = write("DELETE FROM reblogs_by_status WHERE status_id = ? AND reblog_id = ?")
        self._of_status = MarkedList.prepare(prepare, "reblogs_by_status", "status_id", "reblog_id", "account_id")

    # Writes (the post service) ------------------------------------------------------------------------------

    async def claim(self, account_id: int, status_id: int, reblog_id: int) -> ReblogClaim:
        """Claim the reblog under ``reblog_id``, or find the claim already made (a lightweight transaction that is
        not applied returns the row it found)."""
        row = (await execute(self._session, self._claim, (account_id, status_id, reblog_id)))[0]
        if row["[applied]"]:
            return ReblogClaim(reblog_id, created=True, unsent=True)
        return ReblogClaim(int(row["reblog_id"]), created=False, unsent=bool(row.get("unsent")))

    async def add_to_list(self, account_id: int, status_id: int, reblog_id: int) -> None:
        """Idempotent: a retry writes the same row."""
        await execute(self._session, self._list, (status_id, reblog_id, account_id))

    async def sent(self, account_id: int, status_id: int, reblog_id: int) -> None:
        await execute(self._session, self._sent, (account_id, status_id, reblog_id))

    async def claim_of(self, account_id: int, status_id: int) -> int | None:
        rows = await execute(self._session, self._claim_of, (account_id, status_id))
        return int(rows[0]["reblog_id"]) if rows else None

    async def remove_from_list(self, status_id: int, reblog_id: int) -> None:
        await execute(self._session, self._unlist, (status_id, reblog_id))

    async def release(self, account_id: int, status_id: int, reblog_id: int) -> bool:
        """Give the claim back; True when this call did (a concurrent unreblog may have)."""
        rows = await execute(self._session, self._release, (account_id, status_id, reblog_id))
        return bool(rows[0]["[applied]"])

    # Reads ---------------------------------------------------------------------------------------------------

    async def reblogged(self, account_id: int) -> list[int]:
        """Every status the account reblogs (to build its set of marks)."""
        rows = await execute(self._session, self._claimed, (account_id,))
        return [int(row["status_id"]) for row in rows]

    async def of_status(self, status_id: int, *, max_id: int | None, since_id: int | None, min_id: int | None,
                        limit: int) -> list[tuple[int, int]]:
        """(reblog id, account id) of the status's reblogs, newest first, with Mastodon's cursors (reblog ids)."""
        return await self._of_status.page(self._session, status_id, max_id=max_id, since_id=since_id,
                                          min_id=min_id, limit=limit)

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

from typing import Final

from cassandra.cluster import Session

from kicau.claims import Claims
from kicau.clients import execute, write_preparer
from kicau.marked_lists import MarkedList
from kicau.visibility import DIRECT, PRIVATE, PUBLIC, UNLISTED

COUNT_QUERY: Final = "SELECT COUNT(*) AS n FROM reblogs_by_status WHERE status_id = ?"
_NO_REBLOG: Final = b'"reblog":null'
VISIBILITIES: Final = (PUBLIC, UNLISTED, PRIVATE)  # what a reblog may be shown to (Mastodon's choice)


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


class ReblogStore(Claims):
    """The reblogs' Cassandra tables: the claims (kicau/claims.py, ``unsent`` until the reblog is published) and
    ``reblogs_by_status`` (the reblog's own status row is the post service's StatusStore's)."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        super().__init__(session, write_consistency, table="reblog_claims", mark="reblog_id", evented=True)
        self._session = session
        write = write_preparer(session, write_consistency)
        prepare = session.prepare
        self._list = write("INSERT INTO reblogs_by_status (status_id, reblog_id, account_id) VALUES (?, ?, ?)")
        self._unlist = write("DELETE FROM reblogs_by_status WHERE status_id = ? AND reblog_id = ?")
        self._of_status = MarkedList.prepare(prepare, "reblogs_by_status", "status_id", "reblog_id", "account_id")

    # Writes (the post service) ------------------------------------------------------------------------------

    async def add_to_list(self, account_id: int, status_id: int, reblog_id: int) -> None:
        """Idempotent: a retry writes the same row."""
        await execute(self._session, self._list, (status_id, reblog_id, account_id))

    async def remove_from_list(self, status_id: int, reblog_id: int) -> None:
        await execute(self._session, self._unlist, (status_id, reblog_id))

    async def boosters(self, status_id: int, page: int = 1000) -> list[int]:
        """Every account that reblogs the status (an edit notifies each, services/post/edits.py), read a page at a
        time."""
        found: list[int] = []
        cursor = None
        while rows := await self.of_status(status_id, max_id=cursor, since_id=None, min_id=None, limit=page):
            found += [account_id for _, account_id in rows]
            if len(rows) < page:
                break
            cursor = rows[-1][0]
        return found

    async def of_status(self, status_id: int, *, max_id: int | None, since_id: int | None, min_id: int | None,
                        limit: int) -> list[tuple[int, int]]:
        """(reblog id, account id) of the status's reblogs, newest first, with Mastodon's cursors (reblog ids)."""
        return await self._of_status.page(self._session, status_id, max_id=max_id, since_id=since_id,
                                          min_id=min_id, limit=limit)

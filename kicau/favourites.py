"""Favourites: who favourites which status, each status's ``favourites_count`` and each reader's ``favourited``.

The record is Cassandra's (stack/migrations/0010_favourites.cql). The post service writes it:

* **favourite**: a claim per (account, status) with a lightweight transaction (``favourite_claims``), so a
  repeated favourite is one and keeps its id; then the two lists the API pages (``favourites_by_account`` and
  ``favourites_by_status``) in one logged batch, written again by every retry, so a crash after the claim is
  repaired by the next attempt. The claim records that its event (the author's notification) is still to be
  published (``unsent``), and a retry publishes it again, as a follow's does.
* **unfavourite**: the lists first, then the claim given back (conditional on its id): a crash in between leaves
  the claim, and the retry removes the lists again and gives it back.

Reads render each status from its cached fragment (kicau/status_cards.py), which never changes, so the two
values that do are kept beside it and spliced in when a status is rendered:

* ``favourites_count`` is a count in the head of the status's cached value (kicau/status_tallies.py). A new
  status is cached with 0; a status cached from Cassandra counts its ``favourites_by_status`` partition
  (``COUNT_QUERY``); a favourite or unfavourite moves the count of a cached status by one in place. Where a crash
  may have come between the record's change and the count's (a favourite retried while its claim is unsent, an
  unfavourite that finds no claim), the cached value is dropped instead and counted again when next read. The
  lists and the claims are exact.
* ``favourited`` comes from the reader's set of marks in Redis (kicau/reader_marks.py), built from the claims
  when Redis has none.
"""

from __future__ import annotations

from typing import Final

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from kicau.claims import Claims
from kicau.clients import execute, write_preparer
from kicau.marked_lists import MarkedList

COUNT_QUERY: Final = "SELECT COUNT(*) AS n FROM favourites_by_status WHERE status_id = ?"


class FavouriteStore(Claims):
    """The favourites' Cassandra tables: the claims (kicau/claims.py, ``unsent`` until the author's notification
    is published) and the two lists."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        super().__init__(session, write_consistency, table="favourite_claims", mark="favourite_id", evented=True)
        self._session = session
        self._consistency = write_consistency
        write = write_preparer(session, write_consistency)
        prepare = session.prepare
        self._list_by_account = write("INSERT INTO favourites_by_account (account_id, favourite_id, status_id)"
                                      " VALUES (?, ?, ?)")
        self._list_by_status = write("INSERT INTO favourites_by_status (status_id, favourite_id, account_id)"
                                     " VALUES (?, ?, ?)")
        self._unlist_by_account = write("DELETE FROM favourites_by_account WHERE account_id = ? AND favourite_id = ?")
        self._unlist_by_status = write("DELETE FROM favourites_by_status WHERE status_id = ? AND favourite_id = ?")
        self._of_account = MarkedList.prepare(prepare, "favourites_by_account", "account_id", "favourite_id",
                                              "status_id")
        self._of_status = MarkedList.prepare(prepare, "favourites_by_status", "status_id", "favourite_id",
                                             "account_id")

    # Writes (the post service) ------------------------------------------------------------------------------

    async def add_to_lists(self, account_id: int, status_id: int, favourite_id: int) -> None:
        """Both lists, in one logged batch: both or neither. Idempotent."""
        batch = BatchStatement(batch_type=BatchType.LOGGED, consistency_level=self._consistency)
        batch.add(self._list_by_account, (account_id, favourite_id, status_id))
        batch.add(self._list_by_status, (status_id, favourite_id, account_id))
        await execute(self._session, batch)

    async def remove_from_lists(self, account_id: int, status_id: int, favourite_id: int) -> None:
        batch = BatchStatement(batch_type=BatchType.LOGGED, consistency_level=self._consistency)
        batch.add(self._unlist_by_account, (account_id, favourite_id))
        batch.add(self._unlist_by_status, (status_id, favourite_id))
        await execute(self._session, batch)

    async def of_account(self, account_id: int, *, max_id: int | None, since_id: int | None, min_id: int | None,
                         limit: int) -> list[tuple[int, int]]:
        """(favourite id, status id) of the account's favourites, newest first, with Mastodon's cursors (which
        are favourite ids, as Mastodon's Link headers give them)."""
        return await self._of_account.page(self._session, account_id, max_id=max_id, since_id=since_id,
                                           min_id=min_id, limit=limit)

    async def of_status(self, status_id: int, *, max_id: int | None, since_id: int | None, min_id: int | None,
                        limit: int) -> list[tuple[int, int]]:
        """(favourite id, account id) of the status's favourites, newest first, as ``of_account``."""
        return await self._of_status.page(self._session, status_id, max_id=max_id, since_id=since_id,
                                          min_id=min_id, limit=limit)

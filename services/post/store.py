"""Cassandra persistence of statuses and idempotency keys."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from kicau.clients import execute, write_preparer
from kicau.metrics import POST_STAGE_SECONDS
from kicau.status_counts import FORGET_MARK
from kicau.write_groups import MAX_GROUP, GroupedWrite

_ROW_SECONDS, _LIST_SECONDS = (POST_STAGE_SECONDS.labels(stage) for stage in ("status_row", "account_list"))


class StatusStore:
    """``group_max`` and ``groups_in_flight``: how the writes of every post (its row and its place in the
    author's list) go out grouped with those of concurrent posts (kicau/write_groups.py).

    No count is written: the author's statuses_count is the length of its list (kicau/status_counts.py). What
    removes or re-adds an entry of the list drops the list's count mark in the same logged batch."""

    def __init__(self, session: Session, write_consistency: int, *, group_max: int = MAX_GROUP,
                 groups_in_flight: int = 1) -> None:
        self._session = session
        self._consistency = write_consistency
        prepare = session.prepare

        write = write_preparer(session, write_consistency)

        self._insert_status = write(
            "INSERT INTO statuses (id, account_id, content, text, visibility, sensitive, spoiler_text, language,"
            " in_reply_to_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._index_status = write("INSERT INTO statuses_by_account (account_id, status_id) VALUES (?, ?)")
        self._unindex_status = write("DELETE FROM statuses_by_account WHERE account_id = ? AND status_id = ?")
        self._remove_status = write("DELETE FROM statuses WHERE id = ?")
        self._mark_deleted = write("UPDATE statuses SET deleted_at = ? WHERE id = ?")
        self._status = prepare("SELECT * FROM statuses WHERE id = ?")
        self._claim_key = write(
            "INSERT INTO status_idempotency (account_id, idempotency_key, status_id) VALUES (?, ?, ?) IF NOT EXISTS"
        )
        self._take_over_key = write(
            "UPDATE status_idempotency SET status_id = ? WHERE account_id = ? AND idempotency_key = ? IF status_id = ?"
        )
        self._release_key = write(
            "DELETE FROM status_idempotency WHERE account_id = ? AND idempotency_key = ? IF status_id = ?"
        )
        self._forget_count_mark = write(FORGET_MARK)

        def grouped(statement: PreparedStatement, name: str, **options: Any) -> GroupedWrite:
            return GroupedWrite(session, statement, name=name, max_group=group_max, max_in_flight=groups_in_flight,
                                **options)

        self._status_rows = grouped(self._insert_status, "status_row")
        self._account_lists = grouped(self._index_status, "status_in_account_list")

    async def claim_idempotency_key(self, account_id: int, key: str, status_id: int) -> int | None:
        """None when this request owns the key; otherwise the status id the key already belongs to."""
        rows = await execute(self._session, self._claim_key, (account_id, key, status_id))
        if rows[0]["[applied]"]:
            return None
        return int(rows[0]["status_id"])

    async def take_over_idempotency_key(self, account_id: int, key: str, stale_id: int, status_id: int) -> bool:
        """Re-point a key from a status that was never written to a new one; False if the key changed meanwhile."""
        rows = await execute(self._session, self._take_over_key, (status_id, account_id, key, stale_id))
        return bool(rows[0]["[applied]"])

    async def release_idempotency_key(self, account_id: int, key: str, status_id: int) -> None:
        await execute(self._session, self._release_key, (account_id, key, status_id))

    async def insert(self, row: dict[str, Any]) -> None:
        """The status row, then its place in the author's list (two single-partition writes).

        Not a logged batch: that costs a batchlog write and its removal on top of the two rows, about doubling
        Cassandra's work per post, and its atomicity is not needed here. The status is published only after both
        writes succeeded, and if either fails the caller rolls both back (``remove``). The row goes first so that
        the list never names a status a reader cannot load yet (a reader that found nothing would cache a
        tombstone for it). A crash between the two leaves a status outside its author's list that no event
        ever named, invisible as if never posted. Each write may leave in one batch with the same write of
        concurrent posts; the order between a post's two writes holds all the same.
        """
        started = time.perf_counter()
        await self._status_rows.write((
            row["id"], row["account_id"], row["content"], row["text"], row["visibility"], row["sensitive"],
            row["spoiler_text"], row["language"], row["in_reply_to_id"], row["created_at"],
        ))
        written = time.perf_counter()
        _ROW_SECONDS.observe(written - started)
        await self._account_lists.write((row["account_id"], row["id"]))
        _LIST_SECONDS.observe(time.perf_counter() - written)

    async def remove(self, status_id: int, account_id: int) -> None:
        batch = BatchStatement(batch_type=BatchType.LOGGED, consistency_level=self._consistency)
        batch.add(self._remove_status, (status_id,))
        batch.add(self._unindex_status, (account_id, status_id))
        batch.add(self._forget_count_mark, (account_id,))
        await execute(self._session, batch)

    async def mark_deleted(self, status_id: int, account_id: int, when: datetime | None) -> None:
        """Deleting keeps the row as a tombstone (so replays and rebuilds can tell it was deleted) and drops
        it from the author's list; passing ``None`` undoes a delete whose event could not be published."""
        batch = BatchStatement(batch_type=BatchType.LOGGED, consistency_level=self._consistency)
        batch.add(self._mark_deleted, (when, status_id))
        if when is None:
            batch.add(self._index_status, (account_id, status_id))
        else:
            batch.add(self._unindex_status, (account_id, status_id))
        batch.add(self._forget_count_mark, (account_id,))
        await execute(self._session, batch)

    async def get(self, status_id: int) -> dict[str, Any] | None:
        rows = await execute(self._session, self._status, (status_id,))
        return rows[0] if rows else None

"""Cassandra persistence of statuses and idempotency keys."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from cassandra.cluster import Session
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, PreparedStatement

from kicau import replies
from kicau.clients import execute, write_preparer
from kicau.metrics import POST_STAGE_SECONDS
from kicau.quotes import REVOKED, QuoteStore, stands
from kicau.status_counts import FORGET_MARK
from kicau.visibility import DIRECT
from kicau.write_groups import MAX_GROUP, GroupedWrite
from services.post.edits import Alongside

_WRITES_SECONDS = POST_STAGE_SECONDS.labels("status_writes")


def _entry_values(row: dict[str, Any]) -> tuple[int, int, Any, Any, Any]:
    """A status's entry in its author's list, marked when it is direct (statuses_count leaves those out,
    kicau/status_counts.py) and when it is a reblog, with its language if it has one (a follow's backfill leaves
    out what the follow's options would, kicau/follow_options.py)."""
    return (row["account_id"], row["id"], True if row.get("visibility") == DIRECT else UNSET_VALUE,
            True if row.get("reblog_of_id") else UNSET_VALUE, row.get("language") or UNSET_VALUE)


def _reply_values(row: dict[str, Any]) -> tuple[int, int, Any]:
    """A reply's row among its parent's: whether it counts is set only when it does (kicau/replies.py)."""
    return row["in_reply_to_id"], row["id"], True if replies.counted(row.get("visibility")) else UNSET_VALUE


def _unset_if_none(value: Any) -> Any:
    """A new row's missing value is left unset: binding None would write a tombstone cell for nothing, which
    Cassandra stores, compacts and skips on reads until gc_grace_seconds pass."""
    return UNSET_VALUE if value is None else value


class StatusStore:
    """``group_max`` and ``groups_in_flight``: how the writes of every post (its row and its place in the
    author's list, together) go out grouped with those of concurrent posts (kicau/write_groups.py).

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
            " in_reply_to_id, in_reply_to_account_id, created_at, mentions, reblog_of_id, conversation_id, poll,"
            " media, quote_of_id, quote_state, quote_policy, quote_notification_id, status_notification_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._index_status = write("INSERT INTO statuses_by_account (account_id, status_id, direct, reblog, language)"
                                   " VALUES (?, ?, ?, ?, ?)")
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
        self._index_reply = write("INSERT INTO replies (status_id, reply_id, counted) VALUES (?, ?, ?)")
        self._unindex_reply = write("DELETE FROM replies WHERE status_id = ? AND reply_id = ?")
        self._uncount_reply = write("DELETE counted FROM replies WHERE status_id = ? AND reply_id = ?")
        # A quote's place among the quoted status's quotes (kicau/quotes.py).
        self.quotes = QuoteStore(session, write_consistency)
        self._set_policy = write("UPDATE statuses SET quote_policy = ? WHERE id = ?")
        self._revoke = write("UPDATE statuses SET quote_state = ? WHERE id = ?")

        def grouped(statement: PreparedStatement, name: str, **options: Any) -> GroupedWrite:
            return GroupedWrite(session, statement, name=name, max_group=group_max, max_in_flight=groups_in_flight,
                                **options)

        self._statuses = grouped((self._insert_status, self._index_status), "status_with_list_entry")

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
        """The status row and its place in the author's list, in one unlogged batch with the same writes of
        concurrent posts.

        Not a logged batch: that costs a batchlog write and its removal on top of the rows, about doubling
        Cassandra's work per post, and its atomicity is not needed here. The status is published only after the
        batch succeeded, and if it fails the caller rolls both writes back (``remove``). The two land with no
        order between them, so a reader may find the list entry a moment before the row: it leaves such a young
        status out without caching a tombstone for it (``kicau.status_cards.UNWRITTEN_GRACE_SECONDS``). A crash
        of Cassandra between the two leaves either a row outside its author's list or an entry with no row; no
        event ever named that status, and reads leave it out as if it was never posted.

        One batch rather than the row first and the entry after: measured side by side under ``wrk -c32``, three
        alternations, 534/513/560 posts/s against 461/357/519, with Cassandra's CPU a post 0.59-0.81 ms against
        0.80-1.20 and the post service's 1.00-1.05 ms against 1.16-1.38 (bench/README.md).
        """
        started = time.perf_counter()
        beside = []
        if row["in_reply_to_id"] is not None:
            # Its place among the parent's replies (a thread's descendants), beside the grouped writes: a reader
            # that finds it before the row leaves the reply out, as a status found in a list before its row.
            beside.append(execute(self._session, self._index_reply, _reply_values(row)))
        if stands(row):  # the same among the quoted status's quotes
            beside.append(execute(self._session, *self.quotes.listing(row["quote_of_id"], row["id"],
                                                                      row["account_id"])))
        if beside:
            await asyncio.gather(self._write_status(row), *beside)
        else:
            await self._write_status(row)
        _WRITES_SECONDS.observe(time.perf_counter() - started)

    async def _write_status(self, row: dict[str, Any]) -> None:
        await self._statuses.write((
            row["id"], row["account_id"], row["content"], row["text"], row["visibility"], row["sensitive"],
            row["spoiler_text"], _unset_if_none(row["language"]), _unset_if_none(row["in_reply_to_id"]),
            _unset_if_none(row["in_reply_to_account_id"]), row["created_at"], row["mentions"] or UNSET_VALUE,
            _unset_if_none(row.get("reblog_of_id")), _unset_if_none(row.get("conversation_id")),
            _unset_if_none(row.get("poll")), _unset_if_none(row.get("media")),
            _unset_if_none(row.get("quote_of_id")), _unset_if_none(row.get("quote_state")),
            _unset_if_none(row.get("quote_policy")), _unset_if_none(row.get("quote_notification_id")),
            _unset_if_none(row.get("status_notification_id")),
        ), _entry_values(row))

    async def remove(self, status_id: int, account_id: int, in_reply_to_id: int | None = None,
                     quote_of_id: int | None = None) -> None:
        batch = BatchStatement(batch_type=BatchType.LOGGED, consistency_level=self._consistency)
        batch.add(self._remove_status, (status_id,))
        batch.add(self._unindex_status, (account_id, status_id))
        if in_reply_to_id is not None:
            batch.add(self._unindex_reply, (in_reply_to_id, status_id))
        if quote_of_id is not None:
            batch.add(*self.quotes.unlisting(quote_of_id, status_id))
        batch.add(self._forget_count_mark, (account_id,))
        await execute(self._session, batch)

    async def mark_deleted(self, row: dict[str, Any], when: datetime | None) -> None:
        """Deleting keeps the row as a tombstone (so replays and rebuilds can tell it was deleted), drops it from
        the author's list and, for a reply, from its parent's replies_count (its place in the thread stays: the
        replies below it are still reached through it); passing ``None`` undoes a delete whose event could not be
        published."""
        status_id, account_id = row["id"], row["account_id"]
        batch = BatchStatement(batch_type=BatchType.LOGGED, consistency_level=self._consistency)
        batch.add(self._mark_deleted, (when, status_id))
        if when is None:
            batch.add(self._index_status, _entry_values(row))
            if row.get("in_reply_to_id") is not None:
                batch.add(self._index_reply, _reply_values(row))
            if stands(row):
                batch.add(*self.quotes.listing(row["quote_of_id"], status_id, account_id))
        else:
            batch.add(self._unindex_status, (account_id, status_id))
            if row.get("in_reply_to_id") is not None:
                batch.add(self._uncount_reply, (row["in_reply_to_id"], status_id))
            if stands(row):  # a deleted quote is no longer among the quoted status's (nor in its count)
                batch.add(*self.quotes.unlisting(row["quote_of_id"], status_id))
        batch.add(self._forget_count_mark, (account_id,))
        await execute(self._session, batch)

    async def set_quote_policy(self, status_id: int, policy: str) -> None:
        await execute(self._session, *self.quote_policy_setting(status_id, policy))

    def quote_policy_setting(self, status_id: int, policy: str | None) -> Alongside:
        """Who may quote the status (kicau/quotes.py), as a statement: alone, or in an edit's batch."""
        return self._set_policy, (policy, status_id)

    async def revoke_quote(self, quoting: dict[str, Any]) -> None:
        """The quote of the status ``quoting`` revoked: so marked in its row, and gone from the quoted status's
        quotes, in one logged batch."""
        batch = BatchStatement(batch_type=BatchType.LOGGED, consistency_level=self._consistency)
        batch.add(self._revoke, (REVOKED, quoting["id"]))
        batch.add(*self.quotes.unlisting(quoting["quote_of_id"], quoting["id"]))
        await execute(self._session, batch)

    async def get(self, status_id: int) -> dict[str, Any] | None:
        rows = await execute(self._session, self._status, (status_id,))
        return rows[0] if rows else None

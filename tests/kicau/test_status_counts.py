"""statuses_count from the author's list and its mark (kicau/status_counts.py), on the stack's real Cassandra: the
count is the list's length with or without a mark; settled entries move the mark and young ones never do; a
delete (and its undo, and a roll-back) drops the mark in its own batch; a mark counted before a delete never
shows after it."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.query import UNSET_VALUE

from kicau.ids import id_from_ms
from kicau.status_counts import CLOCK_MARGIN_US, MARK_AFTER, SETTLE_MS, StatusCounts
from services.post.store import StatusStore


def _account() -> int:
    return (1 << 61) + (uuid.uuid4().int >> 68)


def _ids(count: int, *, age_ms: int) -> list[int]:
    """``count`` distinct status ids from ``age_ms`` ago (one per millisecond, newest last)."""
    start = int(time.time() * 1000) - age_ms
    return [id_from_ms(start + i) + 7 for i in range(count)]


def _add_to_list(session: Any, account_id: int, ids: list[int], direct: bool = False) -> None:
    """Entries as the post service writes them: a direct status's marked (services/post/store.py)."""
    insert = session.prepare("INSERT INTO statuses_by_account (account_id, status_id, direct) VALUES (?, ?, ?)")
    for status_id in ids:
        session.execute(insert, (account_id, status_id, True if direct else UNSET_VALUE))


def _mark(session: Any, account_id: int) -> tuple[int, int] | None:
    rows = session.execute("SELECT statuses, through FROM status_count_marks WHERE account_id = %s",
                           (account_id,)).all()
    return (rows[0]["statuses"], rows[0]["through"]) if rows else None


def _post(session: Any, account_id: int, status_id: int) -> None:
    """A status row and its list entry, as the post service writes them."""
    session.execute(
        "INSERT INTO statuses (id, account_id, content, text, visibility, sensitive, spoiler_text, created_at)"
        " VALUES (%s, %s, '<p>x</p>', 'x', 'public', false, '', %s)", (status_id, account_id, datetime.now(UTC)))
    _add_to_list(session, account_id, [status_id])


async def test_counts_the_list_and_marks_only_settled_entries(stack_cassandra: Any) -> None:
    counts = StatusCounts(stack_cassandra)
    account = _account()
    assert await counts.count(account) == 0
    assert _mark(stack_cassandra, account) is None

    # Young entries are counted and never folded into a mark, however many.
    young = _ids(MARK_AFTER + 10, age_ms=SETTLE_MS // 2)
    _add_to_list(stack_cassandra, account, young)
    assert await counts.count(account) == len(young)
    assert _mark(stack_cassandra, account) is None

    # Settled ones, once there are MARK_AFTER of them past the mark, are.
    settled = _ids(MARK_AFTER, age_ms=3 * SETTLE_MS)
    _add_to_list(stack_cassandra, account, settled)
    assert await counts.count(account) == len(young) + len(settled)
    mark = _mark(stack_cassandra, account)
    assert mark is not None and mark[0] == len(settled) and settled[-1] <= mark[1] < young[0]

    # From the mark on, the count reads only what lies after it, and still comes out right.
    more = _ids(5, age_ms=SETTLE_MS // 4)
    _add_to_list(stack_cassandra, account, more)
    assert await counts.count(account) == len(young) + len(settled) + len(more)
    assert _mark(stack_cassandra, account) == mark


async def test_direct_statuses_are_listed_but_not_counted_on_either_side_of_the_mark(stack_cassandra: Any) -> None:
    counts = StatusCounts(stack_cassandra)
    account = _account()
    settled = _ids(MARK_AFTER + 20, age_ms=3 * SETTLE_MS)
    _add_to_list(stack_cassandra, account, settled[:MARK_AFTER])
    _add_to_list(stack_cassandra, account, settled[MARK_AFTER:], direct=True)
    young = _ids(6, age_ms=SETTLE_MS // 2)
    _add_to_list(stack_cassandra, account, young[:4])
    _add_to_list(stack_cassandra, account, young[4:], direct=True)
    assert await counts.count(account) == MARK_AFTER + 4
    mark = _mark(stack_cassandra, account)
    assert mark is not None and mark[0] == MARK_AFTER  # the mark holds the count, direct ones left out
    assert await counts.count(account) == MARK_AFTER + 4
    listed = stack_cassandra.execute("SELECT COUNT(*) AS n FROM statuses_by_account WHERE account_id = %s",
                                     (account,)).one()["n"]
    assert listed == len(settled) + len(young)


async def test_a_delete_and_its_undo_drop_the_mark(stack_cassandra: Any) -> None:
    counts = StatusCounts(stack_cassandra)
    store = StatusStore(stack_cassandra, ConsistencyLevel.LOCAL_ONE)
    account = _account()
    ids = _ids(MARK_AFTER + 3, age_ms=3 * SETTLE_MS)
    for status_id in ids:
        _post(stack_cassandra, account, status_id)
    assert await counts.count(account) == len(ids)
    mark = _mark(stack_cassandra, account)
    assert mark is not None and mark[0] == len(ids)

    # A settled entry deleted: below the mark, which would still say len(ids).
    await store.mark_deleted({"id": ids[0], "account_id": account}, datetime.now(UTC))
    assert _mark(stack_cassandra, account) is None
    assert await counts.count(account) == len(ids) - 1

    # The delete undone (its event could not be published): the entry is back, and so is the count. The mark
    # the count above wrote was started before the undo, so it is hidden by the undo's own drop.
    await store.mark_deleted({"id": ids[0], "account_id": account}, None)
    assert await counts.count(account) == len(ids)


async def test_a_roll_back_drops_the_mark(stack_cassandra: Any) -> None:
    counts = StatusCounts(stack_cassandra)
    store = StatusStore(stack_cassandra, ConsistencyLevel.LOCAL_ONE)
    account = _account()
    ids = _ids(MARK_AFTER, age_ms=3 * SETTLE_MS)
    _add_to_list(stack_cassandra, account, ids)
    assert await counts.count(account) == len(ids)
    assert _mark(stack_cassandra, account) is not None
    await store.remove(ids[-1], account)
    assert _mark(stack_cassandra, account) is None
    assert await counts.count(account) == len(ids) - 1


async def test_a_mark_counted_before_a_delete_never_shows_after_it(stack_cassandra: Any) -> None:
    """A reader that counted, then lost the race with a delete, writes its (now one too high) mark late: the
    delete's tombstone is newer than the time the reader started, so the mark stays hidden."""
    counts = StatusCounts(stack_cassandra)
    store = StatusStore(stack_cassandra, ConsistencyLevel.LOCAL_ONE)
    account = _account()
    ids = _ids(MARK_AFTER, age_ms=3 * SETTLE_MS)
    for status_id in ids:
        _post(stack_cassandra, account, status_id)
    reader_started_us = time.time_ns() // 1000
    through = ids[-1]
    await store.mark_deleted({"id": ids[0], "account_id": account}, datetime.now(UTC))
    await counts._move_mark(account, len(ids), through, reader_started_us - CLOCK_MARGIN_US)
    assert _mark(stack_cassandra, account) is None
    assert await counts.count(account) == len(ids) - 1
    # Written by a reader that started after the delete (beyond the clock margin), a mark shows.
    await asyncio.sleep(0.01)
    await counts._move_mark(account, len(ids) - 1, through, time.time_ns() // 1000)
    assert _mark(stack_cassandra, account) == (len(ids) - 1, through)
    assert await counts.count(account) == len(ids) - 1

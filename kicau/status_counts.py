"""How many statuses an account has: the entries of its list (``statuses_by_account``), counted from a mark.

Direct statuses are in the list (their author's profile shows them to the author) but not in the count, as on
Mastodon: anyone may read an account's statuses_count, and it must not tell them of private messages. Their
entries carry ``direct = true`` (unset on every other), and each scan counts both, ``COUNT(*) - COUNT(direct)``.

Posting writes no count. A Cassandra counter bumped by every post cost Cassandra about as much as the status row
and the list entry together (a counter write reads its shard and locks it), and it could drift: a counter write
that times out may or may not have been applied, and cannot be retried safely. The list is the truth; counting it
whole on every card miss would cost as much as the list is long, so readers keep a *mark*:

    status_count_marks(account_id) = (statuses, through): the list held ``statuses`` entries with ids <= ``through``

and count only the entries after it: ``statuses + count(ids > through)``. A reader that counted at least
``MARK_AFTER`` settled entries past the mark writes a new one.

Why a mark stays true:

* New entries carry new ids (snowflakes, time-ordered), above every mark. Only entries older than
  ``SETTLE_MS`` are folded into a mark: a post writes its list entry within seconds of taking its id (each
  Cassandra call times out after 5 s), so no entry lands below a mark afterwards, and a replica that missed a
  recent write (consistency ONE) cannot make a mark wrong for ever.
* Everything else that changes the list (a delete, the undo of a delete, a roll-back) drops the mark in the same
  logged batch (``FORGET_MARK``). The tombstone carries the writer's time; a mark carries the time its reader
  started, less ``CLOCK_MARGIN_US`` for clocks of different hosts, so a mark counted before (or while) the list
  changed is older than the tombstone and stays hidden. The next reader counts the whole list and marks it again.
"""

from __future__ import annotations

import asyncio
import logging
import time

from cassandra.cluster import Session
from cassandra.query import PreparedStatement

from kicau.clients import execute
from kicau.ids import id_from_ms

log = logging.getLogger(__name__)

# Settled entries counted past the mark before a reader moves it: a card miss counts at most this many entries
# plus those younger than SETTLE_MS.
MARK_AFTER = 64
SETTLE_MS = 60_000
CLOCK_MARGIN_US = 1_000_000

FORGET_MARK = "DELETE FROM status_count_marks WHERE account_id = ?"
_COUNTED = "COUNT(*) AS n, COUNT(direct) AS direct"  # every entry, and the direct ones among them


class StatusCounts:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._mark = session.prepare("SELECT statuses, through FROM status_count_marks WHERE account_id = ?")
        self._count_between = session.prepare(
            f"SELECT {_COUNTED} FROM statuses_by_account WHERE account_id = ? AND status_id > ? AND status_id <= ?"
        )
        self._count_after = session.prepare(
            f"SELECT {_COUNTED} FROM statuses_by_account WHERE account_id = ? AND status_id > ?"
        )
        self._write_mark = session.prepare(
            "INSERT INTO status_count_marks (account_id, statuses, through) VALUES (?, ?, ?) USING TIMESTAMP ?"
        )

    async def count(self, account_id: int) -> int:
        # Before any read: a change to the list from now on writes a later tombstone than this mark.
        started_us = time.time_ns() // 1000
        marks = await execute(self._session, self._mark, (account_id,))
        statuses, through = (int(marks[0]["statuses"]), int(marks[0]["through"])) if marks else (0, -1)
        settled = id_from_ms(started_us // 1000 - SETTLE_MS) - 1  # the newest id that is SETTLE_MS old
        if settled <= through:
            return statuses + (await self._count(self._count_after, (account_id, through)))[0]
        (older, scanned), (younger, _) = await asyncio.gather(
            self._count(self._count_between, (account_id, through, settled)),
            self._count(self._count_after, (account_id, settled)),
        )
        if scanned >= MARK_AFTER:  # entries read, direct ones too: they cost the next reader as much
            await self._move_mark(account_id, statuses + older, settled, started_us - CLOCK_MARGIN_US)
        return statuses + older + younger

    async def _count(self, statement: PreparedStatement, params: tuple[int, ...]) -> tuple[int, int]:
        """(entries counted, entries read): direct ones are read, not counted."""
        rows = await execute(self._session, statement, params)
        if not rows:
            return 0, 0
        entries = int(rows[0]["n"])
        return entries - int(rows[0]["direct"]), entries

    async def _move_mark(self, account_id: int, statuses: int, through: int, timestamp_us: int) -> None:
        try:
            await execute(self._session, self._write_mark, (account_id, statuses, through, timestamp_us))
        except Exception:
            # Only the next reader's work grows: it counts from the older mark.
            log.warning("could not move the status count mark of %s", account_id, exc_info=True)

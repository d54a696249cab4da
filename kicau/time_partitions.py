"""Pages of rows kept in time partitions (a day's reports, a month's audit log), newest first, by Mastodon's id
cursors: the walk the admin listings share (kicau/reports.py, kicau/audit_log.py).

Rows are clustered by id, newest first, in partitions named by a number that grows with time. A page reads the
partitions in turn, ``at_once`` of them concurrently, newest first (or, for Mastodon's ``min_id``, oldest first,
still listed newest first), keeps what ``wanted`` keeps, and stops at ``limit``. A partition with more rows between
the cursors than one read takes ends the page at the last row read, so that none is skipped: the next page goes on
from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cassandra.cluster import Session
from cassandra.query import PreparedStatement

from kicau.clients import execute

T = TypeVar("T")
MAX_ID = (1 << 63) - 1


@dataclass(frozen=True)
class PartitionedRows(Generic[T]):
    """A table's newest-first and oldest-first reads of one partition between two ids (``partition, high, low,
    per_read`` and ``partition, low, high, per_read``), and how a row becomes a ``T`` with an ``id``."""

    session: Session
    older: PreparedStatement  # WHERE p = ? AND id < ? AND id > ? LIMIT ?
    newer: PreparedStatement  # WHERE p = ? AND id > ? AND id < ? ORDER BY id ASC LIMIT ?
    decode: Callable[[dict[str, Any]], T]
    per_read: int
    at_once: int

    async def page(self, partitions: Sequence[int], wanted: Callable[[T], bool], limit: int, *,
                   below: int | None, above: int | None, oldest_first: bool,
                   id_of: Callable[[T], int]) -> tuple[list[T], int | None]:
        """Up to ``limit`` of the rows ``wanted`` keeps, with ids between ``above`` and ``below`` (both excluded),
        from ``partitions`` (given newest first), newest first; and where the next page in the same direction
        starts (the last id read), or None when nothing is left."""
        order = list(reversed(partitions)) if oldest_first else list(partitions)
        low, high = -1 if above is None else above, MAX_ID if below is None else below
        found: list[T] = []
        for start in range(0, len(order), self.at_once):
            chunk = order[start:start + self.at_once]
            pages = await asyncio.gather(*(
                execute(self.session, self.newer, (p, low, high, self.per_read)) if oldest_first
                else execute(self.session, self.older, (p, high, low, self.per_read)) for p in chunk))
            for rows in pages:
                for row in rows:
                    item = self.decode(row)
                    if wanted(item):
                        found.append(item)
                        if len(found) == limit:
                            return sorted(found, key=id_of, reverse=True), id_of(item)
                if len(rows) == self.per_read:  # more of this partition than one read takes: the next page goes on
                    return sorted(found, key=id_of, reverse=True), int(rows[-1]["id"])
        return sorted(found, key=id_of, reverse=True), None

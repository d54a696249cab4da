"""What falls due each hour, and the runner that acts on it as it does: the post service's scheduled statuses
(services/post/scheduled.py) and polls' ends (services/post/poll_endings.py) share it.

Each keeps its due entries in a Cassandra table partitioned by the hour they fall due in (a partition a reader
can take whole), and a one-row progress table: the first hour that may still hold entries not acted on. The
``DueRunner`` reads the hours from that one up to the current one, about once a second, and hands each entry due by
now to its handler. A handler that raises keeps its entry (and the hour) for the next round; once a round finds
every earlier hour done, the progress moves to the current hour, so a restart (or a second post service) reads a
few hours at most, not the whole history. Handlers are idempotent: two runners, or one that died between acting
and forgetting the entry, act on it once in effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Final, Generic, Protocol, TypeVar

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer

log = logging.getLogger(__name__)

HOUR_SECONDS: Final = 3600
# A runner with no progress recorded (its first start) looks this far back.
FIRST_LOOK_BACK_HOURS: Final = 24
_SHARD: Final = 0  # one progress row per table: every post service reads the same hours (harmlessly twice)


def hour_of(moment: datetime) -> int:
    """Hours since the epoch: the partition of a due entry."""
    return int(moment.timestamp()) // HOUR_SECONDS


class HourProgress:
    """A progress table (``shard int PRIMARY KEY, hour bigint``): the first hour not yet known to be done."""

    def __init__(self, session: Session, write_consistency: int, table: str) -> None:
        self._session = session
        self._advance = write_preparer(session, write_consistency)(
            f"INSERT INTO {table} (shard, hour) VALUES (?, ?)")
        self._read = session.prepare(f"SELECT hour FROM {table} WHERE shard = ?")

    async def first_hour(self) -> int | None:
        rows = await execute(self._session, self._read, (_SHARD,))
        return int(rows[0]["hour"]) if rows else None

    async def advance(self, hour: int) -> None:
        await execute(self._session, self._advance, (_SHARD, hour))


Entry = TypeVar("Entry")
Entry_co = TypeVar("Entry_co", covariant=True)


class DueEntries(Protocol[Entry_co]):
    """The entries of one hour due by a moment."""

    async def due(self, hour: int, now: datetime) -> Sequence[Entry_co]: ...


class Progress(Protocol):
    """Where a runner starts (``HourProgress``)."""

    async def first_hour(self) -> int | None: ...

    async def advance(self, hour: int) -> None: ...


class DueRunner(Generic[Entry]):
    """Hands every entry to ``handle`` as it falls due (module doc): it acts on the entry and forgets it, and
    answers how many it published (0: nothing to publish, the entry was stale); ``what`` names them in the log."""

    def __init__(self, what: str, entries: DueEntries[Entry], progress: Progress,
                 handle: Callable[[Entry], Awaitable[int]], *, poll_seconds: float = 1.0,
                 concurrency: int = 1) -> None:
        self._what = what
        self._entries = entries
        self._progress = progress
        self._handle = handle
        self._poll_seconds = poll_seconds
        self._first_hour: int | None = None
        # Entries handled at once (1: in order, one after another); a handler that waits on the network (a page
        # fetched for a preview) should not hold the others up.
        self._concurrency = concurrency
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """Look for due entries now rather than at the next round (one was just planned, due at once)."""
        self._woken.set()

    async def run(self) -> None:
        while True:
            self._woken.clear()
            try:
                await self.tick(datetime.now(UTC))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("%s: a round failed; trying again", self._what, exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self._poll_seconds)

    async def tick(self, now: datetime) -> int:
        """Act on what is due by ``now``; how many were published."""
        current = hour_of(now)
        if self._first_hour is None:
            recorded = await self._progress.first_hour()
            self._first_hour = recorded if recorded is not None else current - FIRST_LOOK_BACK_HOURS
        published, complete = 0, True
        for hour in range(self._first_hour, current + 1):
            entries = list(await self._entries.due(hour, now))
            for start in range(0, len(entries), self._concurrency):
                for entry, outcome in zip(entries[start:start + self._concurrency], await asyncio.gather(
                        *map(self._handle, entries[start:start + self._concurrency]), return_exceptions=True),
                        strict=True):
                    if isinstance(outcome, Exception):
                        complete = False  # kept, for the next round
                        log.warning("%s: %r not done yet", self._what, entry, exc_info=outcome)
                    elif isinstance(outcome, BaseException):  # cancelled, or the process exiting
                        raise outcome
                    else:
                        published += outcome
        if complete and current > self._first_hour:
            # Every earlier hour is done: the next rounds start from this one.
            await self._progress.advance(current)
            self._first_hour = current
        return published

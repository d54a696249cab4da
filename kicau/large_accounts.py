"""The registry of large accounts (Cassandra ``large_accounts``), with an in-process copy that is refreshed
at most every ``max_age`` seconds. Every service that treats large accounts differently reads it here.

While Cassandra is unavailable the last copy is served and the reload is retried in the background, so reads
that Redis alone can answer do not wait for (or fail with) Cassandra; ``degraded`` says so to callers.

Readers merge the statuses of the large accounts they follow into their home timelines as they read them, so each
reader's large followees are kept in a Redis copy (``keys.large_followees``, built by the timeline service) under the
protocol of kicau/reader_copies.py: every change of what it holds (a follow or unfollow, a follow's options, a block
or mute, an exclusive list's members) moves the reader's version and drops its copy before its writes and after
them (``followee_changes``), and a build stores what it read only while the version is unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from cassandra.cluster import Session

from kicau import keys
from kicau.clients import execute
from kicau.reader_copies import change_commands

log = logging.getLogger(__name__)

_SHARD = 0


def followee_changes(*reader_ids: int) -> list[bytes]:
    """What a change of the readers' large followees does to their copies, before its writes and again after them
    (the protocol in kicau/reader_copies.py): each reader's version moved and its copy dropped."""
    return change_commands(*((keys.large_followees(r), keys.large_followees_version(r)) for r in reader_ids))


class LargeAccounts:
    def __init__(self, session: Session, *, max_age: float = 1.0) -> None:
        self._session = session
        self._max_age = max_age
        self._members: frozenset[int] = frozenset()
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self._retry: asyncio.Task[None] | None = None
        self.degraded = False  # the last reload failed: the copy may be stale and Cassandra is unreachable
        self._select_all = session.prepare("SELECT account_id FROM large_accounts WHERE shard = ?")
        self._select_one = session.prepare("SELECT account_id FROM large_accounts WHERE shard = ? AND account_id = ?")
        self._insert = session.prepare("INSERT INTO large_accounts (shard, account_id, since) VALUES (?, ?, ?)")
        self._delete = session.prepare("DELETE FROM large_accounts WHERE shard = ? AND account_id = ?")

    async def current(self) -> frozenset[int]:
        if time.monotonic() - self._loaded_at > self._max_age:
            if self.degraded:
                if self._retry is None or self._retry.done():
                    self._retry = asyncio.create_task(self._retry_reload())
                return self._members
            async with self._lock:
                if time.monotonic() - self._loaded_at > self._max_age and not self.degraded:
                    try:
                        await self.reload()
                    except Exception:
                        if not self._loaded_at:
                            raise  # never loaded: nothing to fall back on
                        self.degraded = True
                        log.warning("large accounts: reload failed, serving the copy from %.0fs ago",
                                    time.monotonic() - self._loaded_at, exc_info=True)
        return self._members

    async def _retry_reload(self) -> None:
        try:
            await self.reload()
        except Exception:
            await asyncio.sleep(self._max_age)
            return
        self.degraded = False
        log.info("large accounts: reloaded again")

    async def reload(self) -> frozenset[int]:
        rows = await execute(self._session, self._select_all, (_SHARD,))
        found = frozenset(int(r["account_id"]) for r in rows)
        # The same object while the registry is unchanged: readers key caches by it (the timeline's registry
        # version), and a new equal set made every lookup compare the two member by member (~3% of a home page's
        # CPU in the timeline with 141 large accounts, py-spy 2026-12-03).
        if found != self._members:
            self._members = found
        self._loaded_at = time.monotonic()
        return self._members

    def note(self, account_id: int, large: bool) -> None:
        """Apply a change seen in the event stream before the next reload would show it."""
        self._members = self._members | {account_id} if large else self._members - {account_id}

    async def contains(self, account_id: int) -> bool:
        return bool(await execute(self._session, self._select_one, (_SHARD, account_id)))

    async def add(self, account_id: int) -> None:
        await execute(self._session, self._insert, (_SHARD, account_id, datetime.now(UTC)))
        self.note(account_id, True)

    async def remove(self, account_id: int) -> None:
        await execute(self._session, self._delete, (_SHARD, account_id))
        self.note(account_id, False)

"""The registry of large accounts (Cassandra ``large_accounts``), with an in-process copy that is refreshed
at most every ``max_age`` seconds. Every service that treats large accounts differently reads it here."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from cassandra.cluster import Session

from kicau.clients import execute

_SHARD = 0


class LargeAccounts:
    def __init__(self, session: Session, *, max_age: float = 1.0) -> None:
        self._session = session
        self._max_age = max_age
        self._members: frozenset[int] = frozenset()
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self._select_all = session.prepare("SELECT account_id FROM large_accounts WHERE shard = ?")
        self._select_one = session.prepare("SELECT account_id FROM large_accounts WHERE shard = ? AND account_id = ?")
        self._insert = session.prepare("INSERT INTO large_accounts (shard, account_id, since) VALUES (?, ?, ?)")
        self._delete = session.prepare("DELETE FROM large_accounts WHERE shard = ? AND account_id = ?")

    async def current(self) -> frozenset[int]:
        if time.monotonic() - self._loaded_at > self._max_age:
            async with self._lock:
                if time.monotonic() - self._loaded_at > self._max_age:
                    await self.reload()
        return self._members

    async def reload(self) -> frozenset[int]:
        rows = await execute(self._session, self._select_all, (_SHARD,))
        self._members = frozenset(int(r["account_id"]) for r in rows)
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

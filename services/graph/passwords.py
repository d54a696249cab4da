"""Argon2id password hashing with bounded concurrency.

Each hash costs tens of milliseconds of CPU and its memory parameter in RAM; a semaphore keeps a burst of
logins from starving the event loop's other work or exhausting memory, and hashing runs off the loop.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    def __init__(self, *, concurrency: int, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._slots = asyncio.Semaphore(concurrency)
        # Verifying against this when the account does not exist keeps unknown usernames from answering faster.
        self._decoy = self._hasher.hash("kicau-decoy-password")

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(self._verify, stored_hash or self._decoy, password, stored_hash is None)

    def _verify(self, stored_hash: str, password: str, decoy: bool) -> bool:
        try:
            ok = self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        return ok and not decoy

"""A Redis sorted set read by prefix, rebuilt from Cassandra when Redis has lost it: the names of hashtags
(kicau/tag_history.py) and of accounts (kicau/account_names.py).

Every score is 0, so the set is ordered by member and read with ``ZRANGEBYLEX``; its member ``""`` (which sorts
first, and no member is) says the index exists. A reader that misses it rebuilds the whole index from its record,
the marker last, so that a reader finding the marker finds every member before it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from redis.asyncio import Redis

from kicau import resp
from kicau.resp import command
from kicau.single_flight import SingleFlight

PRESENT: Final = b""
_REBUILD_CHUNK: Final = 1000


class LexIndex:
    """``key``'s index; ``record`` reads every member it should hold (the rebuild's source)."""

    def __init__(self, redis: Redis, key: str, record: Callable[[], Awaitable[list[bytes]]]) -> None:
        self._redis = redis
        self.key = key.encode()
        self._record = record
        self._rebuild = SingleFlight(self._rebuild_once)  # one rebuild at a time in this process

    def add_command(self, member: bytes) -> bytes:
        """A member's addition (safe to repeat)."""
        return command(b"ZADD", self.key, b"0", member)

    async def starting_with(self, prefix: bytes, limit: int, after: bytes | None = None) -> list[bytes]:
        """Up to ``limit`` members that begin with ``prefix``, in order, from the one after ``after`` if given."""
        low = b"(" + after if after is not None else b"[" + prefix
        high = b"[" + prefix + b"\xff"  # UTF-8 never holds 0xff
        read = [command(b"ZSCORE", self.key, PRESENT),
                command(b"ZRANGEBYLEX", self.key, low, high, b"LIMIT", b"0", b"%d" % limit)]
        present, members = await resp.round_trip(self._redis, read)
        if present is None:
            await self._rebuild()
            present, members = await resp.round_trip(self._redis, read)
        found: list[bytes] = members
        return found

    async def _rebuild_once(self) -> None:
        members = await self._record()
        packed = [command(b"ZADD", self.key, *(part for member in members[start:start + _REBUILD_CHUNK]
                                               for part in (b"0", member)))
                  for start in range(0, len(members), _REBUILD_CHUNK)]
        await resp.round_trip(self._redis, [*packed, self.add_command(PRESENT)])

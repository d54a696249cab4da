"""Per-account values that every page an account reads consults: its filters (kicau/filters.py), the accounts it
hides and those that block it (kicau/blocks_and_mutes.py, ``HideCopies``).

Their record is Cassandra's, owned by the graph service; reading it on every page would cost each page a
Cassandra read or two. So readers keep a Redis copy of each account's value, built from Cassandra by the first
reader that misses it, and read through the copies Redis keeps true (kicau/tracked_cache.py): a reader whose value
is held costs a page no round trip at all.

The protocol that keeps a copy true: each change moves the account's version and drops its copy, before its
Cassandra write and again after it (``change_commands``); a build reads the version, then Cassandra, and stores
what it read only if the version has not moved meanwhile (``_STORE_IF_CURRENT``). A build that read Cassandra
before a change therefore never stores what it read, and the drop after the write retires every copy made before
it (and, through Redis's tracking, every process's copy of that copy). A graph service that dies between its write
and the drop after it leaves the old copy in place until it expires: at most ``COPY_SECONDS``, or sooner when the
value itself says it ends sooner (a mute with a duration).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

from redis.asyncio import Redis

from kicau.resp import command
from kicau.tracked_cache import TrackedCache

T = TypeVar("T")

# How long a copy lives at most (see the module's docstring); a reader with a copy rebuilds it about this often,
# each copy at a time drawn from its last fifth (``COPY_JITTER``), so that copies built together (a gateway's readers
# after a restart) are not rebuilt together. At 300 s, 2,000 readers' filters and hides, built in one bench round,
# were rebuilt in one round five minutes later: ~10,000 Cassandra reads in ten seconds, the round's home pages
# 16 times as slow (2026-12-03); and every active reader cost ~1 read a minute.
COPY_SECONDS: Final = 3600
COPY_JITTER: Final = 0.2

# Set the copy only if no change came since the version was read.
_STORE_IF_CURRENT: Final = """
if (redis.call('GET', KEYS[2]) or '0') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return 1
"""


class ReaderCopies(Generic[T]):
    """One kind of per-account value as readers hold it: ``of`` gives it decoded, from this process's tracked copy
    when it holds one (decoded once per copy), else from Redis, else built from Cassandra by ``build``, which
    returns the encoded value and how many seconds it may be kept (at most ``COPY_SECONDS``, less a jitter)."""

    def __init__(self, redis: Redis, copies: TrackedCache | None, *, key: Callable[[int], str],
                 version: Callable[[int], str], build: Callable[[int], Awaitable[tuple[bytes, int]]],
                 decode: Callable[[bytes], T]) -> None:
        self._redis = redis
        self._copies = copies
        self._key = key
        self._version = version
        self._build = build
        self._decode = decode

    async def of(self, account_id: int) -> T:
        key = self._key(account_id)
        if self._copies is not None:
            held = await self._copies.get_decoded(key, self._decode)
            if held is not None:
                return held
        else:
            raw = await self._redis.get(key)
            if raw is not None:
                return self._decode(raw if isinstance(raw, bytes) else raw.encode())
        return self._decode(await self.build(account_id))

    async def build(self, account_id: int) -> bytes:
        """The value as Cassandra holds it now, stored as the account's copy unless a change came meanwhile."""
        version_key = self._version(account_id)
        version = await self._redis.get(version_key)
        raw, seconds = await self._build(account_id)
        await self._redis.eval(_STORE_IF_CURRENT, 2, self._key(account_id), version_key, version or b"0", raw,
                               max(1, min(seconds, copy_lifetime())))
        return raw


def copy_lifetime(seconds: int = COPY_SECONDS) -> int:
    """A copy's lifetime: drawn from the last fifth of ``seconds`` (``COPY_JITTER``)."""
    return random.randint(int(seconds * (1 - COPY_JITTER)), seconds)


def change_commands(*key_and_version: tuple[str, str]) -> list[bytes]:
    """What a change does to the copies of the given (copy key, version key) pairs, before Cassandra's write and
    again after it: each version moved (a build under way stores nothing) and each copy dropped (every reader's
    tracked copy with it)."""
    return [packed for key, version in key_and_version
            for packed in (command(b"INCR", version.encode()), command(b"DEL", key.encode()))]

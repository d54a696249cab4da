"""The newest status ids of accounts whose profiles are read, held in memory and kept exact by a version key.

A profile's first page (``GET /api/v1/accounts/:id/statuses`` without a cursor, 30% of DeathStarBench's mix)
read its ids from Cassandra every time: about as much CPU as the rest of the page. Here the timeline keeps
each account's newest ids (as many as the largest page) under a version token in Redis
(``statuses:{u:<id>}:v``), with the protocol of the fanout's follower lists (kicau/follower_lists.py):

* the post service deletes the version key after every change to an account's list (a status written,
  deleted, rolled back or restored), before it answers;
* a reader reads the current token, or installs its own with ``SET key <fresh> NX GET`` when there is none,
  then reads Cassandra and keeps the ids under that token;
* kept ids are served only while the key still holds their token.

A change deletes the key after it is written, so a list read before the change was kept under a token that is
dead by the time the change is answered; a token claimed after the delete reads the change. Reading the token
costs no round trip either when this process holds a copy of the key (kicau/tracked_cache.py), which Redis
invalidates on the delete. The key expires a day after it was claimed (so a key per account ever read does not
pile up), which also just costs one read. Nothing is kept longer than ``max_age``, which bounds how stale a list
can get if a writer's delete was lost (Redis down at that moment).
"""

from __future__ import annotations

import uuid
from array import array
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from time import monotonic

from redis.asyncio import Redis

from kicau import keys, resp
from kicau.metrics import ACCOUNT_NEWEST_PAGES
from kicau.tracked_cache import TrackedCache

KEPT = 40  # the largest page Mastodon's API serves
VERSION_SECONDS = b"86400"

ReadNewest = Callable[[int, int], Awaitable[list[int]]]

_MEMORY = ACCOUNT_NEWEST_PAGES.labels("memory")
_CASSANDRA = ACCOUNT_NEWEST_PAGES.labels("cassandra")


class NewestIds:
    """``await newest(account_id, limit)``: the account's newest ``limit`` (≤ ``KEPT``) status ids, newest
    first. ``read(account_id, n)`` reads the newest ``n`` from Cassandra."""

    def __init__(self, redis: Redis, read: ReadNewest, copies: TrackedCache | None = None, *,
                 max_accounts: int = 50_000, max_age: float = 60.0) -> None:
        if max_accounts < 1 or max_age <= 0:
            raise ValueError("hold at least one account, for some time")
        self._redis = redis
        self._read = read
        self._copies = copies
        self.max_accounts = max_accounts
        self.max_age = max_age
        self._kept: OrderedDict[int, tuple[bytes, float, array[int]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    async def newest(self, account_id: int, limit: int) -> list[int]:
        if not 0 < limit <= KEPT:
            raise ValueError(f"a newest page holds 1 to {KEPT} ids")
        token = await self._token(account_id)
        now = monotonic()
        kept = self._kept.get(account_id)
        if kept is not None and kept[0] == token and now - kept[1] < self.max_age:
            self._kept.move_to_end(account_id)
            _MEMORY.inc()
            return kept[2][:limit].tolist()
        ids = await self._read(account_id, KEPT)
        _CASSANDRA.inc()
        self._kept[account_id] = (token, now, array("q", ids))
        self._kept.move_to_end(account_id)
        while len(self._kept) > self.max_accounts:
            self._kept.popitem(last=False)
        return ids[:limit]

    async def _token(self, account_id: int) -> bytes:
        key = keys.account_statuses_version(account_id)
        if self._copies is not None:
            [held] = await self._copies.read_many([(key, resp.get(key))])
            if held is not None:
                return bytes(held)
        fresh = uuid.uuid4().hex.encode()
        # Safe to send again: a claim that reached Redis before the connection broke returns this same token.
        [current] = await resp.round_trip(self._redis, [
            resp.command(b"SET", key.encode(), fresh, b"NX", b"GET", b"EX", VERSION_SECONDS),
        ])
        return fresh if current is None else bytes(current)


def forget_command(account_id: int) -> bytes:
    """What the post service sends after changing an account's list: every copy of its newest ids is dead."""
    return resp.command(b"DEL", keys.account_statuses_version(account_id).encode())

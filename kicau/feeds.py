"""Home timelines in Redis: the representation the fanout writes and the timeline service reads.

A timeline is a sorted set whose members are 8-byte big-endian status ids, all with score 0. Equal scores make
Redis order members by their bytes, which is numeric order, so pagination cursors (``max_id``, ``since_id``,
``min_id``) become exact lexicographic ranges — float scores cannot represent 64-bit ids exactly. With
``zset-max-listpack-entries`` at or above the cap, a full timeline stays a listpack of ~12 bytes per entry
instead of a skiplist of several times that.

The sentinel member (eight zero bytes, the smallest possible) marks a timeline as materialised; reads exclude
it, trims keep it, and its absence tells the reader to rebuild from Cassandra. Reads refresh the key's expiry:
a timeline nobody reads for ``inactive_days`` disappears, and the fanout, which only writes into timelines that
exist (a Lua script checks and writes in one step), stops spending anything on that user until they return.

Large accounts are not fanned out: each has an *author feed* of its own newest statuses, and a reader's page is
the exact merge of its home timeline and the author feeds of the large accounts it follows, cut by the same
cursors — so pagination stays exact across the merge.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

from kicau import keys
from kicau.ids import pack_id, unpack_id

_SENTINEL_EXCLUSIVE = b"(" + keys.FEED_SENTINEL

# KEYS[1] = timeline; ARGV[1] = cap; ARGV[2..] = members. Adds and trims only if the timeline exists, so an
# expired (inactive) or lost timeline costs nothing here and is rebuilt whole on its next read.
_PUSH_IF_PRESENT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local args = {}
for i = 2, #ARGV do
  args[#args + 1] = 0
  args[#args + 1] = ARGV[i]
end
redis.call('ZADD', KEYS[1], unpack(args))
redis.call('ZREMRANGEBYRANK', KEYS[1], 1, -(tonumber(ARGV[1]) + 1))
return 1
"""


@dataclass(frozen=True, slots=True)
class PageRequest:
    max_id: int | None = None
    since_id: int | None = None
    min_id: int | None = None
    limit: int = 20


@dataclass(frozen=True, slots=True)
class PageRead:
    ids: list[int]
    home_materialised: bool
    # Author feeds of large accounts that must be rebuilt before the page can be exact.
    missing_author_feeds: list[int]


class Feeds:
    """Feed operations bound to one Redis client (the push script is registered once per client)."""

    def __init__(self, redis: Redis, *, cap: int, ttl_seconds: int) -> None:
        self.redis = redis
        self.cap = cap
        self.ttl_seconds = ttl_seconds
        self._push: AsyncScript = redis.register_script(_PUSH_IF_PRESENT)

    # Writes (queued on a pipeline; no round trip here) ---------------------------------------------------

    def push(self, pipe: Pipeline, key: str, status_ids: Sequence[int]) -> None:
        """Add statuses to one timeline if it exists, keeping it capped: one command per timeline."""
        if status_ids:
            # Registering the script on the pipeline makes it load the script (once) before executing, so
            # a Redis that lost its script cache still runs the batch.
            pipe.scripts.add(self._push)  # type: ignore[arg-type]  # the async pipeline takes AsyncScript
            pipe.evalsha(self._push.sha, 1, key, self.cap, *(pack_id(s) for s in status_ids))

    def unpush(self, pipe: Pipeline, key: str, status_ids: Iterable[int]) -> None:
        members = [pack_id(s) for s in status_ids]
        if members:
            pipe.zrem(key, *members)

    def materialise(self, pipe: Pipeline, key: str, status_ids: Iterable[int]) -> None:
        """Write a rebuilt timeline. Merges with whatever the fanout added meanwhile instead of replacing it, so a
        status fanned out during the rebuild is not lost."""
        members = {pack_id(s): 0 for s in status_ids}
        members[keys.FEED_SENTINEL] = 0
        pipe.zadd(key, members)
        pipe.zremrangebyrank(key, 1, -(self.cap + 1))
        pipe.expire(key, self.ttl_seconds)

    # Reads ----------------------------------------------------------------------------------------------

    async def is_materialised(self, key: str) -> bool:
        return await self.redis.zscore(key, keys.FEED_SENTINEL) is not None

    async def read_page(self, account_id: int, page: PageRequest, large_followees: Sequence[int] = ()) -> PageRead:
        """One page of status ids, newest first, merged across the home timeline and the author feeds of the
        large accounts followed; all in one pipelined round trip, which also refreshes the timeline's expiry."""
        home = keys.home_feed(account_id)
        sources = [home, *(keys.author_feed(a) for a in large_followees)]
        pipe = self.redis.pipeline(transaction=False)
        for key in sources:
            pipe.zscore(key, keys.FEED_SENTINEL)
            _queue_range(pipe, key, page)
        pipe.expire(home, self.ttl_seconds)
        replies = await pipe.execute()
        lists: list[list[int]] = []
        missing: list[int] = []
        for index, key in enumerate(sources):
            sentinel, members = replies[2 * index], replies[2 * index + 1]
            if sentinel is None and key != home:
                missing.append(large_followees[index - 1])
            lists.append([unpack_id(m) for m in members if m != keys.FEED_SENTINEL])
        ids = _merge(lists, page)
        return PageRead(ids=ids, home_materialised=replies[0] is not None, missing_author_feeds=missing)

    async def newest_after(
        self, account_id: int, after_id: int, limit: int, large_followees: Sequence[int] = ()
    ) -> tuple[bool, list[int]]:
        """Entries newer than ``after_id``, oldest first, across the home timeline and the author feeds of the
        large accounts followed, and whether they are provably *all* the entries the reader missed: every source
        must be materialised and either reach back to the cursor or never have been trimmed. Used by stream
        resume; when it answers False the client has to refetch."""
        sources = [keys.home_feed(account_id), *(keys.author_feed(a) for a in large_followees)]
        pipe = self.redis.pipeline(transaction=False)
        for key in sources:
            pipe.zrange(key, b"(" + pack_id(after_id), b"+", bylex=True, offset=0, num=limit)
            pipe.zrange(key, _SENTINEL_EXCLUSIVE, b"+", bylex=True, offset=0, num=1)
            pipe.zscore(key, keys.FEED_SENTINEL)
            pipe.zcard(key)
        replies = await pipe.execute()
        covered = True
        found: set[int] = set()
        for index in range(len(sources)):
            members, oldest, sentinel, size = replies[4 * index: 4 * index + 4]
            ids = [unpack_id(m) for m in members]
            reaches_back = bool(oldest) and unpack_id(oldest[0]) <= after_id
            never_trimmed = size - 1 < self.cap
            covered = covered and sentinel is not None and (reaches_back or never_trimmed) and len(ids) < limit
            found.update(ids)
        return covered, sorted(found)[:limit]


def _queue_range(pipe: Pipeline, key: str, page: PageRequest) -> None:
    lower = _SENTINEL_EXCLUSIVE
    if page.min_id is not None:
        lower = b"(" + pack_id(page.min_id)
    elif page.since_id is not None:
        lower = b"(" + pack_id(page.since_id)
    upper = b"(" + pack_id(page.max_id) if page.max_id is not None else b"+"
    if page.min_id is not None:
        # min_id pages walk forward from the cursor: the `limit` entries just above it, oldest first.
        pipe.zrange(key, lower, upper, bylex=True, offset=0, num=page.limit)
    else:
        pipe.zrange(key, upper, lower, bylex=True, desc=True, offset=0, num=page.limit)


def _merge(lists: list[list[int]], page: PageRequest) -> list[int]:
    """Exact merge: each source already holds its best `limit` candidates inside the cursor range."""
    if page.min_id is not None:
        # Sources are oldest first here; take the `limit` oldest overall, then return them newest first.
        merged = sorted(set(heapq.merge(*lists)))[: page.limit]
        merged.reverse()
        return merged
    if len(lists) == 1:
        return lists[0]
    return sorted({i for ids in lists for i in ids}, reverse=True)[: page.limit]

"""Home timelines in Redis: the representation the fanout writes and the timeline service reads.

A home timeline is a sorted set whose members are 8-byte big-endian status ids, all with score 0. Equal
scores make Redis order members by their bytes, which is numeric order, so pagination cursors (``max_id``,
``since_id``, ``min_id``) become exact lexicographic ranges — float scores cannot represent 64-bit ids
exactly. With ``zset-max-listpack-entries`` at or above the cap, a full timeline stays a listpack of ~12 bytes
per entry instead of a skiplist of several times that.

The sentinel member (eight zero bytes, the smallest possible) marks a timeline as materialised; reads
exclude it, trims keep it, and its absence tells the reader to rebuild from Cassandra.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from kicau import keys
from kicau.ids import pack_id, unpack_id

_SENTINEL_EXCLUSIVE = b"(" + keys.FEED_SENTINEL


@dataclass(frozen=True, slots=True)
class PageRequest:
    max_id: int | None = None
    since_id: int | None = None
    min_id: int | None = None
    limit: int = 20


def push(pipe: Pipeline, account_id: int, status_ids: Iterable[int], cap: int) -> None:
    """Queue the writes that add statuses to one home timeline and keep it capped; no round trip here."""
    members = {pack_id(s): 0 for s in status_ids}
    if not members:
        return
    key = keys.home_feed(account_id)
    pipe.zadd(key, members)
    # Ranks 1 .. -(cap+1) are everything older than the newest `cap`, sparing rank 0, the sentinel.
    pipe.zremrangebyrank(key, 1, -(cap + 1))


def unpush(pipe: Pipeline, account_id: int, status_ids: Iterable[int]) -> None:
    members = [pack_id(s) for s in status_ids]
    if members:
        pipe.zrem(keys.home_feed(account_id), *members)


def materialise(pipe: Pipeline, account_id: int, status_ids: Iterable[int], cap: int) -> None:
    """Write a rebuilt timeline. Merges with whatever the fanout added meanwhile instead of replacing it, so a
    status fanned out during the rebuild is not lost."""
    key = keys.home_feed(account_id)
    members = {pack_id(s): 0 for s in status_ids}
    members[keys.FEED_SENTINEL] = 0
    pipe.zadd(key, members)
    pipe.zremrangebyrank(key, 1, -(cap + 1))


async def is_materialised(redis: Redis, account_id: int) -> bool:
    return await redis.zscore(keys.home_feed(account_id), keys.FEED_SENTINEL) is not None


async def read_page(redis: Redis, account_id: int, page: PageRequest) -> tuple[bool, list[int]]:
    """One page of status ids, newest first, and whether the timeline is materialised.

    Both come from one pipelined round trip.
    """
    key = keys.home_feed(account_id)
    pipe = redis.pipeline(transaction=False)
    pipe.zscore(key, keys.FEED_SENTINEL)
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
    sentinel, members = await pipe.execute()
    ids = [unpack_id(m) for m in members if m != keys.FEED_SENTINEL]
    if page.min_id is not None:
        ids.reverse()
    return sentinel is not None, ids


async def newest_after(
    redis: Redis, account_id: int, after_id: int, limit: int, cap: int
) -> tuple[bool, list[int]]:
    """Entries newer than ``after_id``, oldest first, and whether they are *all* the entries the reader
    missed: the timeline must be materialised and either reach back to the cursor or never have been trimmed.
    Used by stream resume; when it answers False the client has to refetch."""
    key = keys.home_feed(account_id)
    pipe = redis.pipeline(transaction=False)
    pipe.zrange(key, b"(" + pack_id(after_id), b"+", bylex=True, offset=0, num=limit)
    pipe.zrange(key, _SENTINEL_EXCLUSIVE, b"+", bylex=True, offset=0, num=1)
    pipe.zscore(key, keys.FEED_SENTINEL)
    pipe.zcard(key)
    members, oldest, sentinel, size = await pipe.execute()
    ids = [unpack_id(m) for m in members]
    reaches_back = bool(oldest) and unpack_id(oldest[0]) <= after_id
    never_trimmed = size - 1 < cap
    covered = sentinel is not None and (reaches_back or never_trimmed) and len(ids) < limit
    return covered, ids

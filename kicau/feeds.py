"""Home timelines in Redis: the representation the fanout writes and the timeline service reads.

A timeline is a sorted set whose members are 8-byte big-endian *complements* of status ids (``2**64 - 1 -
id``, see ``feed_member``), all with score 0. Equal scores make Redis order members by their bytes, so the
newest status comes first and pagination cursors (``max_id``, ``since_id``, ``min_id``) become exact
lexicographic ranges — float scores cannot represent 64-bit ids exactly. With ``zset-max-listpack-entries`` at
or above the cap, a full timeline stays a listpack of ~12 bytes per entry instead of a skiplist of several
times that.

Newest first matters for the fanout's cost: ZADD into a listpack walks it from the head to the insertion
point, so a new status, which always belongs at the head, is placed at once, and the trim cuts the tail. With
ids in ascending order each add walked a full timeline to its end: ``redis-benchmark`` ZADD into 3,000
timelines of 800 entries ran at 16,380/s that way against 48,141/s newest first (bench/README.md).

The sentinel member (eight zero bytes, smaller than any member: complements of 63-bit ids start with a set
bit) marks a timeline as materialised; it stays at the head, reads exclude it, trims keep it, and its absence
tells the reader to rebuild from Cassandra. Reads refresh the key's expiry:
a timeline nobody reads for ``inactive_days`` disappears, and the fanout, which only writes into timelines that
exist (a Lua script checks and writes in one step), stops spending anything on that user until they return.

Large accounts are not fanned out: each has an *author feed* of its own newest statuses, and a reader's page is
the exact merge of its home timeline and the author feeds of the large accounts it follows, cut by the same
cursors — so pagination stays exact across the merge.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import struct
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from kicau import keys
from kicau.resp import bulk, command, round_trip
from kicau.tracked_cache import TrackedCache

log = logging.getLogger(__name__)

_SENTINEL_EXCLUSIVE = b"(" + keys.FEED_SENTINEL
# Home timelines whose expiry this process remembers refreshing (``Feeds.read_page``); one forgotten is
# refreshed again on its next read.
_REFRESHES_KEPT = 100_000
_MEMBER = struct.Struct(">Q")
_ALL_ONES = (1 << 64) - 1


def feed_member(status_id: int) -> bytes:
    """A status id as a timeline member: the complement makes byte order newest first."""
    return _MEMBER.pack(_ALL_ONES - status_id)


def status_of(member: bytes) -> int:
    """The status id a timeline member stands for."""
    return _ALL_ONES - int(_MEMBER.unpack(member)[0])


def statuses_of(members: list[bytes]) -> list[int]:
    """``status_of`` for a whole range reply at once: one unpack of the joined members instead of one a member
    (a page's range is decoded on every home read)."""
    if not members:
        return []
    packed = b"".join(members)
    if len(packed) != 8 * len(members):
        raise ValueError("a timeline member is not 8 bytes")
    return [_ALL_ONES - i for i in struct.unpack(f">{len(members)}Q", packed)]


def _after(status_id: int) -> bytes:
    """A BYLEX bound excluding ``status_id``: with ``(`` the range starts or ends just past its member."""
    return b"(" + feed_member(status_id)

# KEYS = timelines (on Redis Cluster, of one hash-tag bucket: one slot); ARGV[1] = cap; ARGV[2] = trim threshold
# (members, sentinel included); ARGV[3..] = members. Adds only to timelines that exist, so an expired (inactive) or
# lost timeline costs nothing here and is rebuilt whole on its next read; the check and the write are one atomic step
# per timeline. ZCARD is the existence check (a materialised timeline holds at least its sentinel) and also the size
# the trim decision needs, so a timeline costs two commands. Trimming is amortised: a timeline grows to the threshold,
# then is cut back to the cap in one ZREMRANGEBYRANK, instead of shifting the whole listpack on every add once it is
# full (size + new members bounds the size after the add from above, so a trim may come one add early, never late).
# Members are newest first after the sentinel (rank 0), so the trim keeps ranks 0..cap and cuts the oldest, at the
# tail.
_PUSH_IF_PRESENT = """
local cap = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2]) - (#ARGV - 2)
local args = {}
for i = 3, #ARGV do
  args[#args + 1] = 0
  args[#args + 1] = ARGV[i]
end
local written = 0
for _, key in ipairs(KEYS) do
  local size = redis.call('ZCARD', key)
  if size > 0 then
    redis.call('ZADD', key, unpack(args))
    if size > threshold then
      redis.call('ZREMRANGEBYRANK', key, cap + 1, -1)
    end
    written = written + 1
  end
end
return written
"""

# KEYS = timelines (as above); ARGV = members to remove from each (ZREM never creates a key).
_UNPUSH = """
for _, key in ipairs(KEYS) do
  redis.call('ZREM', key, unpack(ARGV))
end
return #KEYS
"""

PUSH_SHA = hashlib.sha1(_PUSH_IF_PRESENT.encode()).hexdigest().encode()
UNPUSH_SHA = hashlib.sha1(_UNPUSH.encode()).hexdigest().encode()
# Keys per script call: enough to amortise the call, few enough that one call never holds Redis for long
# (a 1M-follower status has ~1,000 followers per bucket; they go out in calls of this many).
MAX_KEYS_PER_CALL = 256


async def calls_must_stay_in_one_slot(redis: Redis) -> bool:
    """Whether this Redis is a Cluster node, where a multi-key call must name keys of one hash slot only.

    A single node takes any keys in one call, so the fanout then packs timelines of every bucket into each
    script call: followers of a status spread over the buckets (1,000 followers fall into ~630 of 1,024), and one
    call per bucket would be one call (~10 µs of Redis time beyond the writes themselves) per follower.

    A Redis that refuses to say (``INFO`` disabled, as some managed services do) is taken for a Cluster node:
    calls within one slot are correct everywhere, only slower on a single node."""
    try:
        info = await redis.info("cluster")
    except ResponseError:
        log.warning("Redis refused INFO cluster; writing timelines one hash-tag bucket per call")
        return True
    return bool(int(info.get("cluster_enabled", 0)))


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
    # Replies of the caller's own commands sent in the same round trip (``prefetch``).
    prefetched: list[Any]


class Feeds:
    """Feed operations bound to one Redis client (the push script is registered once per client)."""

    def __init__(self, redis: Redis, *, cap: int, ttl_seconds: int, trim_slack: int | None = None,
                 one_slot_per_call: bool = True, copies: TrackedCache | None = None,
                 expiry_refresh_seconds: float = 3600.0) -> None:
        self.redis = redis
        self.cap = cap
        # Page reads kept in this process until Redis reports their timeline changed (``read_page``); a
        # reader's timeline has its expiry pushed back at most every ``expiry_refresh_seconds`` then.
        self.copies = copies
        self.expiry_refresh_seconds = min(expiry_refresh_seconds, ttl_seconds / 4)
        self._refreshed: OrderedDict[str, float] = OrderedDict()
        # False only for a single Redis node (``calls_must_stay_in_one_slot``): see ``TimelineWrites``.
        self.one_slot_per_call = one_slot_per_call
        self.ttl_seconds = ttl_seconds
        # A timeline may hold up to cap + slack entries between trims; the default keeps a full one (plus the
        # sentinel) well inside a listpack of 1,024 entries.
        self.trim_slack = max(1, cap // 16) if trim_slack is None else trim_slack

    # Writes ------------------------------------------------------------------------------------------------

    def writes(self) -> TimelineWrites:
        """A buffer of timeline writes for many timelines, packed once (see ``TimelineWrites``)."""
        return TimelineWrites(cap=self.cap, threshold=self.cap + 1 + self.trim_slack,
                              one_slot_per_call=self.one_slot_per_call)

    def materialise(self, pipe: Pipeline, key: str, status_ids: Iterable[int]) -> None:
        """Write a rebuilt timeline. Merges with whatever the fanout added meanwhile instead of replacing it, so a
        status fanned out during the rebuild is not lost."""
        # Oldest first: each member then lands at the head of the listpack (ZADD adds them in order), so
        # writing a full timeline costs no walk through what is already there.
        members = {feed_member(s): 0 for s in sorted(status_ids)}
        members[keys.FEED_SENTINEL] = 0
        # Cut to the cap exactly (the fanout lets a timeline grow to cap + slack between its own trims).
        pipe.zadd(key, members)
        pipe.zremrangebyrank(key, self.cap + 1, -1)
        pipe.expire(key, self.ttl_seconds)

    # Reads ----------------------------------------------------------------------------------------------

    async def is_materialised(self, key: str) -> bool:
        return await self.redis.zscore(key, keys.FEED_SENTINEL) is not None

    async def read_page(self, account_id: int, page: PageRequest, large_followees: Sequence[int] = (),
                        prefetch: Sequence[tuple[str, bytes]] = (), fresh: bool = False) -> PageRead:
        """One page of status ids, newest first, merged across the home timeline and the author feeds of the
        large accounts followed, in one round trip that also carries the caller's ``prefetch`` reads (each
        ``(key, packed read-only command)``).

        With ``copies``, whatever of that this process read before and Redis has not reported changed since is
        not read again: a page of a timeline nobody wrote into costs no round trip. Reading refreshes the home
        timeline's expiry; with copies it does so at most every ``expiry_refresh_seconds`` (an EXPIRE is a
        change too: it would drop the copy), and that read goes around the copies. So does one with ``fresh``:
        after a rebuild, which the copies may not have heard of yet."""
        home = keys.home_feed(account_id)
        sources = [home, *(keys.author_feed(a) for a in large_followees)]
        reads: list[tuple[str, bytes]] = []
        for key in sources:
            framed = key.encode()
            reads.append((key, command(b"ZSCORE", framed, keys.FEED_SENTINEL)))
            reads.append((key, _range_command(framed, page)))
        reads.extend(prefetch)
        if self.copies is not None and not fresh and not self._expiry_due(home):
            replies = await self.copies.read_many(reads)
        else:
            # Hand-packed, replies parsed in bulk (kicau/resp.py): every home read comes through here.
            packed = [read for _, read in reads]
            packed.append(command(b"EXPIRE", home.encode(), b"%d" % self.ttl_seconds))
            replies = (await round_trip(self.redis, packed))[:-1]
            self._refreshed[home] = monotonic()
            self._refreshed.move_to_end(home)
            if len(self._refreshed) > _REFRESHES_KEPT:
                self._refreshed.popitem(last=False)
        lists: list[list[int]] = []
        missing: list[int] = []
        for index, key in enumerate(sources):
            sentinel, members = replies[2 * index], replies[2 * index + 1]
            if sentinel is None and key != home:
                missing.append(large_followees[index - 1])
            lists.append(statuses_of(members))
        ids = _merge(lists, page)
        return PageRead(ids=ids, home_materialised=replies[0] is not None, missing_author_feeds=missing,
                        prefetched=replies[2 * len(sources):])

    def _expiry_due(self, home: str) -> bool:
        refreshed = self._refreshed.get(home)
        return refreshed is None or monotonic() - refreshed >= self.expiry_refresh_seconds

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
            # Newer than the cursor, oldest first: the members just before the cursor's, read backwards.
            pipe.zrange(key, _after(after_id), _SENTINEL_EXCLUSIVE, desc=True, bylex=True, offset=0, num=limit)
            pipe.zrange(key, b"+", _SENTINEL_EXCLUSIVE, desc=True, bylex=True, offset=0, num=1)  # the oldest
            pipe.zscore(key, keys.FEED_SENTINEL)
            pipe.zcard(key)
        replies = await pipe.execute()
        covered = True
        found: set[int] = set()
        for index in range(len(sources)):
            members, oldest, sentinel, size = replies[4 * index: 4 * index + 4]
            ids = statuses_of(members)
            reaches_back = bool(oldest) and status_of(oldest[0]) <= after_id
            never_trimmed = size - 1 < self.cap
            covered = covered and sentinel is not None and (reaches_back or never_trimmed) and len(ids) < limit
            found.update(ids)
        return covered, sorted(found)[:limit]


def _range_command(key: bytes, page: PageRequest) -> bytes:
    """ZRANGE ... BYLEX over the page's cursor range: newest first, or for ``min_id`` pages the ``limit``
    entries just above the cursor, oldest first. Members are newest first, so ``max_id`` (older than) bounds
    the range from below and ``since_id``/``min_id`` (newer than) from above."""
    newest = _after(page.max_id) if page.max_id is not None else _SENTINEL_EXCLUSIVE
    oldest = b"+"
    if page.min_id is not None:
        oldest = _after(page.min_id)
    elif page.since_id is not None:
        oldest = _after(page.since_id)
    limit = b"%d" % page.limit
    if page.min_id is not None:
        return command(b"ZRANGE", key, oldest, newest, b"BYLEX", b"REV", b"LIMIT", b"0", limit)
    return command(b"ZRANGE", key, newest, oldest, b"BYLEX", b"LIMIT", b"0", limit)


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


@dataclass
class TimelineWrites:
    """Commands for the fanout, already serialised as RESP: the script call for a bucket is its header, the
    keys, and an argument tail (cap, threshold, members) packed once per set of statuses, whatever the number
    of timelines. Sent through ``kicau.resp.send`` in order on one connection.

    The first commands load both scripts (SCRIPT LOAD is idempotent), so the EVALSHAs after them never meet a
    Redis that lost its script cache: a restart also breaks the connection, and the batch is then retried.

    A call takes up to ``MAX_KEYS_PER_CALL`` timelines. With ``one_slot_per_call`` (Redis Cluster) they are
    timelines of one bucket; on a single node, timelines of any buckets."""

    cap: int
    threshold: int
    one_slot_per_call: bool = True
    chunks: list[bytes] = field(default_factory=list)
    replies: int = 0
    # Timelines (or other commands) queued: what bounds both the bytes buffered and Redis's time on them.
    weight: int = 0

    def __post_init__(self) -> None:
        self.raw(command(b"SCRIPT", b"LOAD", _PUSH_IF_PRESENT.encode()), 1)
        self.raw(command(b"SCRIPT", b"LOAD", _UNPUSH.encode()), 1)
        self._limits = bulk(b"%d" % self.cap) + bulk(b"%d" % self.threshold)

    def raw(self, packed: bytes, replies: int) -> None:
        self.chunks.append(packed)
        self.replies += replies
        self.weight += replies

    def take(self) -> tuple[list[bytes], int]:
        """What is queued so far (packed commands, replies expected), leaving the buffer empty."""
        taken = self.chunks, self.replies
        self.chunks, self.replies, self.weight = [], 0, 0
        return taken

    def push(self, account_ids: Iterable[int], status_ids: Sequence[int]) -> None:
        """Add statuses to the home timelines of ``account_ids`` that exist, in calls of up to
        ``MAX_KEYS_PER_CALL`` timelines (of one bucket each on Redis Cluster)."""
        if status_ids:
            tail = self._limits + _members(status_ids)
            self._per_timelines(PUSH_SHA, account_ids, tail, 2 + len(status_ids))

    def push_key(self, key: str, status_ids: Sequence[int]) -> None:
        """The same push for one timeline given by key (a large account's author feed)."""
        if status_ids:
            tail = self._limits + _members(status_ids)
            self._call(PUSH_SHA, [bulk(key.encode())], tail, 2 + len(status_ids))

    def unpush(self, account_ids: Iterable[int], status_ids: Sequence[int]) -> None:
        if status_ids:
            self._per_timelines(UNPUSH_SHA, account_ids, _members(status_ids), len(status_ids))

    def unpush_key(self, key: str, status_ids: Sequence[int]) -> None:
        if status_ids:
            self._call(UNPUSH_SHA, [bulk(key.encode())], _members(status_ids), len(status_ids))

    def _per_timelines(self, sha: bytes, account_ids: Iterable[int], tail: bytes, tail_args: int) -> None:
        groups: Iterable[list[bytes]]
        if self.one_slot_per_call:
            grouped: dict[int, list[bytes]] = defaultdict(list)
            bucket_of, key_in = keys.home_bucket, keys.home_feed_in
            for account_id in account_ids:
                bucket = bucket_of(account_id)
                grouped[bucket].append(bulk(key_in(bucket, account_id).encode()))
            groups = grouped.values()
        else:
            groups = [[bulk(keys.home_feed(account_id).encode()) for account_id in account_ids]]
        for framed in groups:
            for start in range(0, len(framed), MAX_KEYS_PER_CALL):
                self._call(sha, framed[start:start + MAX_KEYS_PER_CALL], tail, tail_args)

    def _call(self, sha: bytes, framed_keys: list[bytes], tail: bytes, tail_args: int) -> None:
        count = len(framed_keys)
        head = b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n" % (3 + count + tail_args, sha) + bulk(b"%d" % count)
        self.chunks.append(head + b"".join(framed_keys) + tail)
        self.replies += 1
        self.weight += count


def _members(status_ids: Sequence[int]) -> bytes:
    return b"".join(bulk(feed_member(s)) for s in status_ids)

"""Home timelines in Redis: the representation the fanout writes and the timeline service reads.

A timeline is a Redis *list* of status ids, newest first, as decimal strings (a listpack stores each as an
integer: ~10 bytes an entry), ending with the sentinel ``0``. The list is kept in order by its writers, so a
page is a range by position: the newest page is ``LRANGE 0 limit``, and a cursor (``max_id``, ``since_id``,
``min_id``) is found by a short scan from the head in a script (pages are read newest first, so a cursor
usually lies within the first few dozen entries).

Why a list and not a sorted set: adding to a sorted set first looks the member up, and in a compact (listpack)
sorted set that lookup walks every entry. Into full timelines of 800 entries the fanout's script cost Redis
24-41 µs a timeline, so a status to a thousand followers at 25 statuses a second took most of Redis's core; a
list push never looks: 8-13 µs a timeline whatever its length, and ~11 bytes an entry against ~13 (measured
side by side on the stack's Redis, bench/README.md). What the lookup gave, the push script keeps by itself: a
status newer than the head (nearly every push) goes on the head at once; one that is not is looked for (a
replay changes nothing) and otherwise inserted in its place, so the list stays exactly ordered and free of
duplicates.

The sentinel marks a timeline as materialised (a list cannot be empty, so an empty but real timeline holds
just the sentinel); a missing key tells the reader to rebuild from Cassandra. A rebuild first creates the
timeline *pending* (ending with ``keys.FEED_PENDING`` instead), so that statuses the fanout pushes while the
rebuild reads Cassandra land in it and are merged, not lost (``_BEGIN_REBUILD``). Reads refresh the key's expiry:
a timeline nobody reads for ``inactive_days`` disappears, and the fanout, which only writes into timelines that
exist (the script checks and writes in one step), stops spending anything on that user until they return.

Large accounts are not fanned out: each has an *author feed* of its own newest statuses, and a reader's page is
the exact merge of its home timeline and the author feeds of the large accounts it follows, cut by the same
cursors — so pagination stays exact across the merge.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from kicau import keys
from kicau.identity_memo import IdentityMemo
from kicau.resp import bulk, command, round_trip
from kicau.tracked_cache import TrackedCache

log = logging.getLogger(__name__)

# Home timelines whose expiry this process remembers refreshing (``Feeds.read_page``); one forgotten is
# refreshed again on its next read.
_REFRESHES_KEPT = 100_000
# Range replies whose parsed ids a Feeds keeps (``Feeds._ids_of``): ~2 KB each with the reply, ~8 MB at most.
_PARSED_KEPT = 4096


def feed_member(status_id: int) -> bytes:
    """A status id as a timeline entry."""
    return b"%d" % status_id


def status_of(member: bytes | str) -> int:
    """The status id a timeline entry stands for."""
    return int(member)


def statuses_of(members: Sequence[bytes | str]) -> list[int]:
    """The status ids of a range reply, the sentinel (0) left out."""
    return [status_id for status_id in map(int, members) if status_id]


# Shared by the scripts: whether status id ``a`` is newer than ``b``, both decimal strings without leading zeros
# (the sentinel '0' is older than every id): the longer is larger, and of two as long the one that sorts after.
# Lua compares strings with strcoll, in the server's locale; strings of digits alone and of one length collate
# digit by digit in every locale, as they do byte by byte. (Converting to numbers instead, in two parts since
# Lua's doubles hold 53 bits, cost the push script ~4 of its ~10 µs a timeline.)
_NEWER = """
local SENTINEL = '0'
local PENDING = '00'
local function newer(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
"""

# KEYS = timelines (on Redis Cluster, of one hash-tag bucket: one slot); ARGV[1] = cap; ARGV[2] = trim threshold
# (entries, sentinel included); ARGV[3..] = status ids, distinct, oldest first. Adds only to timelines that exist,
# so an expired (inactive) or lost timeline costs nothing here and is rebuilt whole on its next read; the check and
# the write are one atomic step per timeline. LINDEX of the head is both the existence check and the order check:
# a status newer than the head is pushed on it (two commands a timeline), and statuses all newer than the head (a
# burst of one author's) in one LPUSH, each command a script calls costing about a microsecond. An older one (a
# status published out of order, a replay) is looked for from the head, in windows, down to its place: found
# there, nothing changes; otherwise it is inserted there, unless it is older than every entry of a timeline at its
# cap. (LPOS over the whole list first cost 36 µs a timeline: most such statuses belong within the first few
# entries.) Trimming is amortised: a timeline grows to the threshold, then is cut back to the cap and the sentinel
# put back at its end.
_PUSH_IF_PRESENT = _NEWER + """
local cap = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
local function insert_older(key, m)
  local start, size = 0, 16
  while true do
    local window = redis.call('LRANGE', key, start, start + size - 1)
    for _, v in ipairs(window) do
      -- The list is in order: m, if there, is where it would be inserted.
      if v == m then return 0 end
      if newer(m, v) then
        -- Older than every entry of a timeline at its cap: the next trim would cut it, and until then the
        -- statuses trimmed before would be missing above it.
        if v == SENTINEL and redis.call('LLEN', key) - 1 >= cap then return 0 end
        return redis.call('LINSERT', key, 'BEFORE', v, m)
      end
    end
    if #window < size then return 0 end
    start, size = start + size, 64
  end
end
local written = 0
for _, key in ipairs(KEYS) do
  local head = redis.call('LINDEX', key, 0)
  if head then
    local size = 0
    if newer(ARGV[3], head) then
      -- The oldest is newer than the head, so all are (distinct, oldest first): one LPUSH for up to 256 of them.
      for from = 3, #ARGV, 256 do
        size = redis.call('LPUSH', key, unpack(ARGV, from, math.min(from + 255, #ARGV)))
      end
    else
      for i = 3, #ARGV do
        local m = ARGV[i]
        if newer(m, head) then
          size = redis.call('LPUSH', key, m)
          head = m
        elseif m ~= head then
          local grown = insert_older(key, m)
          if grown > 0 then size = grown end
        end
      end
    end
    -- (A pending timeline is cut only by its rebuild, which merges it with Cassandra's record.)
    if size > threshold and redis.call('LINDEX', key, -1) ~= PENDING then
      redis.call('LTRIM', key, 0, cap - 1)
      redis.call('RPUSH', key, SENTINEL)
    end
    written = written + 1
  end
end
return written
"""

# KEYS = timelines (as above); ARGV = status ids to remove from each (LREM never creates a key). A removal comes
# after a change in Cassandra (an unfollow, a block, a delete); a timeline being rebuilt may have read Cassandra
# before it, and would write the statuses removed here back. So a pending timeline is dropped instead: its
# rebuild finds it gone and starts again (``_MATERIALISE_REBUILT``), reading Cassandra after the change.
_UNPUSH = _NEWER + """
for _, key in ipairs(KEYS) do
  if redis.call('LINDEX', key, -1) == PENDING then
    redis.call('DEL', key)
  else
    for i = 1, #ARGV do
      redis.call('LREM', key, 1, ARGV[i])
    end
  end
end
return #KEYS
"""

# KEYS[1] = a timeline; ARGV = max_id, since_id, min_id ('' when absent), limit. The page's entries inside the
# cursors: newest first, or for a ``min_id`` page the ``limit`` entries just newer than it, oldest first; nil
# for a missing timeline or one being rebuilt (its last entry ``PENDING``: ``_BEGIN_REBUILD``). A cursor's
# place is found by scanning from the head, 64 entries at a time.
_READ_RANGE = _NEWER + """
local key = KEYS[1]
local max_id, since_id, min_id, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local tail = redis.call('LINDEX', key, -1)
if not tail or tail == PENDING then return false end
local function first_index(past)
  local start = 0
  while true do
    local window = redis.call('LRANGE', key, start, start + 63)
    for i, v in ipairs(window) do
      if past(v) then return start + i - 1 end
    end
    if #window < 64 then return start + #window end
    start = start + 64
  end
end
local from = 0
if max_id ~= '' then
  from = first_index(function(v) return newer(max_id, v) end)
end
if min_id ~= '' then
  local to = first_index(function(v) return not newer(v, min_id) end) - 1
  if to < from then return {} end
  local page = redis.call('LRANGE', key, math.max(from, to - limit + 1), to)
  local oldest_first = {}
  for i = #page, 1, -1 do oldest_first[#oldest_first + 1] = page[i] end
  return oldest_first
end
local kept = {}
for _, v in ipairs(redis.call('LRANGE', key, from, from + limit - 1)) do
  if v ~= SENTINEL and (since_id == '' or newer(v, since_id)) then kept[#kept + 1] = v end
end
return kept
"""

# KEYS[1] = a timeline; ARGV[1] = cap; ARGV[2] = expiry (s); ARGV[3..] = status ids, newest first. A rebuilt
# timeline, merged with whatever the fanout added meanwhile instead of replacing it (a status fanned out during
# the rebuild is not lost), cut to the cap, the sentinel at its end.
_MERGE_AND_WRITE = """
local key = KEYS[1]
local cap = tonumber(ARGV[1])
local have = {}
if redis.call('TYPE', key)['ok'] == 'list' then have = redis.call('LRANGE', key, 0, -1) end
local merged = {}
local i, j = 1, 3
while #merged < cap do
  local a = have[i]
  if a == SENTINEL or a == PENDING then a = nil end
  local b = ARGV[j]
  if a == nil and b == nil then break end
  if b == nil or (a ~= nil and newer(a, b)) then
    merged[#merged + 1] = a
    i = i + 1
  elseif a == nil or newer(b, a) then
    merged[#merged + 1] = b
    j = j + 1
  else
    merged[#merged + 1] = a
    i = i + 1
    j = j + 1
  end
end
merged[#merged + 1] = SENTINEL
redis.call('DEL', key)
for start = 1, #merged, 1000 do
  redis.call('RPUSH', key, unpack(merged, start, math.min(start + 999, #merged)))
end
redis.call('EXPIRE', key, ARGV[2])
return #merged - 1
"""
_MATERIALISE = _NEWER + _MERGE_AND_WRITE
# The same for a rebuild, which began by making the timeline pending (``_BEGIN_REBUILD``): -1, writing nothing, if
# the timeline is gone since. What dropped it was a change the rebuild's read of Cassandra may predate (a change of
# a list's members deletes the list's timeline; a removal drops a pending timeline, ``_UNPUSH``), or the pending
# timeline expired under a rebuild that took too long; either way the rebuild starts again.
_MATERIALISE_REBUILT = _NEWER + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
""" + _MERGE_AND_WRITE

# KEYS[1] = a timeline about to be rebuilt; ARGV[1] = how long (s) it may stay pending. 1 if it is materialised
# (ends with the sentinel: nothing to rebuild); else 0, and a missing timeline is created pending (just
# ``PENDING``) before the rebuild reads Cassandra. The push script writes into a pending timeline as into any
# that exists, and ``_MATERIALISE`` merges what it holds: a status whose record the rebuild's read missed
# (written just after it) was pushed after the timeline became pending, so it is in the timeline. Were the
# timeline created only by ``_MATERIALISE``, a push between the rebuild's read and its write found no timeline
# and was dropped, and the status was missing until the timeline expired. A rebuild that dies leaves the pending
# timeline to expire.
_BEGIN_REBUILD = _NEWER + """
local tail = redis.call('LINDEX', KEYS[1], -1)
if tail == SENTINEL then return 1 end
if not tail then
  redis.call('RPUSH', KEYS[1], PENDING)
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return 0
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

    @property
    def newest(self) -> bool:
        """No cursor: the newest ``limit`` entries, read as a plain range (``_range_command``)."""
        return self.max_id is None and self.since_id is None and self.min_id is None


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
        # A timeline may hold up to cap + slack entries between trims (one LTRIM for every ``slack`` pushes).
        self.trim_slack = max(1, cap // 16) if trim_slack is None else trim_slack
        # Timeline keys as the fanout packs them, by account (see ``FramedKeys``).
        self.framed_keys = FramedKeys()
        # The status ids of range replies the copies hand out again and again, parsed once (``_ids_of``).
        self._parsed: IdentityMemo[list[bytes], list[int]] = IdentityMemo(_PARSED_KEPT)

    # Writes ------------------------------------------------------------------------------------------------

    def writes(self) -> TimelineWrites:
        """A buffer of timeline writes for many timelines, packed once (see ``TimelineWrites``)."""
        return TimelineWrites(cap=self.cap, threshold=self.cap + 1 + self.trim_slack,
                              one_slot_per_call=self.one_slot_per_call, framed_keys=self.framed_keys)

    def materialise(self, pipe: Pipeline, key: str, status_ids: Iterable[int], *, rebuilt: bool = False) -> None:
        """Write a timeline (cut to the cap exactly), merged with whatever the fanout added meanwhile instead of
        replacing it, so a status fanned out during a rebuild is not lost; sets its expiry. ``rebuilt``: the
        ids come from a rebuild begun with ``begin_rebuild``, and nothing is written if the timeline was dropped
        since (the pipeline's reply is then -1: rebuild again)."""
        newest_first = sorted(set(status_ids), reverse=True)
        script = _MATERIALISE_REBUILT if rebuilt else _MATERIALISE
        pipe.eval(script, 1, key, self.cap, self.ttl_seconds, *newest_first)

    def key_changes(self, key: str, pushed: Sequence[int], unpushed: Sequence[int]) -> list[bytes]:
        """A single timeline's pushes and removals (the public timeline's) as self-contained commands: EVAL of
        the scripts' text rather than EVALSHA after SCRIPT LOADs, so that they can go on a connection of their
        own, in one command each whatever Redis's script cache holds (Redis hashes the ~2 KB text per call: a
        few µs, once a batch)."""
        commands = []
        if unpushed:
            commands.append(command(b"EVAL", _UNPUSH_SCRIPT, b"1", key.encode(), *map(feed_member, unpushed)))
        if pushed:
            commands.append(command(b"EVAL", _PUSH_SCRIPT, b"1", key.encode(), b"%d" % self.cap,
                                    b"%d" % (self.cap + 1 + self.trim_slack), *map(feed_member, sorted(set(pushed)))))
        return commands

    # Reads ----------------------------------------------------------------------------------------------

    async def is_materialised(self, key: str) -> bool:
        """Whether the timeline exists and is not being rebuilt: it ends with the sentinel."""
        return bool(await self.redis.lindex(key, -1) == keys.FEED_SENTINEL)

    async def begin_rebuild(self, key: str, pending_seconds: int) -> bool:
        """Before a rebuild reads Cassandra: False, with the timeline now existing as pending if it was missing,
        so that the fanout's pushes from here on land in it (``_BEGIN_REBUILD``); True if it is materialised
        already (nothing to rebuild)."""
        return bool(await self.redis.eval(_BEGIN_REBUILD, 1, key, pending_seconds))

    async def read_page(self, account_id: int, page: PageRequest, large_followees: Sequence[int] = (),
                        prefetch: Sequence[tuple[str, bytes]] = (), fresh: bool = False,
                        key: str | None = None) -> PageRead:
        """One page of status ids, newest first, merged across the home timeline and the author feeds of the
        large accounts followed, in one round trip that also carries the caller's ``prefetch`` reads (each
        ``(key, packed read-only command)``).

        With ``copies``, whatever of that this process read before and Redis has not reported changed since is
        not read again: a page of a timeline nobody wrote into costs no round trip. Reading refreshes the home
        timeline's expiry; with copies it does so at most every ``expiry_refresh_seconds`` (an EXPIRE is a
        change too: it would drop the copy), and that read goes around the copies. So does one with ``fresh``:
        after a rebuild, which the copies may not have heard of yet. ``key``: a list's timeline read instead of
        the home timeline (kicau/lists.py), merged with its large members' author feeds the same way."""
        home = key if key is not None else keys.home_feed(account_id)
        sources = [home, *(keys.author_feed(a) for a in large_followees)]
        newest = page.newest
        reads: list[tuple[str, bytes]] = [
            (key, _newest_read(key, page.limit) if newest else _range_command(key.encode(), page)) for key in sources]
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
        materialised: list[bool] = []
        for index in range(len(sources)):
            reply = replies[index]
            # The newest page is a plain range: a timeline that exists yields at least its sentinel (or more
            # entries than the page). A cursor page comes from the script, nil for a missing timeline.
            materialised.append(_exists(reply) if newest else reply is not None)
            ids = self._ids_of(reply) if self.copies is not None else statuses_of(reply or [])
            lists.append(ids[:page.limit] if newest else ids[:])  # a list of its own: the parsed one is shared
        missing = [large_followees[index - 1] for index in range(1, len(sources)) if not materialised[index]]
        ids = _merge(lists, page)
        return PageRead(ids=ids, home_materialised=materialised[0], missing_author_feeds=missing,
                        prefetched=replies[len(sources):])

    async def read_list(self, key: str, page: PageRequest, fresh: bool = False) -> tuple[list[int], bool]:
        """One page of a single timeline given by key (the public timeline), newest first, and whether that
        timeline exists (else it is to be rebuilt): as ``read_page`` reads a home timeline without large
        followees, through the copies and with the same expiry refresh."""
        read = _range_command(key.encode(), page)
        if self.copies is not None and not fresh and not self._expiry_due(key):
            (reply,) = await self.copies.read_many([(key, read)])
        else:
            reply, _ = await round_trip(self.redis, [read, command(b"EXPIRE", key.encode(), b"%d" % self.ttl_seconds)])
            self._refreshed[key] = monotonic()
            self._refreshed.move_to_end(key)
        materialised = _exists(reply) if page.newest else reply is not None
        ids = statuses_of(reply or [])
        return _merge([ids[:page.limit] if page.newest else ids], page), materialised

    def _ids_of(self, reply: list[bytes] | None) -> list[int]:
        """``statuses_of`` the reply, parsed once per reply the copies hold: parsing a page's ids took ~3% of the
        timeline's time on each home page (py-spy), for the same reply until the timeline changed."""
        if not reply:
            return []
        return self._parsed.get(reply, statuses_of)

    def _expiry_due(self, home: str) -> bool:
        refreshed = self._refreshed.get(home)
        return refreshed is None or monotonic() - refreshed >= self.expiry_refresh_seconds

    async def newest_after(
        self, account_id: int, after_id: int, limit: int, large_followees: Sequence[int] = ()
    ) -> tuple[bool, list[int]]:
        """Entries newer than ``after_id``, oldest first, across the home timeline and the author feeds of the
        large accounts followed, and whether they are provably *all* the entries the reader missed: every source
        must be materialised and either reach back to the cursor or never have been trimmed. Used by stream
        resume (rare): each source is read whole; when it answers False the client has to refetch."""
        sources = [keys.home_feed(account_id), *(keys.author_feed(a) for a in large_followees)]
        replies = await round_trip(self.redis, [command(b"LRANGE", key.encode(), b"0", b"-1") for key in sources])
        covered = True
        found: set[int] = set()
        for members in replies:
            entries = statuses_of(members or [])  # newest first
            newer = [status_id for status_id in entries if status_id > after_id]
            reaches_back = bool(entries) and entries[-1] <= after_id
            never_trimmed = len(entries) < self.cap
            covered = covered and _exists(members) and (reaches_back or never_trimmed) and len(newer) < limit
            found.update(newer)
        return covered, sorted(found)[:limit]


def _exists(newest: list[bytes] | None) -> bool:
    """Whether a range from a timeline's head shows it materialised: it exists (a list is never empty) and is
    not being rebuilt. A pending timeline's last entry shows in the range unless the fanout pushed more than the
    range into it during its rebuild (milliseconds); the range then holds its newest statuses, as it would have
    once rebuilt, but for one fanned out (out of order) before the rebuild began."""
    return newest is not None and len(newest) > 0 and newest[-1] != keys.FEED_PENDING


def _range_command(key: bytes, page: PageRequest) -> bytes:
    """The read of one source for ``page``: the newest page is ``LRANGE 0 limit`` (one more than the page, so
    that it also shows whether the timeline exists: the sentinel or a full page); a page with cursors is the
    range script (``_READ_RANGE``)."""
    if page.newest:
        return command(b"LRANGE", key, b"0", b"%d" % page.limit)
    return command(b"EVAL", _READ_RANGE_SCRIPT, b"1", key, _cursor(page.max_id), _cursor(page.since_id),
                   _cursor(page.min_id), b"%d" % page.limit)


@functools.lru_cache(maxsize=32_768)
def _newest_read(key: str, limit: int) -> bytes:
    """``_range_command`` of a newest page, packed once per timeline and limit: the command is also what the
    copies know the reply by, and packing it again on every home page was ~2% of the page's time (py-spy)."""
    return command(b"LRANGE", key.encode(), b"0", b"%d" % limit)


_READ_RANGE_SCRIPT = _READ_RANGE.encode()
_PUSH_SCRIPT = _PUSH_IF_PRESENT.encode()
_UNPUSH_SCRIPT = _UNPUSH.encode()


def _cursor(status_id: int | None) -> bytes:
    return b"" if status_id is None else b"%d" % status_id


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


class FramedKeys:
    """Accounts' home-timeline keys as a script call carries them (a RESP bulk string), with their bucket, kept
    by account id: the same followers are written status after status, and composing each key (its bucket, the
    name, the framing) cost ~1.5 µs a timeline, a fifth of the fanout's time at 25 statuses a second to 1,000
    followers (py-spy). Bounded: once ``max_entries`` are held, the map starts over (~200 bytes an entry)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max_entries = max_entries
        self._held: dict[int, tuple[int, bytes]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def of(self, account_id: int) -> tuple[int, bytes]:
        """(bucket, framed key) of the account's home timeline."""
        found = self._held.get(account_id)
        if found is None:
            if len(self._held) >= self._max_entries:
                self._held.clear()
            bucket = keys.home_bucket(account_id)
            found = self._held[account_id] = (bucket, bulk(keys.home_feed_in(bucket, account_id).encode()))
        return found


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
    framed_keys: FramedKeys = field(default_factory=FramedKeys)

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
            # Distinct, oldest first: the newest ends on the head, and the script's one-LPUSH path relies on both.
            ordered = sorted(set(status_ids))
            self._per_timelines(PUSH_SHA, account_ids, self._limits + _members(ordered), 2 + len(ordered))

    def push_key(self, key: str, status_ids: Sequence[int]) -> None:
        """The same push for one timeline given by key (a large account's author feed)."""
        if status_ids:
            ordered = sorted(set(status_ids))
            self._call(PUSH_SHA, [bulk(key.encode())], self._limits + _members(ordered), 2 + len(ordered))

    def unpush(self, account_ids: Iterable[int], status_ids: Sequence[int]) -> None:
        if status_ids:
            self._per_timelines(UNPUSH_SHA, account_ids, _members(status_ids), len(status_ids))

    def unpush_key(self, key: str, status_ids: Sequence[int]) -> None:
        if status_ids:
            self._call(UNPUSH_SHA, [bulk(key.encode())], _members(status_ids), len(status_ids))

    def _per_timelines(self, sha: bytes, account_ids: Iterable[int], tail: bytes, tail_args: int) -> None:
        groups: Iterable[list[bytes]]
        framed_key = self.framed_keys.of
        if self.one_slot_per_call:
            grouped: dict[int, list[bytes]] = defaultdict(list)
            for account_id in account_ids:
                bucket, key = framed_key(account_id)
                grouped[bucket].append(key)
            groups = grouped.values()
        else:
            groups = [[framed_key(account_id)[1] for account_id in account_ids]]
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

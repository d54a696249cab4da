"""Process-local copies of Redis values, kept true by Redis itself (server-assisted client-side caching).

Why: a home page reads twenty statuses and their authors' cards, and most of them are the same few hundred
recent statuses for every reader. Fetching them from Redis on every page was a round trip of ~21 GETs and
~31 KB: the largest share of the timeline service's CPU per page and most of Redis's (bench/README.md). Here a
process keeps what it read and asks Redis only for what it does not hold.

Coherence comes from Redis's ``CLIENT TRACKING``: the values are read on a connection of their own
(``kicau.autopipeline`` in RESP3, tracking on), and Redis remembers every key that connection read. When such a
key changes (a status tombstoned on delete, a card whose counts moved, an expiry, a flush), Redis pushes an
invalidation on that same connection, and the copy is dropped the moment the push is read. Because the push
travels on the connection that carried the value, in order with its replies, a copy is stored as its reply is
read and a later change always arrives after it; a change that came earlier was applied before the read and
is already in the value. When the connection is lost, Redis forgets what it tracked, so every copy is dropped
too. A reader therefore sees a change as soon as this process has read its invalidation, a fraction of a
millisecond after the write; a writer's own answer reaches its client only after Redis has sent that push.

A value may also be kept decoded (``get_decoded``: the gateway's token entries, resolved on every request),
decoded once per copy and retired with it. Besides values (``get_many``), a process may keep the replies of
other read-only commands on one key (``read_many``): a home timeline's page range, say, kept until the fanout
writes into that timeline.

Only values that change rarely belong here: each change costs one push to every process holding the key
(Redis then forgets the key for that process until it reads it again, so at most one push a read).
Copies are bounded in number; the oldest go first. ``get_many`` keeps no copy of a missing key (a missing
status is loaded and written by the reader itself, which then reads it again); ``read_many`` keeps every reply.
Redis reports an expiry only once it removes the key, which for a key nobody reads may be long after its time:
so no copy is kept longer than ``max_age`` seconds either (all are dropped together, which costs one read of each
again).

Needs Redis 6 or later (RESP3 and ``CLIENT TRACKING``); the stack, the compose file and the manifests run 7.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from time import monotonic
from typing import Any, TypeVar

import hiredis
from redis.asyncio import Redis

from kicau import resp
from kicau.autopipeline import AutoPipeline, Push, endpoint_of
from kicau.metrics import LOCAL_CACHE_FLUSHES, LOCAL_CACHE_INVALIDATIONS, LOCAL_CACHE_READS

_HITS = LOCAL_CACHE_READS.labels("hit")
_MISSES = LOCAL_CACHE_READS.labels("miss")
_ABSENT = object()
# Replies kept per key (a reader paging back through its timeline asks for one range after another).
_REPLIES_PER_KEY = 16

T = TypeVar("T")


class TrackedCache:
    def __init__(self, redis: Redis, *, max_entries: int, max_age: float = 60.0) -> None:
        if max_entries < 1 or max_age <= 0:
            raise ValueError("a tracked cache holds at least one entry, for some time")
        self._max_entries = max_entries
        self._max_age = max_age
        self._renewal = monotonic() + max_age
        self._copies: OrderedDict[str, bytes] = OrderedDict()
        # key -> (the copy it was decoded from, what ``get_decoded`` made of it); valid while that very copy is
        # held (compared by identity), so dropping or replacing the copy is enough to retire it.
        self._decoded: dict[str, tuple[bytes, Any]] = {}
        # key -> {packed command: its reply}, for ``read_many``.
        self._replies: OrderedDict[str, dict[bytes, Any]] = OrderedDict()
        self._pipeline = AutoPipeline(endpoint_of(redis, "tracked"), tracking=True,
                                      on_push=self._pushed, on_reset=self.clear)

    def __len__(self) -> int:
        return len(self._copies) + len(self._replies)

    def __contains__(self, key: str) -> bool:
        return key in self._copies or key in self._replies

    def _renew(self) -> None:
        if monotonic() >= self._renewal:
            self._renewal = monotonic() + self._max_age
            self.clear()

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Each key's value (None where Redis has none), from the copies held here, the rest read from Redis
        in one round trip on the tracking connection."""
        self._renew()
        copies = self._copies
        found: list[bytes | None] = list(map(copies.get, keys))
        if None not in found:  # as on most home pages: every status and card held
            _HITS.inc(len(keys))
            return found
        missing = [key for key, value in zip(keys, found, strict=True) if value is None]
        if len(missing) < len(keys):
            _HITS.inc(len(keys) - len(missing))
        if not missing:
            return found
        _MISSES.inc(len(missing))
        replies = await resp.round_trip_on(self._pipeline, [resp.get(key) for key in missing],
                                           on_replies=lambda read: self._keep(missing, read))
        fetched = iter(replies)
        return [value if value is not None else next(fetched) for value in found]

    async def get_decoded(self, key: str, decode: Callable[[bytes], T]) -> T | None:
        """``decode`` of the key's value (None where Redis has none), decoded once per copy held here.

        Why: the gateway resolves a bearer token on every request, and decoding the same cached token entry
        each time cost more than finding it."""
        self._renew()
        held = self._copies.get(key)
        if held is not None:
            memo = self._decoded.get(key)
            _HITS.inc()
            if memo is not None and memo[0] is held:
                remembered: T = memo[1]
                return remembered
            value = held
        else:
            (read,) = await self.get_many([key])
            if read is None:
                return None
            value = read
        decoded = decode(value)
        if self._copies.get(key) is value:  # still the copy held (a push may have dropped it meanwhile)
            memos = self._decoded
            memos.pop(key, None)
            memos[key] = (value, decoded)
            if len(memos) > self._max_entries:
                del memos[next(iter(memos))]
        return decoded

    def _keep(self, keys: list[str], replies: list[Any]) -> None:
        # Runs as the replies are read, before any push behind them (kicau/autopipeline.py).
        copies = self._copies
        for key, value in zip(keys, replies, strict=True):
            if isinstance(value, bytes):
                copies[key] = value
                copies.move_to_end(key)
        while len(copies) > self._max_entries:
            copies.popitem(last=False)

    async def read_many(self, reads: Sequence[tuple[str, bytes]]) -> list[Any]:
        """The replies of read-only commands, each reading the one key it is given with, as ``(key, packed
        command)``: those held here, the rest from Redis in one round trip on the tracking connection. A reply
        is kept until its key changes, whatever it was, None included: Redis tracks a key it was asked about
        whether or not the key exists, so a missing key's creation is pushed like any change.

        A process that writes a key it reads here must not take a copy for the written value the moment its
        write is answered: the push may still be on its way. It reads around the copies (or waits for the
        push) instead."""
        self._renew()
        held = self._replies
        found: list[Any] = []
        missing: list[int] = []
        for index, (key, packed) in enumerate(reads):
            kept = held.get(key)
            reply = _ABSENT if kept is None else kept.get(packed, _ABSENT)
            if reply is _ABSENT:
                missing.append(index)
            found.append(reply)
        if len(missing) < len(reads):
            _HITS.inc(len(reads) - len(missing))
        if not missing:
            return found
        _MISSES.inc(len(missing))
        asked = [reads[index] for index in missing]
        replies = await resp.round_trip_on(self._pipeline, [packed for _, packed in asked],
                                           on_replies=lambda read: self._keep_replies(asked, read))
        for index, reply in zip(missing, replies, strict=True):
            found[index] = reply
        return found

    def _keep_replies(self, reads: list[tuple[str, bytes]], replies: list[Any]) -> None:
        # Runs as the replies are read, before any push behind them (kicau/autopipeline.py).
        held = self._replies
        for (key, packed), reply in zip(reads, replies, strict=True):
            if isinstance(reply, hiredis.ReplyError):
                continue
            kept = held.get(key)
            if kept is None or len(kept) >= _REPLIES_PER_KEY:
                kept = held[key] = {}
            kept[packed] = reply
            held.move_to_end(key)
        while len(held) > self._max_entries:
            held.popitem(last=False)

    def _pushed(self, push: Push) -> None:
        if len(push) < 2 or push[0] != b"invalidate":
            return
        changed = push[1]
        if changed is None:  # FLUSHALL / FLUSHDB (a full tracking table names the keys it lets go)
            self.clear()
            return
        LOCAL_CACHE_INVALIDATIONS.inc(len(changed))
        copies, replies = self._copies, self._replies
        decoded = self._decoded
        for key in changed:
            name = key.decode() if isinstance(key, bytes) else key
            copies.pop(name, None)
            replies.pop(name, None)
            decoded.pop(name, None)

    def clear(self) -> None:
        if self._copies or self._replies:
            LOCAL_CACHE_FLUSHES.inc()
            self._copies.clear()
            self._replies.clear()
        self._decoded.clear()

    def close(self) -> None:
        self._pipeline.close()

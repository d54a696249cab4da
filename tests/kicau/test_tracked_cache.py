"""Process-local copies kept true by Redis (kicau/tracked_cache.py), on the real Redis: a value read once is served
from the copy; a change by any other client (write, delete, expiry) drops the copy by itself, with no read needed
to notice; no copy outlives ``max_age``; a lost connection drops every copy and tracking resumes on the next one;
copies are bounded, oldest first; missing keys are not kept; a value kept decoded is decoded once per copy.
Replies of other read-only commands (``read_many``) are kept the same way, a missing key's included, and dropped
when their key changes."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from kicau.metrics import LOCAL_CACHE_READS
from kicau.resp import command
from kicau.tracked_cache import TrackedCache

REDIS_PORT = int(os.environ.get("KICAU_REDIS_PORT", "6379"))


@dataclass
class World:
    """A client that writes (not tracked), a key prefix for this test, and the caches it made (closed after)."""

    writer: Redis
    prefix: str
    name: str  # of the connections: the tracked one is named ``<name>-tracked``
    caches: list[TrackedCache] = field(default_factory=list)

    def key(self, suffix: object) -> str:
        return f"{self.prefix}:{suffix}"

    def cache(self, max_entries: int = 100, max_age: float = 60.0) -> TrackedCache:
        made = TrackedCache(Redis(port=REDIS_PORT, client_name=self.name), max_entries=max_entries,
                            max_age=max_age)
        self.caches.append(made)
        return made


@pytest.fixture
async def world() -> AsyncIterator[World]:
    made = World(Redis(port=REDIS_PORT), f"kicau:test:tracked:{uuid.uuid4().hex}",
                 f"kicau-test-{uuid.uuid4().hex[:10]}")
    yield made
    for cache in made.caches:
        cache.close()
    # Every key the tests write (each with an expiry besides): scanning the stack's keyspace takes seconds.
    await made.writer.delete(*map(made.key, [*"abx", *"01234", "status", "aging", "later", "feed", "new", "text"]))
    await made.writer.aclose()


async def _until(check: Callable[[], bool]) -> None:
    """Wait, without reading through the cache, until ``check`` holds: pushes must arrive on their own."""
    deadline = asyncio.get_running_loop().time() + 3.0
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "the invalidation never arrived"
        await asyncio.sleep(0.01)


def _hits() -> float:
    return float(LOCAL_CACHE_READS.labels("hit").value)


async def test_a_value_read_once_is_served_from_the_copy(world: World) -> None:
    writer, cache = world.writer, world.cache()
    await writer.set(world.key("a"), b"alpha", ex=60)
    await writer.set(world.key("b"), b"", ex=60)  # an empty value (a tombstone) is a value too
    assert await cache.get_many([world.key("a"), world.key("b")]) == [b"alpha", b""]
    before = _hits()
    assert await cache.get_many([world.key("b"), world.key("a")]) == [b"", b"alpha"]
    assert _hits() - before == 2


async def test_changes_by_other_clients_drop_the_copy_without_a_read(world: World) -> None:
    writer, cache = world.writer, world.cache()
    key = world.key("status")
    await writer.set(key, b"v1", ex=60)
    assert await cache.get_many([key]) == [b"v1"]
    assert key in cache

    await writer.set(key, b"v2", ex=60)
    await _until(lambda: key not in cache)
    assert await cache.get_many([key]) == [b"v2"]  # read again, and tracked again

    await writer.delete(key)
    await _until(lambda: key not in cache)
    assert await cache.get_many([key]) == [None]

    await writer.set(key, b"short-lived", px=100)
    assert await cache.get_many([key]) == [b"short-lived"]
    await asyncio.sleep(0.2)
    assert await writer.exists(key) == 0  # Redis removes the expired key as it is touched, and says so
    await _until(lambda: key not in cache)
    assert await cache.get_many([key]) == [None]


async def test_a_lost_connection_drops_every_copy_and_tracking_resumes(world: World) -> None:
    writer, cache = world.writer, world.cache()
    keys = [world.key(i) for i in range(3)]
    for key in keys:
        await writer.set(key, key.encode(), ex=60)
    await cache.get_many(keys)
    assert len(cache) == 3
    # Redis forgets what a closed connection tracked: copies kept past that could never be invalidated.
    tracked = [c for c in await writer.client_list() if c.get("name") == f"{world.name}-tracked"]
    assert len(tracked) == 1 and tracked[0]["resp"] == "3" and "t" in tracked[0]["flags"]  # tracking on
    assert await writer.client_kill_filter(_id=str(tracked[0]["id"])) == 1
    await _until(lambda: len(cache) == 0)

    assert await cache.get_many(keys) == [key.encode() for key in keys]  # a new connection, tracking on
    assert len(cache) == 3
    await writer.set(keys[1], b"changed", ex=60)
    await _until(lambda: keys[1] not in cache)
    assert await cache.get_many(keys) == [keys[0].encode(), b"changed", keys[2].encode()]


async def test_no_copy_outlives_max_age(world: World) -> None:
    """An expired key nobody touches is reported only when Redis gets round to removing it: copies are renewed
    every ``max_age`` seconds regardless."""
    writer, cache = world.writer, world.cache(max_age=0.3)
    key = world.key("aging")
    await writer.set(key, b"v", ex=60)
    await cache.get_many([key])
    before = _hits()
    assert await cache.get_many([key]) == [b"v"]
    assert _hits() - before == 1
    await asyncio.sleep(0.4)
    before = _hits()
    assert await cache.get_many([key]) == [b"v"]
    assert _hits() - before == 0  # read from Redis again
    assert key in cache


async def test_copies_are_bounded_and_the_oldest_go_first(world: World) -> None:
    writer, cache = world.writer, world.cache(max_entries=3)
    keys = [world.key(i) for i in range(5)]
    for key in keys:
        await writer.set(key, key.encode(), ex=60)
    for key in keys:
        await cache.get_many([key])
    assert len(cache) == 3
    assert [key in cache for key in keys] == [False, False, True, True, True]
    # A bounded cache still answers everything, from Redis where it holds no copy.
    assert await cache.get_many(keys) == [key.encode() for key in keys]


async def test_missing_keys_are_not_kept(world: World) -> None:
    writer, cache = world.writer, world.cache()
    key = world.key("later")
    assert await cache.get_many([key]) == [None]
    assert key not in cache
    await writer.set(key, b"now", ex=60)
    assert await cache.get_many([key]) == [b"now"]


async def test_a_flush_drops_every_copy(world: World) -> None:
    """Redis says so with an invalidation that names no key (FLUSHALL cannot be run on the shared stack)."""
    writer, cache = world.writer, world.cache()
    await writer.set(world.key("x"), b"x", ex=60)
    await cache.get_many([world.key("x")])
    cache._pushed([b"message", b"some channel"])  # other pushes are not invalidations
    assert len(cache) == 1
    cache._pushed([b"invalidate", None])
    assert len(cache) == 0


async def test_replies_of_reads_are_kept_until_their_key_changes(world: World) -> None:
    writer, cache = world.writer, world.cache()
    feed, new = world.key("feed"), world.key("new")
    await writer.zadd(feed, {b"a": 0, b"b": 0, b"c": 0})
    await writer.expire(feed, 60)
    head = (feed, command(b"ZRANGE", feed.encode(), b"-", b"+", b"BYLEX", b"LIMIT", b"0", b"2"))
    size = (feed, command(b"ZCARD", feed.encode()))
    absent = (new, command(b"ZSCORE", new.encode(), b"a"))
    assert await cache.read_many([head, size, absent]) == [[b"a", b"b"], 3, None]
    before = _hits()
    assert await cache.read_many([absent, head, size]) == [None, [b"a", b"b"], 3]
    assert _hits() - before == 3  # no round trip: the missing key's reply is kept too

    # A write to the key drops every reply kept for it, with no read needed to notice.
    await writer.zadd(feed, {b"0": 0})
    await _until(lambda: feed not in cache)
    assert new in cache
    assert await cache.read_many([head, size]) == [[b"0", b"a"], 4]
    # So does the creation of a key that was missing when read.
    await writer.zadd(new, {b"a": 1})
    await writer.expire(new, 60)
    await _until(lambda: new not in cache)
    assert await cache.read_many([absent]) == [1.0]  # RESP3 answers a score as a double


async def test_error_replies_are_not_kept(world: World) -> None:
    writer, cache = world.writer, world.cache()
    text = world.key("text")
    await writer.set(text, b"not a sorted set", ex=60)
    with pytest.raises(ResponseError):
        await cache.read_many([(text, command(b"ZCARD", text.encode()))])
    assert text not in cache


async def test_a_value_is_decoded_once_per_copy_and_again_after_it_changes(world: World) -> None:
    writer, cache = world.writer, world.cache(max_entries=2)
    key = world.key("a")
    decoded: list[bytes] = []

    def decode(raw: bytes) -> str:
        decoded.append(raw)
        return raw.decode().upper()

    await writer.set(key, b"alpha", ex=60)
    assert [await cache.get_decoded(key, decode) for _ in range(3)] == ["ALPHA"] * 3
    assert decoded == [b"alpha"]  # read and decoded once, then served decoded

    await writer.set(key, b"beta", ex=60)
    await _until(lambda: key not in cache)
    assert await cache.get_decoded(key, decode) == "BETA"
    assert await cache.get_decoded(key, decode) == "BETA"
    assert decoded == [b"alpha", b"beta"]

    await writer.delete(key)
    await _until(lambda: key not in cache)
    assert await cache.get_decoded(key, decode) is None  # nothing to decode, and nothing kept
    assert decoded == [b"alpha", b"beta"]

    # A copy evicted for room (no push involved) is read and decoded afresh, never answered from its old memo.
    await writer.set(key, b"gamma", ex=60)
    assert await cache.get_decoded(key, decode) == "GAMMA"
    for other in (world.key("b"), world.key("x")):
        await writer.set(other, b"other", ex=60)
        await cache.get_many([other])
    assert key not in cache
    assert await cache.get_decoded(key, decode) == "GAMMA"
    assert decoded == [b"alpha", b"beta", b"gamma", b"gamma"]


def test_a_cache_holds_at_least_one_entry() -> None:
    with pytest.raises(ValueError):
        TrackedCache(Redis(port=REDIS_PORT), max_entries=0)
    with pytest.raises(ValueError):
        TrackedCache(Redis(port=REDIS_PORT), max_entries=10, max_age=0)

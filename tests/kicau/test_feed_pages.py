"""Home pages read through process-local copies (``Feeds`` with a ``TrackedCache``), on the real Redis: a page of
a timeline nobody wrote into is served without a round trip; a write into it (the fanout's, or a rebuild's)
shows in the next page once Redis's push is read; the timeline's expiry is still pushed back by reads, at most
every ``expiry_refresh_seconds``; a ``fresh`` read goes around the copies."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from kicau import keys, resp
from kicau.feeds import Feeds, PageRequest, feed_member
from kicau.metrics import LOCAL_CACHE_READS
from kicau.tracked_cache import TrackedCache

REDIS_PORT = int(os.environ.get("KICAU_REDIS_PORT", "6379"))
TTL = 1000


def _hits() -> float:
    return float(LOCAL_CACHE_READS.labels("hit").value)


async def _until(check: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + 3.0
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "the invalidation never arrived"
        await asyncio.sleep(0.01)


@pytest.fixture
async def reader() -> AsyncIterator[tuple[Redis, int]]:
    """A writer's client and a reader's account id whose home timeline holds statuses 1..30."""
    writer = Redis(port=REDIS_PORT)
    account = 9_000_000_000 + uuid.uuid4().int % 1_000_000_000
    pipe = writer.pipeline(transaction=False)
    Feeds(writer, cap=100, ttl_seconds=TTL).materialise(pipe, keys.home_feed(account), range(1, 31))
    await pipe.execute()
    yield writer, account
    await writer.delete(keys.home_feed(account))
    await writer.aclose()


@pytest.fixture
async def copies() -> AsyncIterator[TrackedCache]:
    made = TrackedCache(Redis(port=REDIS_PORT, client_name=f"kicau-test-{uuid.uuid4().hex[:10]}"),
                        max_entries=100)
    yield made
    made.close()


async def test_an_unchanged_page_is_served_from_copies_and_a_write_shows_next(
        reader: tuple[Redis, int], copies: TrackedCache) -> None:
    writer, account = reader
    home = keys.home_feed(account)
    feeds = Feeds(writer, cap=100, ttl_seconds=TTL, copies=copies)
    first = await feeds.read_page(account, PageRequest(limit=5))  # refreshes the expiry, around the copies
    assert first.ids == [30, 29, 28, 27, 26] and first.home_materialised
    assert home not in copies
    await feeds.read_page(account, PageRequest(limit=5))  # read on the tracking connection, kept
    assert home in copies
    before = _hits()
    again = await feeds.read_page(account, PageRequest(limit=5))
    assert again.ids == first.ids and _hits() - before == 1  # the range, no round trip
    older = await feeds.read_page(account, PageRequest(max_id=26, limit=3))  # a cursor page: the range script
    assert older.ids == [25, 24, 23]
    before = _hits()
    assert (await feeds.read_page(account, PageRequest(max_id=26, limit=3))).ids == [25, 24, 23]
    assert _hits() - before == 1, "the script's reply is kept like a range's"

    # The fanout writes a new status into the timeline: the copies go, and the next page has it.
    await writer.lpush(home, feed_member(31))
    await _until(lambda: home not in copies)
    assert (await feeds.read_page(account, PageRequest(limit=5))).ids == [31, 30, 29, 28, 27]
    assert (await feeds.read_page(account, PageRequest(max_id=26, limit=3))).ids == [25, 24, 23]

    # The timeline expires (or is lost): the next read says so, and rebuilds are read around the copies.
    await writer.delete(home)
    await _until(lambda: home not in copies)
    assert not (await feeds.read_page(account, PageRequest(limit=5))).home_materialised
    pipe = writer.pipeline(transaction=False)
    feeds.materialise(pipe, home, [40, 41])
    await pipe.execute()
    before = _hits()
    rebuilt = await feeds.read_page(account, PageRequest(limit=5), fresh=True)
    assert rebuilt.ids == [41, 40] and rebuilt.home_materialised and _hits() == before


async def test_reads_still_push_back_the_expiry_at_most_every_refresh_interval(
        reader: tuple[Redis, int], copies: TrackedCache) -> None:
    writer, account = reader
    home = keys.home_feed(account)
    feeds = Feeds(writer, cap=100, ttl_seconds=TTL, copies=copies, expiry_refresh_seconds=0.5)
    await writer.expire(home, 100)
    await feeds.read_page(account, PageRequest())
    assert await writer.ttl(home) > 900  # the first read refreshes it

    await writer.expire(home, 100)
    for _ in range(3):
        await feeds.read_page(account, PageRequest())
    assert await writer.ttl(home) <= 100  # read within the interval: not again
    await asyncio.sleep(0.6)
    await feeds.read_page(account, PageRequest())
    assert await writer.ttl(home) > 900


async def test_prefetched_reads_ride_along_and_are_kept_too(reader: tuple[Redis, int],
                                                            copies: TrackedCache) -> None:
    writer, account = reader
    cached = keys.large_followees(account)
    await writer.set(cached, b"[1,[]]", ex=60)
    get = resp.get(cached)
    feeds = Feeds(writer, cap=100, ttl_seconds=TTL, copies=copies)
    for _ in range(2):
        read = await feeds.read_page(account, PageRequest(limit=2), prefetch=[(cached, get)])
        assert read.ids == [30, 29] and read.prefetched == [b"[1,[]]"]
    assert cached in copies
    await writer.set(cached, b"[2,[]]", ex=60)  # the graph service drops or the timeline rewrites it
    await _until(lambda: cached not in copies)
    read = await feeds.read_page(account, PageRequest(limit=2), prefetch=[(cached, get)])
    assert read.prefetched == [b"[2,[]]"]
    await writer.delete(cached)

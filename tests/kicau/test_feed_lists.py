"""Home timelines as Redis lists (kicau/feeds.py), on the real Redis, against a plain Python model of what a
timeline must hold: every status pushed to it while it existed, newest first, each once, the newest ``cap``
kept (up to ``cap + slack`` between trims). Pushes come in order, out of order and again (replays); pages with
every combination of cursors must equal the model's; a rebuild merges with what is there."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import AsyncIterator, Iterable

import pytest
from redis.asyncio import Redis

from kicau import keys
from kicau.feeds import _NEWER, Feeds, PageRequest, TimelineWrites, feed_member, status_of, statuses_of
from kicau.resp import Sender

REDIS_PORT = int(os.environ.get("KICAU_REDIS_PORT", "6379"))
EDGES = [1, 9, 10, 99_999_999_999_999, 10**15 - 1, 10**15, 10**15 + 1, 2**53 - 1, 2**53, 2**53 + 1,
         10**18 - 1, 10**18, (1 << 63) - 2, (1 << 63) - 1]


def test_entries_round_trip_and_the_sentinel_is_left_out_of_ranges() -> None:
    rng = random.Random(6)
    for status_id in [*EDGES, *(rng.randrange(1, 1 << 63) for _ in range(1000))]:
        assert status_of(feed_member(status_id)) == status_id
    assert statuses_of([feed_member(5), feed_member(3), keys.FEED_SENTINEL]) == [5, 3]


def test_the_scripts_compare_ids_as_numbers_at_every_length() -> None:
    """Lua's numbers are doubles: ids past 2^53 must still compare exactly, and the sentinel below all."""
    rng = random.Random(7)
    ids = [*EDGES, *(rng.randrange(1, 1 << 63) for _ in range(300)),
           *(10**18 + rng.randrange(10**9) * 10**9 + k for k in (0, 1) for _ in range(50))]
    pairs = [(a, b) for a in ids[:40] for b in ids[:40]] + [(rng.choice(ids), rng.choice(ids)) for _ in range(3000)]
    pairs += [(a, a + 1) for a in ids if a + 1 < 1 << 63] + [(a, 0) for a in ids]
    script = _NEWER + """
local out = {}
for i = 1, #ARGV, 2 do out[#out + 1] = newer(ARGV[i], ARGV[i + 1]) and 1 or 0 end
return out
"""

    async def compare() -> list[int]:
        redis = Redis(port=REDIS_PORT)
        try:
            args = [b"%d" % n for pair in pairs for n in pair]
            return await redis.eval(script, 0, *args)  # type: ignore[no-any-return]
        finally:
            await redis.aclose()

    answers = asyncio.run(compare())
    assert answers == [int(a > b) for a, b in pairs]


CAP, SLACK = 30, 5


class Model:
    """What a timeline must hold: a set of ids, the newest ``cap`` visible once trimmed."""

    def __init__(self) -> None:
        self.ids: set[int] = set()

    def push(self, ids: list[int]) -> None:
        self.ids.update(ids)

    def newest_first(self) -> list[int]:
        return sorted(self.ids, reverse=True)


async def _push(redis: Redis, feeds: Feeds, reader: int, status_ids: list[int]) -> None:
    writes = feeds.writes()
    writes.push([reader], status_ids)
    await _send(redis, writes)


async def _unpush(redis: Redis, feeds: Feeds, reader: int, status_ids: list[int]) -> None:
    writes = feeds.writes()
    writes.unpush([reader], status_ids)
    await _send(redis, writes)


async def _send(redis: Redis, writes: TimelineWrites) -> None:
    async with Sender(redis) as sender:
        await sender.send(*writes.take())
        await sender.finish()


@contextlib.asynccontextmanager
async def _timeline(key: str | None = None) -> AsyncIterator[tuple[Redis, Feeds, int, str]]:
    """Redis, the timelines, a new reader and its home timeline's key (or the timeline ``key``), missing at
    first and deleted after."""
    redis = Redis(port=REDIS_PORT)
    feeds = Feeds(redis, cap=CAP, ttl_seconds=60, trim_slack=SLACK)
    reader = random.randrange(10**12, 10**13)
    key = key or keys.home_feed(reader)
    try:
        await redis.delete(key)
        yield redis, feeds, reader, key
    finally:
        await redis.delete(key)
        await redis.aclose()


async def _materialise(redis: Redis, feeds: Feeds, key: str, status_ids: Iterable[int], *,
                       rebuilt: bool = False) -> int:
    """Write a timeline as a rebuild does (``rebuilt``: one begun with ``begin_rebuild``); the script's reply."""
    pipe = redis.pipeline(transaction=True)
    feeds.materialise(pipe, key, status_ids, rebuilt=rebuilt)
    (written,) = await pipe.execute()
    return int(written)


def _expected_page(entries: list[int], page: PageRequest) -> list[int]:
    """The page as Mastodon defines it, over a newest-first list of ids (``min_id`` wins over ``since_id``)."""
    newer_than = page.min_id if page.min_id is not None else page.since_id
    inside = [i for i in entries
              if (page.max_id is None or i < page.max_id) and (newer_than is None or i > newer_than)]
    if page.min_id is not None:
        return sorted(inside)[:page.limit][::-1]
    return inside[:page.limit]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pushes_in_any_order_and_replays_keep_the_list_exact_and_pages_match_the_model(seed: int) -> None:
    async def scenario() -> None:
        rng = random.Random(seed)
        redis = Redis(port=REDIS_PORT)
        feeds = Feeds(redis, cap=CAP, ttl_seconds=60, trim_slack=SLACK)
        reader = rng.randrange(10**12, 10**13)
        key = keys.home_feed(reader)
        model = Model()
        base = 10**18 + rng.randrange(10**17)
        pushed: list[int] = []
        try:
            await redis.delete(key)
            await _push(redis, feeds, reader, [base])
            assert not await redis.exists(key), "a missing timeline stays missing"
            await _materialise(redis, feeds, key, [])
            assert await redis.lrange(key, 0, -1) == [keys.FEED_SENTINEL]
            for step in range(300):
                kind = rng.random()
                if kind < 0.5 or not pushed:  # newer than everything: the common case (ids may repeat in a batch)
                    batch = [base + step * 1000 + rng.randrange(1000) for _ in range(rng.choice((1, 1, 1, 3)))]
                    if len(batch) == 3:
                        batch.append(batch[1])  # an event delivered twice in one batch (a retried publish)
                elif kind < 0.53:  # a burst newer than everything, more than one LPUSH of the script takes
                    batch = rng.sample(range(base + step * 1000, base + step * 1000 + 1000), 300)
                elif kind < 0.6:  # new statuses with an older one among them
                    batch = [rng.randrange(base, base + step * 1000 + 1), base + step * 1000 + rng.randrange(1000),
                             base + step * 1000 + rng.randrange(1000)]
                elif kind < 0.85:  # out of order: older than the head
                    batch = [rng.randrange(base, base + step * 1000 + 1)]
                else:  # a replay of something pushed before
                    batch = [rng.choice(pushed)]
                await _push(redis, feeds, reader, batch)
                model.push(batch)
                pushed.extend(batch)
                held = await redis.lrange(key, 0, -1)
                assert held[-1] == keys.FEED_SENTINEL, "the sentinel ends the list"
                entries = statuses_of(held)
                assert entries == sorted(set(entries), reverse=True), "newest first, each id once"
                assert len(entries) <= CAP + SLACK
                # Every id the model holds that is newer than the list's oldest entry is in the list: trims
                # only ever cut the oldest.
                assert entries == [i for i in model.newest_first() if i >= entries[-1]]
                if step % 10 == 9:
                    for _ in range(6):
                        around = rng.choice([*entries, base - 1, base + 10**9])
                        page = PageRequest(
                            max_id=around if rng.random() < 0.5 else None,
                            since_id=rng.choice(entries) if rng.random() < 0.3 else None,
                            min_id=rng.choice(entries) if rng.random() < 0.3 else None,
                            limit=rng.choice((1, 5, 20, 40)))
                        read = await feeds.read_page(reader, page, fresh=True)
                        assert read.home_materialised
                        assert read.ids == _expected_page(entries, page), page
        finally:
            await redis.delete(key)
            await redis.aclose()

    asyncio.run(scenario())


def test_a_rebuild_merges_with_what_the_fanout_added_and_keeps_the_cap() -> None:
    async def scenario() -> None:
        async with _timeline() as (redis, feeds, reader, key):
            await _materialise(redis, feeds, key, [])
            await _push(redis, feeds, reader, [5_000, 5_001])  # fanned out while the rebuild read Cassandra
            await _materialise(redis, feeds, key, [*range(4_000, 4_040), 5_000])
            entries = statuses_of(await redis.lrange(key, 0, -1))
            assert entries == [5_001, 5_000, *range(4_039, 4_039 - (CAP - 2), -1)]
            assert 0 < await redis.ttl(key) <= 60
            read = await feeds.read_page(reader, PageRequest(limit=3), fresh=True)
            assert (read.ids, read.home_materialised) == ([5_001, 5_000, 4_039], True)
            covered, newer = await feeds.newest_after(reader, 4_030, limit=100)
            assert covered and newer == [*range(4_031, 4_040), 5_000, 5_001]
            covered, _ = await feeds.newest_after(reader, 10, limit=100)
            assert not covered, "the list was cut to its cap: what came before its oldest entry is unknown"

    asyncio.run(scenario())


def test_a_missing_timeline_reads_as_not_materialised_with_and_without_cursors() -> None:
    async def scenario() -> None:
        redis = Redis(port=REDIS_PORT)
        feeds = Feeds(redis, cap=CAP, ttl_seconds=60)
        reader = random.randrange(10**12, 10**13)
        try:
            for page in (PageRequest(), PageRequest(max_id=10), PageRequest(min_id=10), PageRequest(since_id=1)):
                read = await feeds.read_page(reader, page, fresh=True)
                assert (read.ids, read.home_materialised) == ([], False)
            assert not await feeds.is_materialised(keys.home_feed(reader))
        finally:
            await redis.delete(keys.home_feed(reader))
            await redis.aclose()

    asyncio.run(scenario())


def test_a_timeline_being_rebuilt_keeps_what_the_fanout_pushes_meanwhile_and_reads_as_missing() -> None:
    """The race a rebuild must not lose: the rebuild reads Cassandra, then a status's record lands and the
    fanout pushes it, then the rebuild writes what it read. The push lands in the pending timeline and the
    rebuild's write merges it in."""

    async def scenario() -> None:
        base = 10**17
        async with _timeline() as (redis, feeds, reader, key):
            assert not await feeds.begin_rebuild(key, pending_seconds=20)
            assert await redis.lrange(key, 0, -1) == [keys.FEED_PENDING]
            assert 0 < await redis.ttl(key) <= 20, "a rebuild that dies leaves its pending timeline to expire"
            assert not await feeds.begin_rebuild(key, pending_seconds=20), "a second rebuild finds it pending"
            read_by_the_rebuild = [base + 3, base + 1]
            await _push(redis, feeds, reader, [base + 4])  # its record landed after the rebuild's read
            await _push(redis, feeds, reader, [base + 2])  # out of order: inserted in its place
            assert await redis.lrange(key, 0, -1) == [feed_member(base + 4), feed_member(base + 2), keys.FEED_PENDING]
            # Pending reads as missing, for every kind of page and for the stream's resume.
            assert not await feeds.is_materialised(key)
            pages = PageRequest(), PageRequest(max_id=base + 9), PageRequest(min_id=base), PageRequest(since_id=1)
            for page in pages:
                read = await feeds.read_page(reader, page, fresh=True)
                assert not read.home_materialised, page
                assert not (await feeds.read_list(key, page, fresh=True))[1], page
            covered, _ = await feeds.newest_after(reader, base, limit=100)
            assert not covered
            await _materialise(redis, feeds, key, read_by_the_rebuild)
            assert await redis.lrange(key, 0, -1) == [*map(feed_member, (base + 4, base + 3, base + 2, base + 1)),
                                                      keys.FEED_SENTINEL]
            assert await feeds.is_materialised(key)
            assert await feeds.begin_rebuild(key, pending_seconds=20), "materialised: nothing to rebuild"
            read = await feeds.read_page(reader, PageRequest(limit=2), fresh=True)
            assert (read.ids, read.home_materialised) == ([base + 4, base + 3], True)

    asyncio.run(scenario())


def test_a_pending_timeline_is_not_trimmed_by_the_fanout() -> None:
    """More pushes than the cap while a rebuild reads: the push script leaves the cut to the rebuild, which
    merges them with what it read and cuts to the cap with the sentinel at the end."""

    async def scenario() -> None:
        base = 10**17
        async with _timeline() as (redis, feeds, reader, key):
            await feeds.begin_rebuild(key, pending_seconds=20)
            pushed = [base + 100 + i for i in range(CAP + SLACK + 10)]
            for status_id in pushed:
                await _push(redis, feeds, reader, [status_id])
            held = await redis.lrange(key, 0, -1)
            assert held[-1] == keys.FEED_PENDING and statuses_of(held) == pushed[::-1]
            await _materialise(redis, feeds, key, [base + 1, base])
            held = await redis.lrange(key, 0, -1)
            assert held[-1] == keys.FEED_SENTINEL and statuses_of(held) == pushed[::-1][:CAP]

    asyncio.run(scenario())


def test_a_removal_while_a_timeline_is_rebuilt_makes_the_rebuild_read_again() -> None:
    """An unfollow (or a block, or a delete) reaches the fanout after Cassandra changed; a rebuild that read
    Cassandra before that would write the removed statuses back. The removal drops the pending timeline instead,
    and the rebuild's write then writes nothing and says so (-1); a materialised timeline just loses the ids."""

    async def scenario() -> None:
        base = 10**17
        async with _timeline() as (redis, feeds, reader, key):
            assert not await feeds.begin_rebuild(key, pending_seconds=20)
            await _push(redis, feeds, reader, [base + 5])
            read_before_the_unfollow = [base + 3, base + 2, base + 1]  # base + 2: the former followee's
            await _unpush(redis, feeds, reader, [base + 2])
            assert not await redis.exists(key), "the pending timeline is dropped"
            assert await _materialise(redis, feeds, key, read_before_the_unfollow, rebuilt=True) == -1
            assert not await redis.exists(key), "and nothing is written back"
            # The rebuild reads again, after the change: it no longer finds base + 2.
            assert not await feeds.begin_rebuild(key, pending_seconds=20)
            assert await _materialise(redis, feeds, key, [base + 5, base + 3, base + 1], rebuilt=True) == 3
            assert statuses_of(await redis.lrange(key, 0, -1)) == [base + 5, base + 3, base + 1]
            await _unpush(redis, feeds, reader, [base + 3])
            assert await redis.lrange(key, 0, -1) == [feed_member(base + 5), feed_member(base + 1),
                                                      keys.FEED_SENTINEL]

    asyncio.run(scenario())


def test_a_rebuild_writes_nothing_into_a_timeline_deleted_while_it_read() -> None:
    """A change of a list's members deletes the list's timeline, pending or not; a rebuild under way must not
    create it again from the members it read before. A plain ``materialise`` (no rebuild) still creates one."""

    async def scenario() -> None:
        base = 10**17
        async with _timeline(keys.list_feed(random.randrange(10**12, 10**13))) as (redis, feeds, _, key):
            assert not await feeds.begin_rebuild(key, pending_seconds=20)
            await redis.delete(key)  # the list's members changed
            assert await _materialise(redis, feeds, key, [base + 1], rebuilt=True) == -1
            assert not await redis.exists(key)
            assert await _materialise(redis, feeds, key, [base + 1]) == 1
            assert await feeds.is_materialised(key)

    asyncio.run(scenario())

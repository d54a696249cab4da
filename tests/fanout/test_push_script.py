"""The fanout's timeline push script (kicau/feeds.py) on the real Redis: it writes only into materialised
timelines, keeps the sentinel, and trims a timeline back to the cap once it passes cap + slack."""

from __future__ import annotations

import asyncio
import os
import random

from redis.asyncio import Redis

from kicau import keys
from kicau.feeds import Feeds, feed_member, status_of
from kicau.resp import Sender

REDIS_PORT = int(os.environ.get("KICAU_REDIS_PORT", "6379"))
CAP, SLACK = 10, 3


async def push(redis: Redis, feeds: Feeds, readers: list[int], status_ids: list[int]) -> None:
    writes = feeds.writes()
    writes.push(readers, status_ids)
    async with Sender(redis) as sender:
        await sender.send(*writes.take())
        await sender.finish()


def test_push_writes_only_materialised_timelines_and_trims_to_the_cap() -> None:
    async def scenario() -> None:
        redis = Redis(port=REDIS_PORT)
        feeds = Feeds(redis, cap=CAP, ttl_seconds=60, trim_slack=SLACK)
        base = random.randrange(10**12, 10**13)
        present, absent = base, base + 1
        timeline = keys.home_feed(present)
        try:
            await redis.zadd(timeline, {keys.FEED_SENTINEL: 0})
            await push(redis, feeds, [present, absent], [1000])
            assert not await redis.exists(keys.home_feed(absent)), "an absent timeline must stay absent"
            assert await redis.zrange(timeline, 0, -1) == [keys.FEED_SENTINEL, feed_member(1000)]

            sizes = []
            for status_id in range(1001, 1040):
                await push(redis, feeds, [present], [status_id])
                sizes.append(await redis.zcard(timeline) - 1)  # entries, sentinel excluded
            # Grows to cap + slack, then is cut back to the cap: never beyond the threshold.
            assert max(sizes) == CAP + SLACK
            assert min(sizes[CAP:]) == CAP
            members = await redis.zrange(timeline, 0, -1)
            assert members[0] == keys.FEED_SENTINEL
            kept = [status_of(m) for m in members[1:] if isinstance(m, bytes)]
            # Newest first after the sentinel; the oldest were cut from the tail.
            assert kept == list(range(1039, 1039 - len(kept), -1)), "the newest statuses are the ones kept"

            # A run of several statuses in one call obeys the same bound.
            await push(redis, feeds, [present], list(range(2000, 2000 + 2 * SLACK)))
            assert CAP <= await redis.zcard(timeline) - 1 <= CAP + SLACK
            newest = (await redis.zrange(timeline, 1, 1))[0]
            assert isinstance(newest, bytes) and status_of(newest) == 2000 + 2 * SLACK - 1
        finally:
            await redis.delete(timeline, keys.home_feed(absent))
            await redis.aclose()

    asyncio.run(scenario())

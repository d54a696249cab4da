"""The fanout's timeline push script (kicau/feeds.py) on the real Redis: it writes only into materialised
timelines, keeps the sentinel at the end, and trims a timeline back to the cap once it passes cap + slack.
Pushes out of order and replays are in tests/kicau/test_feed_lists.py."""

from __future__ import annotations

import asyncio
import os
import random

from redis.asyncio import Redis

from kicau import keys
from kicau.feeds import MAX_KEYS_PER_CALL, Feeds, calls_must_stay_in_one_slot, feed_member, status_of
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
            await redis.rpush(timeline, keys.FEED_SENTINEL)
            await push(redis, feeds, [present, absent], [1000])
            assert not await redis.exists(keys.home_feed(absent)), "an absent timeline must stay absent"
            assert await redis.lrange(timeline, 0, -1) == [feed_member(1000), keys.FEED_SENTINEL]

            sizes = []
            for status_id in range(1001, 1040):
                await push(redis, feeds, [present], [status_id])
                sizes.append(await redis.llen(timeline) - 1)  # entries, sentinel excluded
            # Grows to cap + slack, then is cut back to the cap: never beyond the threshold.
            assert max(sizes) == CAP + SLACK
            assert min(sizes[CAP:]) == CAP
            members = await redis.lrange(timeline, 0, -1)
            assert members[-1] == keys.FEED_SENTINEL
            kept = [status_of(m) for m in members[:-1] if isinstance(m, bytes)]
            # Newest first, the sentinel last; the oldest were cut from the tail.
            assert kept == list(range(1039, 1039 - len(kept), -1)), "the newest statuses are the ones kept"

            # A run of several statuses in one call obeys the same bound.
            await push(redis, feeds, [present], list(range(2000, 2000 + 2 * SLACK)))
            assert CAP <= await redis.llen(timeline) - 1 <= CAP + SLACK
            newest = await redis.lindex(timeline, 0)
            assert isinstance(newest, bytes) and status_of(newest) == 2000 + 2 * SLACK - 1
        finally:
            await redis.delete(timeline, keys.home_feed(absent))
            await redis.aclose()

    asyncio.run(scenario())


def test_a_single_node_takes_timelines_of_every_bucket_in_one_call() -> None:
    """On a single node (what the stack runs) a script call packs timelines of any buckets: 700 followers go
    out in 3 calls instead of one call per bucket (~500 here), with the same outcome: every materialised
    timeline gets the status, no absent one is created, and the calls report 600 timelines written."""

    async def scenario() -> None:
        redis = Redis(port=REDIS_PORT)
        assert not await calls_must_stay_in_one_slot(redis), "the stack's Redis is a single node"
        base = random.randrange(10**12, 10**13)
        present = [base + 2 * i for i in range(600)]
        absent = [base + 2 * i + 1 for i in range(100)]
        readers = present + absent
        buckets = {keys.home_bucket(reader) for reader in readers}
        try:
            pipe = redis.pipeline(transaction=False)
            for reader in present:
                pipe.rpush(keys.home_feed(reader), keys.FEED_SENTINEL)
            await pipe.execute()
            for one_slot, status_id in ((True, 1000), (False, 1001)):
                writes = Feeds(redis, cap=CAP, ttl_seconds=60, one_slot_per_call=one_slot).writes()
                writes.push(readers, [status_id])
                chunks, replies = writes.take()
                calls = replies - 2  # after the two SCRIPT LOADs
                assert calls == (len(buckets) if one_slot else -(-len(readers) // MAX_KEYS_PER_CALL))
                async with Sender(redis) as sender:
                    await sender.send(chunks, replies)
                    written = (await sender.finish())[2:]
                assert sum(written) == len(present)
            pipe = redis.pipeline(transaction=False)
            for reader in readers:
                pipe.lrange(keys.home_feed(reader), 0, -1)
            timelines = await pipe.execute()
            assert timelines[:len(present)] == [[feed_member(1001), feed_member(1000), keys.FEED_SENTINEL]] * 600
            assert timelines[len(present):] == [[]] * len(absent), "an absent timeline must stay absent"
        finally:
            await redis.delete(*(keys.home_feed(reader) for reader in readers))
            await redis.aclose()

    asyncio.run(scenario())


def test_a_redis_that_refuses_info_is_written_one_slot_per_call() -> None:
    """Some managed Redis services disable INFO: the fanout then keeps each call inside one slot, which is
    correct on a single node and on Cluster alike (an ACL user without INFO stands in for such a service)."""

    async def scenario() -> None:
        admin = Redis(port=REDIS_PORT)
        user, password = f"kicau-test-noinfo-{random.randrange(10**9)}", "pw"
        await admin.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
                                commands=["+@all", "-info"])
        limited = Redis(port=REDIS_PORT, username=user, password=password)
        try:
            assert await calls_must_stay_in_one_slot(limited)
            assert not await calls_must_stay_in_one_slot(admin)
        finally:
            await limited.aclose()
            await admin.acl_deluser(user)
            await admin.aclose()

    asyncio.run(scenario())

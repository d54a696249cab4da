"""Later rounds of failed pushes (services/push/later.py): which round follows a failure and when, and the Redis
sorted set they wait in (the development stack's Redis, under a key of the test's own): due pushes are leased as
they are taken, so a second taker finds none until the lease runs out, and removed once done."""

from __future__ import annotations

import os
import time
import uuid

import msgspec
from redis.asyncio import Redis

from kicau.web_push import PushNotice
from services.push.later import LEASE_SECONDS, LaterPush, LaterPushes, due_after

REDIS_PORT = int(os.environ.get("KICAU_REDIS_PORT", "6379"))


NOTICE = PushNotice(account_id=7, notification_id=11, type="mention", from_account_id=9, status_id=13)


def test_each_round_comes_four_times_as_long_after_the_last_and_only_attempts_spend_them() -> None:
    assert [due_after(r, 60) for r in (1, 2, 3, 4, 5)] == [60, 240, 960, 3840, 15360]
    later = LaterPushes(Redis(port=REDIS_PORT), rounds=2, first_seconds=60)
    assert later.after_failure(NOTICE, 5, 0, attempted=True) == (LaterPush(NOTICE, 5, 1), 60)
    assert later.after_failure(NOTICE, 5, 1, attempted=True) == (LaterPush(NOTICE, 5, 2), 240)
    assert later.after_failure(NOTICE, 5, 2, attempted=True) is None  # the last round failed: given up
    # Its push service given up on: the round is not spent, and comes again once it is not (or soon after).
    assert later.after_failure(NOTICE, 5, 2, attempted=False) == (LaterPush(NOTICE, 5, 2), 60)
    assert later.after_failure(NOTICE, 5, 2, attempted=False, paused=170.5) == (LaterPush(NOTICE, 5, 2), 170.5)
    assert later.after_failure(NOTICE, 5, 0, attempted=False) == (LaterPush(NOTICE, 5, 1), 60)
    assert LaterPushes(Redis(port=REDIS_PORT), rounds=0, first_seconds=60).after_failure(
        NOTICE, 5, 0, attempted=True) is None


async def test_due_pushes_are_leased_to_one_taker_then_removed() -> None:
    redis = Redis(port=REDIS_PORT)
    key = f"kicau:test:push-later:{uuid.uuid4().hex}"
    later = LaterPushes(redis, rounds=5, first_seconds=60, key=key)
    try:
        now = time.time()
        soon, far = LaterPush(NOTICE, 1, 1), LaterPush(NOTICE, 2, 3)
        await later.keep([(soon, 60), (far, 960)], now=now)
        assert await later.waiting() == 2
        assert await later.take_due(now=now + 59) == []
        taken = await later.take_due(now=now + 61)
        assert [push for _, push in taken] == [soon]
        # Leased: another taker (another process) finds nothing until the lease runs out.
        assert await later.take_due(now=now + 62) == []
        assert [push for _, push in await later.take_due(now=now + 61 + LEASE_SECONDS + 1)] == [soon]
        # Kept again as it was taken (its round not spent): the same member, due later, which the taker's removal
        # of what it took leaves waiting; the same push kept twice (a replayed batch) is one member.
        kept = await later.keep([(soon, 60), (soon, 60)], now=now + 62)
        await later.done([member for member, _ in taken], kept)
        assert await later.waiting() == 2
        assert await later.take_due(now=now + 121) == []
        assert [push for _, push in await later.take_due(now=now + 123)] == [soon]
        # Taken and not kept again (delivered, or its next round is another member): removed.
        await later.done([member for member, _ in taken])
        assert await later.waiting() == 1
        # A member kept before pushes were one member each (it carries when it was kept) is read all the same.
        await redis.zadd(key, {msgspec.json.encode(msgspec.structs.replace(far, kept_ns=12345)): now})
        assert [push for _, push in await later.take_due(now=now + 1)] == [msgspec.structs.replace(far, kept_ns=12345)]
        # A member that cannot be read is handed back as such, to be removed.
        await redis.zadd(key, {b"not a push": now})
        assert (b"not a push", None) in await later.take_due(now=now + 1)
    finally:
        await redis.delete(key)
        await redis.aclose()

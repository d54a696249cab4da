"""The version protocol of kicau/newest_ids.py on the stack's real Redis, with a list in memory standing in for
Cassandra's statuses_by_account: a list read before a change is never served after the change's delete, also
when the change lands between a reader's claim and its read; copies of the version key (the tracked cache)
cost no round trip and die with the delete."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from kicau import keys, resp
from kicau.newest_ids import KEPT, NewestIds, forget_command
from kicau.tracked_cache import TrackedCache
from stack.services import service_env

ACCOUNT = 987_654_321_000


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(service_env()["KICAU_REDIS_URL"])
    await client.delete(keys.account_statuses_version(ACCOUNT))
    yield client
    await client.delete(keys.account_statuses_version(ACCOUNT))
    await client.aclose()


class Store:
    """An account's list, newest first, and how often it was read."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.reads = 0
        self.before_read: Any = None

    async def read(self, account_id: int, limit: int) -> list[int]:
        assert account_id == ACCOUNT and limit == KEPT
        self.reads += 1
        if self.before_read is not None:
            await self.before_read()
        return list(self.ids[:limit])

    async def write(self, redis: aioredis.Redis, status_id: int) -> None:
        """What the post service does: the list first, then the version's delete."""
        self.ids.insert(0, status_id)
        await resp.round_trip(redis, [forget_command(ACCOUNT)])


async def test_kept_ids_are_served_until_the_list_changes(redis: aioredis.Redis) -> None:
    store = Store()
    newest = NewestIds(redis, store.read)
    await store.write(redis, 1)
    assert await newest.newest(ACCOUNT, 20) == [1]
    assert await newest.newest(ACCOUNT, 20) == [1]
    assert store.reads == 1
    await store.write(redis, 2)
    assert await newest.newest(ACCOUNT, 20) == [2, 1]
    assert await newest.newest(ACCOUNT, 1) == [2]
    assert store.reads == 2
    with pytest.raises(ValueError):
        await newest.newest(ACCOUNT, KEPT + 1)


async def test_a_change_between_the_claim_and_the_read_is_not_kept_for_later(redis: aioredis.Redis) -> None:
    """The reader claims a token; the writer changes the list and deletes the version before the reader's
    Cassandra read. The reader serves what it read, but keeps it under a dead token: the next read reads again."""
    store = Store()
    newest = NewestIds(redis, store.read)
    await store.write(redis, 1)

    async def writer_slips_in() -> None:
        store.before_read = None
        await store.write(redis, 2)

    store.before_read = writer_slips_in
    assert await newest.newest(ACCOUNT, 20) == [2, 1]
    assert await newest.newest(ACCOUNT, 20) == [2, 1]
    assert store.reads == 2
    assert await newest.newest(ACCOUNT, 20) == [2, 1]
    assert store.reads == 2


async def test_a_stale_read_that_finishes_after_the_delete_is_never_served(redis: aioredis.Redis) -> None:
    store = Store()
    newest = NewestIds(redis, store.read)
    await store.write(redis, 1)
    release = asyncio.Event()
    seen: list[int] = []

    async def slow_read() -> None:
        seen.extend(store.ids)  # the old list, read before the change
        store.before_read = None
        await release.wait()

    store.before_read = slow_read
    reading = asyncio.create_task(newest.newest(ACCOUNT, 20))
    await asyncio.sleep(0.05)
    await store.write(redis, 2)  # the change lands and its delete is answered while the read is out
    release.set()
    await reading
    assert seen == [1]
    assert await newest.newest(ACCOUNT, 20) == [2, 1]


async def test_the_tracked_copy_of_the_version_costs_no_round_trip_and_dies_with_the_delete(
        redis: aioredis.Redis) -> None:
    store = Store()
    copies = TrackedCache(redis, max_entries=100)
    try:
        newest = NewestIds(redis, store.read, copies)
        await store.write(redis, 1)
        assert await newest.newest(ACCOUNT, 20) == [1]
        assert await newest.newest(ACCOUNT, 20) == [1]  # the version now read (and held) through the copies
        for _ in range(20):
            assert await newest.newest(ACCOUNT, 20) == [1]
        assert store.reads == 1
        await store.write(redis, 2)
        # The delete's push reaches the tracking connection a moment after the writer's answer.
        for _ in range(50):
            if await newest.newest(ACCOUNT, 20) == [2, 1]:
                break
            await asyncio.sleep(0.01)
        assert await newest.newest(ACCOUNT, 20) == [2, 1]
        assert store.reads == 2
    finally:
        copies.close()


async def test_the_version_key_expires_and_the_least_recently_read_account_goes_first(
        redis: aioredis.Redis) -> None:
    store = Store()
    other = ACCOUNT + 1

    async def read(account_id: int, limit: int) -> list[int]:
        store.reads += 1
        return []

    newest = NewestIds(redis, read, max_accounts=1)
    try:
        await newest.newest(ACCOUNT, 20)
        ttl = await redis.ttl(keys.account_statuses_version(ACCOUNT))
        assert 86_000 < ttl <= 86_400
        await newest.newest(other, 20)
        await newest.newest(other, 20)
        assert (len(newest), store.reads) == (1, 2)
        await newest.newest(ACCOUNT, 20)  # dropped to make room: read again
        assert store.reads == 3
    finally:
        await redis.delete(keys.account_statuses_version(other))

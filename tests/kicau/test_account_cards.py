"""A writer's card update (kicau/account_cards.py) on the real Redis: the cached card is replaced by the
writer's version only if nobody changed it since the writer read it (keeping its expiry), else dropped; and a
concurrent burst of posts by one author leaves either the exact count or no card at all, never a wrong one."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
import pytest
from redis.asyncio import Redis

from kicau import keys, resp
from kicau.account_cards import (
    CARD_TTL_JITTER_SECONDS,
    CARD_TTL_SECONDS,
    AccountCards,
    card_ttl_seconds,
    with_statuses_count_moved,
)

REDIS_PORT = int(os.environ.get("KICAU_REDIS_PORT", "6379"))


def card(count: int) -> bytes:
    return msgspec.json.encode({"id": "1", "username": "someone", "statuses_count": count})


@dataclass
class CachedCard:
    redis: Redis
    account: int
    key: str

    async def replace(self, read: bytes, written: bytes) -> None:
        await resp.round_trip(self.redis, [AccountCards.replace_if_unchanged_command(self.account, read, written)],
                              attempts=1)


@pytest.fixture
async def cached() -> AsyncIterator[CachedCard]:
    """A fresh account's card key on the real Redis, removed afterwards."""
    redis = Redis(port=REDIS_PORT)
    account = random.randrange(10**12, 10**13)
    key = keys.account_cache(account)
    try:
        yield CachedCard(redis, account, key)
    finally:
        await redis.delete(key, keys.account_cache_epoch(account))
        await redis.aclose()


async def test_the_card_is_replaced_only_if_unchanged_and_keeps_its_expiry(cached: CachedCard) -> None:
    redis, key = cached.redis, cached.key
    await redis.set(key, card(3), ex=100)
    await cached.replace(card(3), card(4))
    assert await redis.get(key) == card(4)
    assert 90 <= await redis.ttl(key) <= 100
    # Someone changed it meanwhile (the writer read 3, the cache has 4 now): dropped, not overwritten.
    await cached.replace(card(3), card(4))
    assert await redis.get(key) is None
    # No card cached: nothing is created.
    await cached.replace(card(3), card(4))
    assert await redis.get(key) is None
    await redis.set(key, card(9), ex=100)
    await resp.round_trip(redis, [AccountCards.forget_command(cached.account)], attempts=1)
    assert await redis.get(key) is None
    # Each of the four moved the card's epoch, which outlives any card.
    epoch = keys.account_cache_epoch(cached.account)
    assert await redis.get(epoch) == b"4" and CARD_TTL_SECONDS < await redis.ttl(epoch) <= 2 * CARD_TTL_SECONDS


async def test_concurrent_writers_leave_the_exact_count_or_no_card(cached: CachedCard) -> None:
    redis, key = cached.redis, cached.key
    await redis.set(key, card(0), ex=100)

    async def post() -> None:
        read = await redis.get(key)
        await asyncio.sleep(random.random() / 100)
        if isinstance(read, bytes):
            await cached.replace(read, with_statuses_count_moved(read, +1))

    await asyncio.gather(*(post() for _ in range(50)))
    left = await redis.get(key)
    assert left is None or msgspec.json.decode(left)["statuses_count"] == 50


def test_cards_loaded_together_do_not_expire_together() -> None:
    ttls = [card_ttl_seconds() for _ in range(2_000)]
    assert all(CARD_TTL_SECONDS - CARD_TTL_JITTER_SECONDS < ttl <= CARD_TTL_SECONDS for ttl in ttls)
    # Spread over the whole window, not bunched: every 10-second slice of it holds some.
    assert {(CARD_TTL_SECONDS - ttl) // 10 for ttl in ttls} == set(range(CARD_TTL_JITTER_SECONDS // 10))

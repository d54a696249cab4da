"""Card misses (kicau/account_cards.py) on the real engines: concurrent misses of one card in a process share one
load from Cassandra; a caller that gives up does not take the load from the others; a miss after the load is
done loads again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
from redis.asyncio import Redis

from kicau import keys
from kicau.account_cards import AccountCards
from kicau.settings import CommonSettings
from stack.services import service_env
from tests.conftest import User


async def test_concurrent_misses_of_one_card_share_one_load(make_user: Callable[..., User], stack_cassandra: Any,
                                                            stack_redis: Any) -> None:
    user = make_user("cardload")
    account = int(user.id)
    redis = Redis.from_url(service_env()["KICAU_REDIS_URL"])
    cards = AccountCards(redis, stack_cassandra, CommonSettings().public_url)
    loads = 0
    gate = asyncio.Event()
    load = cards.entity

    async def counted(account_id: int, *, replace: bool = True, for_others: bool = False) -> dict[str, Any] | None:
        # Each load still reads the real Cassandra; it waits for the gate so that every caller misses meanwhile.
        nonlocal loads
        loads += 1
        assert replace is False  # a miss's load never replaces a card put meanwhile
        await gate.wait()
        return await load(account_id, replace=replace, for_others=for_others)

    cards.entity = counted  # type: ignore[method-assign]
    try:
        stack_redis.delete(keys.account_cache(account))
        callers = [asyncio.ensure_future(cards.card(account)) for _ in range(20)]
        await asyncio.sleep(0.2)
        callers[0].cancel()  # gives up: the others still get the card
        gate.set()
        found = await asyncio.gather(*callers[1:])
        assert loads == 1
        assert len(set(found)) == 1 and found[0] is not None
        assert msgspec.json.decode(found[0])["username"] == user.username
        assert stack_redis.get(keys.account_cache(account)) == found[0]

        stack_redis.delete(keys.account_cache(account))
        assert await cards.card(account) == found[0]
        assert loads == 2
    finally:
        await redis.aclose()


async def test_a_load_begun_before_a_writers_change_caches_nothing(make_user: Callable[..., User],
                                                                   stack_cassandra: Any, stack_redis: Any) -> None:
    """The race the card's epoch closes: a miss reads the counts, a writer changes them in Cassandra and drops the
    card, and the miss would then cache the counts from before (a follower short until the card expired)."""
    user = make_user("cardrace")
    account = int(user.id)
    redis = Redis.from_url(service_env()["KICAU_REDIS_URL"])
    cards = AccountCards(redis, stack_cassandra, CommonSettings().public_url)
    read_counts, writer_done = asyncio.Event(), asyncio.Event()
    load_rows = cards.load_rows

    async def slow_rows(account_id: int) -> Any:
        found = await load_rows(account_id)
        read_counts.set()
        await writer_done.wait()  # the writer's change lands after this load read the counts
        return found

    cards.load_rows = slow_rows  # type: ignore[method-assign]
    try:
        stack_redis.delete(keys.account_cache(account))
        miss = asyncio.ensure_future(cards.card(account))
        await read_counts.wait()
        await cards.forget(account)  # what a writer does once its change is in Cassandra
        writer_done.set()
        assert await miss is not None  # the caller still gets the card it loaded
        assert stack_redis.get(keys.account_cache(account)) is None  # but it was not cached
        cards.load_rows = load_rows  # type: ignore[method-assign]
        again = await cards.card(account)  # a load begun after the change caches its card
        assert stack_redis.get(keys.account_cache(account)) == again
    finally:
        await redis.aclose()

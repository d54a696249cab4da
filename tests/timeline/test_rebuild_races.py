"""A timeline rebuilt while what it is made of changes (services/timeline/service.py ``_rebuild_once``): the
rebuild reads Cassandra, then writes Redis; a change that lands between the two must not be undone by the write.
The timeline service is built in this process over the stack's Redis and Cassandra, and its read is made to
let the change overtake it (through the gateway, on the running stack); the timeline it then writes must reflect
the change, as must the pages the API serves."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import redis
from redis.asyncio import Redis

from kicau import keys
from kicau.feeds import statuses_of
from kicau.settings import CommonSettings
from services.timeline.app import build_service
from services.timeline.service import TimelineService
from services.timeline.settings import TimelineSettings
from stack.services import service_env
from tests.conftest import User, eventually
from tests.graph.test_lists import add, follow, make_list
from tests.timeline.test_home_invariant import home_ids
from tests.timeline.test_list_timelines import list_headed_by, list_ids
from tests.timeline.test_visibility import post

REDIS_PORT = int(os.environ.get("KICAU_REDIS_PORT", "6379"))


@pytest.fixture
async def timelines(stack_cassandra: Any) -> AsyncIterator[TimelineService]:
    env = service_env()
    common = CommonSettings(cassandra_hosts=env["KICAU_CASSANDRA_HOSTS"],
                            cassandra_port=int(env["KICAU_CASSANDRA_PORT"]),
                            cassandra_keyspace=env["KICAU_CASSANDRA_KEYSPACE"])
    client = Redis(port=REDIS_PORT)
    try:
        yield build_service(common, TimelineSettings(), client, stack_cassandra, copies=None)
    finally:
        await client.aclose()


async def test_a_list_rebuild_overtaken_by_a_change_of_members_reads_them_again(
    http: httpx.Client, gateway_url: str, make_user: Callable[..., User], stack_redis: redis.Redis,
    timelines: TimelineService, monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner, stays, leaves = make_user("rr_o"), make_user("rr_s"), make_user("rr_l")
    follow(http, owner, stays, leaves)
    list_id = make_list(http, owner, "Racing")["id"]
    assert add(http, owner, list_id, stays, leaves).status_code == 200
    kept, removed = post(http, stays, "from the member who stays"), post(http, leaves, "from the one who leaves")
    key = keys.list_feed(int(list_id))
    stack_redis.delete(key)  # expired: the next read rebuilds it
    found = await timelines._own_list(int(owner.id), int(list_id))
    members = timelines.lists.members
    reads: list[list[int]] = []
    client = httpx.AsyncClient(base_url=gateway_url, timeout=30)

    async def members_then_changed(wanted: int) -> list[int]:
        read = await members(wanted)
        reads.append(read)
        if len(reads) == 1:  # read before the change: both members
            answer = await client.request("DELETE", f"/api/v1/lists/{list_id}/accounts", headers=owner.auth,
                                          params={"account_ids[]": leaves.id})
            assert answer.status_code == 200, answer.text
        return read

    monkeypatch.setattr(timelines.lists, "members", members_then_changed)
    try:
        await timelines.rebuild_list(found)
    finally:
        await client.aclose()
    assert [sorted(read) for read in reads] == [sorted([int(stays.id), int(leaves.id)]), [int(stays.id)]]
    assert statuses_of(stack_redis.lrange(key, 0, -1)) == [int(kept)]  # not the removed member's status
    assert list_ids(http, owner, list_id) == [kept]
    assert removed not in list_headed_by(http, owner, list_id, kept)


async def test_a_home_rebuild_overtaken_by_an_unfollow_reads_the_follows_again(
    http: httpx.Client, gateway_url: str, make_user: Callable[..., User], stack_redis: redis.Redis,
    timelines: TimelineService, monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader, stays, leaves = make_user("rh_r"), make_user("rh_s"), make_user("rh_l")
    follow(http, reader, stays, leaves)
    kept = post(http, stays, "from the followee who stays")
    post(http, leaves, "from the one unfollowed")
    key = keys.home_feed(int(reader.id))
    stack_redis.delete(key)  # expired: the next read rebuilds it
    followees = timelines.store.followees
    reads: list[list[int]] = []
    client = httpx.AsyncClient(base_url=gateway_url, timeout=30)

    async def followees_then_unfollowed(account_id: int) -> list[int]:
        read = list(await followees(account_id))
        reads.append(read)
        if len(reads) == 1:  # read before the unfollow: both
            answer = await client.post(f"/api/v1/accounts/{leaves.id}/unfollow", headers=reader.auth)
            assert answer.status_code == 200, answer.text
            # The fanout removes the unfollowed account's statuses from the reader's timeline: here, the
            # pending one the rebuild made; that removal is what tells the rebuild to read again.
            assert eventually(lambda: not stack_redis.exists(key)), "the pending timeline was not dropped"
        return read

    monkeypatch.setattr(timelines.store, "followees", followees_then_unfollowed)
    try:
        await timelines.rebuild_home(int(reader.id))
    finally:
        await client.aclose()
    assert len(reads) == 2 and int(leaves.id) in reads[0] and int(leaves.id) not in reads[1]
    assert statuses_of(stack_redis.lrange(key, 0, -1)) == [int(kept)]
    assert home_ids(http, reader) == [kept]

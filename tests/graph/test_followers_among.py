"""``GraphStore.followers_among`` on the real Cassandra: which of a gateway's connected accounts follow a large
account, asked in chunks of 100 that run concurrently. Every follower among the candidates is found, once, and
nobody else, whatever chunk it falls in."""

from __future__ import annotations

import random
import secrets
from typing import Any

import pytest
from cassandra import ConsistencyLevel

from kicau import clients
from services.graph.store import GraphStore


@pytest.fixture(scope="module")
def session(stack_cassandra: Any) -> Any:
    return stack_cassandra


async def test_followers_among_many_candidates(session: Any) -> None:
    rng = random.Random(secrets.randbits(32))
    author = (1 << 62) + secrets.randbits(40)  # a fresh partition: no earlier run wrote it
    followers = {author + 1 + i for i in rng.sample(range(10_000), 370)}
    strangers = {author + 20_000 + i for i in rng.sample(range(10_000), 260)}
    insert = session.prepare(
        "INSERT INTO followers (followee_id, follower_id, created_at) VALUES (?, ?, toTimestamp(now()))")
    insert.consistency_level = ConsistencyLevel.ONE
    for follower in followers:
        await clients.execute(session, insert, (author, follower))
    store = GraphStore(session, ConsistencyLevel.ONE)
    candidates = [*followers, *strangers]
    rng.shuffle(candidates)
    try:
        found = await store.followers_among(author, candidates)  # 630 candidates: 7 chunks, 8 at a time
        assert sorted(found) == sorted(followers)
        assert await store.followers_among(author, sorted(strangers)) == []
        assert await store.followers_among(author, []) == []
    finally:
        await clients.execute(session, "DELETE FROM followers WHERE followee_id = %s", (author,))

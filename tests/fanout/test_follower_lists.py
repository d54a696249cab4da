"""The fanout's in-memory follower lists (kicau/follower_lists.py) against the real Redis, and end to end: a
follow or unfollow made while the fanout holds a copy of the followee's list takes effect on the next status."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import httpx
import redis as sync_redis
from redis.asyncio import Redis

from kicau import follower_lists, keys
from kicau.follow_options import DEFAULT, FollowOptions
from kicau.follower_lists import FollowerLists
from kicau.metrics import FANOUT_FOLLOWER_READ_SECONDS, FANOUT_FOLLOWERS_READ
from tests.conftest import User, eventually
from tests.timeline.test_home_invariant import home_ids

REDIS_PORT = int(os.environ.get("KICAU_REDIS_PORT", "6379"))
Key = TypeVar("Key", bound=Hashable)


def _read_metrics() -> tuple[float, float]:
    """(Cassandra read rounds timed, follower ids read) so far, from this process's registry."""
    rounds = next(s.value for m in FANOUT_FOLLOWER_READ_SECONDS.collect() for s in m.samples
                  if s.name.endswith("_count"))
    ids = next(s.value for m in FANOUT_FOLLOWERS_READ.collect() for s in m.samples if s.name.endswith("_total"))
    return rounds, ids


class CountingReads(Generic[Key]):
    """Stands in for the Cassandra read only to count calls; the lists it returns are the test's data (keyed by
    account id, or by hashtag)."""

    def __init__(self, lists: dict[Key, list[int]]) -> None:
        self.lists = lists
        self.calls: list[Key] = []

    async def __call__(self, followed: Key) -> list[int]:
        self.calls.append(followed)
        return list(self.lists[followed])


def test_copies_are_used_until_the_version_changes() -> None:
    async def scenario() -> None:
        redis = Redis(port=REDIS_PORT)
        base = random.randrange(10**12, 10**13)
        a, b = base, base + 1
        reads = CountingReads({a: [1, 2, 3], b: [4]})
        lists = FollowerLists(redis, reads)
        try:
            rounds, ids = _read_metrics()
            assert await lists.followers([a, b]) == {a: [1, 2, 3], b: [4]}
            assert sorted(reads.calls) == [a, b]
            # Both lists were read in one timed round: 4 ids.
            assert _read_metrics() == (rounds + 1, ids + 4)
            # Unchanged: served from memory, one Redis round trip, no read (and no read timed).
            assert await lists.followers([a, b]) == {a: [1, 2, 3], b: [4]}
            assert len(reads.calls) == 2
            assert _read_metrics() == (rounds + 1, ids + 4)
            # A change (the graph service forgets the version): only that list is read again.
            reads.lists[a] = [1, 2, 3, 9]
            await follower_lists.forget(redis, a)
            assert await lists.followers([a, b]) == {a: [1, 2, 3, 9], b: [4]}
            assert reads.calls[2:] == [a]
            # Redis losing the key (a flush, a restart without data) invalidates the copy the same way.
            reads.lists[b] = [5]
            await redis.delete(keys.followers_version(b))
            assert await lists.followers([b]) == {b: [5]}
            assert reads.calls[3:] == [b]
            # Another fanout worker's copy follows the same versions: it reads once, then shares the token.
            other = FollowerLists(redis, reads)
            assert await other.followers([a]) == {a: [1, 2, 3, 9]}
            assert await other.followers([a]) == {a: [1, 2, 3, 9]}
            assert reads.calls[4:] == [a]
        finally:
            await redis.delete(keys.followers_version(a), keys.followers_version(b))
            await redis.aclose()

    asyncio.run(scenario())


def test_which_authors_a_reader_follows_is_answered_from_the_kept_lists_under_their_versions() -> None:
    """``followed_by`` (the timeline's resumed streams, kicau/retractions.py): many readers asking about the same
    authors read each list once; a follow (the version forgotten) makes the next question read it again."""
    async def scenario() -> None:
        redis = Redis(port=REDIS_PORT)
        base = random.randrange(10**12, 10**13)
        a, b = base, base + 1
        reads = CountingReads({a: [1, 2, 3], b: [3, 4]})
        lists = FollowerLists(redis, reads)
        try:
            assert await lists.followed_by(3, [a, b]) == {a, b}
            assert await lists.followed_by(1, [a, b]) == {a}
            assert await lists.followed_by(9, [a, b]) == set()
            assert await lists.followed_by(9, []) == set()
            assert sorted(reads.calls) == [a, b], "each list read once for every reader"
            reads.lists[b] = [3, 4, 9]  # 9 follows b
            await follower_lists.forget(redis, b)
            assert await lists.followed_by(9, [a, b]) == {b}
            assert sorted(reads.calls) == [a, b, b]
        finally:
            await redis.delete(keys.followers_version(a), keys.followers_version(b))
            await redis.aclose()

    asyncio.run(scenario())


def test_the_synchronous_forget_of_bulk_loaders() -> None:
    async def scenario() -> None:
        redis = Redis(port=REDIS_PORT)
        account = random.randrange(10**12, 10**13)
        reads = CountingReads({account: [7]})
        lists = FollowerLists(redis, reads)
        try:
            await lists.followers([account])
            with sync_redis.Redis(port=REDIS_PORT) as client:
                follower_lists.forget_now(client, [account])
            reads.lists[account] = [7, 8]
            assert await lists.followers([account]) == {account: [7, 8]}
            assert len(reads.calls) == 2
        finally:
            await redis.delete(keys.followers_version(account))
            await redis.aclose()

    asyncio.run(scenario())


def test_memory_stays_within_its_budget() -> None:
    async def scenario() -> None:
        redis = Redis(port=REDIS_PORT)
        base = random.randrange(10**12, 10**13)
        authors = [base + i for i in range(10)]
        reads = CountingReads({a: list(range(100)) for a in authors})
        lists = FollowerLists(redis, reads, max_ids=400)
        try:
            for author in authors:
                await lists.followers([author])
            assert len(lists) == 4  # 400 ids: the four most recent lists of 100
            await lists.followers([authors[-1]])  # still held
            assert len(reads.calls) == 10
            await lists.followers([authors[0]])  # dropped long ago
            assert len(reads.calls) == 11
        finally:
            for author in authors:
                await redis.delete(keys.followers_version(author))
            await redis.aclose()

    asyncio.run(scenario())


def test_follow_and_unfollow_reach_a_cached_follower_list(
    http: httpx.Client, make_user: Callable[..., User]
) -> None:
    author, steady, newcomer = make_user("fla"), make_user("fls"), make_user("fln")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=steady.auth).status_code == 200

    def post(text: str) -> str:
        answer = http.post("/api/v1/statuses", headers=author.auth, data={"status": text})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["id"])

    # The fanout now holds the author's follower list (one follower).
    first = post("warm")
    eventually(lambda: home_ids(http, steady) == [first])
    # A follow made while that copy is held: the next status reaches the newcomer.
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=newcomer.auth).status_code == 200
    second = post("after the follow")
    eventually(lambda: second in home_ids(http, newcomer))
    # And an unfollow: the next status reaches the steady follower but not the one who left.
    assert http.post(f"/api/v1/accounts/{author.id}/unfollow", headers=newcomer.auth).status_code == 200
    third = post("after the unfollow")
    eventually(lambda: home_ids(http, steady)[:1] == [third])
    assert third not in home_ids(http, newcomer)


class CountingQuestions:
    """Stands in for the graph service's followers-among lookup only to record the questions asked."""

    def __init__(self, followers: set[int]) -> None:
        self.followers = followers
        self.options: dict[int, FollowOptions] = {}
        self.asked: list[list[int]] = []

    async def __call__(self, author: int, candidates: list[int]) -> dict[int, FollowOptions]:
        self.asked.append(list(candidates))
        return {c: self.options.get(c, DEFAULT) for c in candidates if c in self.followers}


def test_known_followers_ask_only_about_new_accounts_until_the_version_changes() -> None:
    async def scenario() -> None:
        redis = Redis(port=REDIS_PORT)
        author = random.randrange(10**12, 10**13)
        graph = CountingQuestions({1, 3})
        known = follower_lists.KnownFollowers(redis, graph)
        try:
            assert list(await known(author, [1, 2, 3])) == [1, 3]
            assert list(await known(author, [3, 2, 1])) == [3, 1]
            assert list(await known(author, [1, 4])) == [1]
            # Each follower comes with its follow's options, kept with the answer.
            graph.options[5] = FollowOptions(reblogs=False)
            graph.followers.add(5)
            assert await known(author, [5, 1]) == {5: FollowOptions(reblogs=False), 1: DEFAULT}
            graph.asked.pop()
            assert graph.asked == [[1, 2, 3], [4]], "only the account never asked about is looked up"

            graph.followers = {2, 4}  # account 2 follows, 1, 3 and 5 unfollow: the graph deletes the version
            await follower_lists.forget(redis, author)
            assert list(await known(author, [1, 2, 3, 4])) == [2, 4]
            assert graph.asked[-1] == [1, 2, 3, 4], "every answer kept under the old version is dropped"
        finally:
            await redis.delete(keys.followers_version(author))
            await redis.aclose()

    asyncio.run(scenario())


def test_known_followers_stay_within_their_bounds() -> None:
    async def scenario() -> None:
        redis = Redis(port=REDIS_PORT)
        base = random.randrange(10**12, 10**13)
        authors = [base, base + 1, base + 2]
        graph = CountingQuestions(set(range(0, 100, 2)))
        known = follower_lists.KnownFollowers(redis, graph, max_answers=120)
        try:
            for author in authors:
                assert list(await known(author, list(range(50)))) == list(range(0, 50, 2))
            # 150 answers kept would pass the bound: the least recently asked author was dropped.
            graph.asked.clear()
            await known(authors[2], list(range(50)))
            await known(authors[0], list(range(50)))
            assert graph.asked == [list(range(50))], "only the dropped author is asked again"

            # Streams that closed: an author's answers shrink to the accounts still asked about.
            small = follower_lists.KnownFollowers(redis, graph)
            await small(authors[1], list(range(2000)))
            assert list(await small(authors[1], [4, 5])) == [4]
            graph.asked.clear()
            assert list(await small(authors[1], [4, 5, 6])) == [4, 6]
            assert graph.asked == [[6]], "accounts dropped from the answers are asked again, the rest are not"
        finally:
            await redis.delete(*(keys.followers_version(a) for a in authors))
            await redis.aclose()

    asyncio.run(scenario())


def test_hashtags_lists_of_followers_follow_their_own_versions() -> None:
    """The fanout's copies of hashtags' followers (kicau/tag_follows.py) are kept under the hashtags' versions,
    which the graph service forgets around each follow and unfollow of a hashtag (``forget_tags``)."""

    async def scenario() -> None:
        redis = Redis(port=REDIS_PORT)
        tag = f"v{random.randrange(10**12, 10**13)}"
        reads = CountingReads({tag: [1, 2]})
        lists: FollowerLists[str] = FollowerLists(redis, reads, version=keys.tag_followers_version)
        try:
            assert await lists.followers([tag]) == {tag: [1, 2]}
            assert await lists.followers([tag]) == {tag: [1, 2]}
            assert reads.calls == [tag]
            assert await redis.exists(keys.tag_followers_version(tag)) == 1
            reads.lists[tag] = [1, 2, 3]
            await follower_lists.forget_tags(redis, tag)
            assert await lists.followers([tag]) == {tag: [1, 2, 3]}
            assert reads.calls == [tag, tag]
        finally:
            await redis.delete(keys.tag_followers_version(tag))
            await redis.aclose()

    asyncio.run(scenario())

"""Follower lists held in memory by the fanout, and the version protocol that keeps them exact.

Reading 1,000 followers from Cassandra costs ~15 ms on this machine, on the path of every status to its open
streams. The fanout therefore keeps the lists of authors who post, tagged with a version kept in Redis
(``followers:{u:<id>}:v``):

* whoever changes a follower list (the graph service on follow and unfollow, the bulk loaders) *deletes* the
  version key, before writing the rows and again after;
* a reader claims a version with ``SET key <fresh token> NX GET``: it gets the current token, or installs its
  own when there is none. It then reads the list from Cassandra and keeps it under that token;
* a kept list is used only while the key still holds its token.

A change deletes the key, so every token claimed before it is dead: the next reader installs a new one and
reads again. A reader that claimed a token *between* the two deletes may have read the rows before the
change landed, which is why the writer deletes again afterwards. Redis losing its data loses the keys too,
which also invalidates every copy. No clock is involved; ``max_age`` only bounds how long a copy may live if
some writer ever skipped the protocol.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from array import array
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar, cast

import redis as sync_redis
from redis.asyncio import Redis

from kicau import keys, resp
from kicau.metrics import FANOUT_FOLLOWER_LISTS, FANOUT_FOLLOWER_READ_SECONDS, FANOUT_FOLLOWERS_READ

Followed = TypeVar("Followed", bound=Hashable)
Kept = TypeVar("Kept")  # who has the followers: an account's id, a hashtag's name
ReadFollowers = Callable[[Followed], Awaitable[list[int]]]


async def forget(redis: Redis, *account_ids: int) -> None:
    """Invalidate every in-memory copy of these accounts' follower lists (call before and after the change)."""
    await _forget(redis, [keys.followers_version(account_id) for account_id in account_ids])


async def forget_tags(redis: Redis, *tags: str) -> None:
    """``forget`` for hashtags' lists of followers (kicau/tag_follows.py)."""
    await _forget(redis, [keys.tag_followers_version(tag) for tag in tags])


async def _forget(redis: Redis, versions: list[str]) -> None:
    pipe = redis.pipeline(transaction=False)
    for version in versions:
        pipe.delete(version)  # one key per command: each may live on its own node
    if versions:
        await pipe.execute()


async def forget_versions(redis: Redis, versions: list[str]) -> None:
    """``forget`` for what else is kept under version keys of this protocol (kicau/web_push.py's subscriptions)."""
    await _forget(redis, versions)


async def claim_versions(redis: Redis, versions: Sequence[str]) -> list[bytes]:
    """The current token of each version key, a fresh one installed where there is none: one Redis round trip.
    Packed by hand on the shared connection (kicau/resp.py): through a redis-py pipeline this round trip, made for
    every fanout batch, was ~7% of the fanout's CPU under posts. Safe to send again: a claim that reached Redis
    before the connection broke returns this same token the second time."""
    fresh = uuid.uuid4().hex.encode()
    claimed = await resp.round_trip(redis, [resp.command(b"SET", version.encode(), fresh, b"NX", b"GET")
                                            for version in versions])
    return [fresh if current is None else bytes(current) for current in claimed]


def forget_now(redis: sync_redis.Redis, account_ids: Sequence[int]) -> None:
    """``forget`` for the synchronous bulk loaders, in chunks of one pipeline each."""
    for start in range(0, len(account_ids), 1000):
        pipe = redis.pipeline(transaction=False)
        for account_id in account_ids[start:start + 1000]:
            pipe.delete(keys.followers_version(account_id))
        pipe.execute()


class FollowerLists(Generic[Followed]):
    """Follower lists of recently posting authors (or of the hashtags recent statuses carry: ``version`` names
    the key of a list's version), at most ``max_ids`` ids in all (least recently used lists are dropped first);
    ids are kept as 8-byte machine integers, not Python ints."""

    def __init__(self, redis: Redis, read: ReadFollowers[Followed], *, max_ids: int = 4_000_000,
                 max_age: float = 300.0, version: Callable[[Followed], str] | None = None) -> None:
        self._redis = redis
        self._read = read
        # An account's list by default.
        self._version = version if version is not None else cast(Callable[[Followed], str], keys.followers_version)
        self.max_ids = max_ids
        self.max_age = max_age
        self._kept: OrderedDict[Followed, tuple[bytes, float, array[int]]] = OrderedDict()
        self._ids = 0
        # The version token each list of the last ``followers`` call was used under: what copies of other lists
        # kept under the same versions check against (kicau/follow_options.py), without a round trip of their own.
        self.claimed: dict[Followed, bytes] = {}

    def __len__(self) -> int:
        return len(self._kept)

    async def followers(self, account_ids: Sequence[Followed]) -> dict[Followed, list[int]]:
        """The follower lists of ``account_ids``: one Redis round trip, then Cassandra for stale ones only."""
        kept, read, seconds = await self._lists(account_ids)
        if read:
            FANOUT_FOLLOWER_READ_SECONDS.observe(seconds)
            FANOUT_FOLLOWERS_READ.inc(sum(len(f) for f in read.values()))
        FANOUT_FOLLOWER_LISTS.labels("memory").inc(len(kept))
        FANOUT_FOLLOWER_LISTS.labels("cassandra").inc(len(read))
        return {**{account_id: followers.tolist() for account_id, followers in kept.items()}, **read}

    async def followed_by(self, follower: int, account_ids: Sequence[Followed]) -> set[Followed]:
        """Which of ``account_ids`` ``follower`` is among the followers of, from the same lists, without copying a
        kept one out (a membership test in its array): for many readers asking about the same few authors (a
        stream's resume, kicau/retractions.py). Not counted in the fanout's metrics: the timeline service asks."""
        kept, read, _ = await self._lists(account_ids)
        return {account_id for lists in (kept, read) for account_id, followers in lists.items()
                if follower in followers}

    async def _lists(self, account_ids: Sequence[Followed]) -> tuple[dict[Followed, array[int]],
                                                                      dict[Followed, list[int]], float]:
        """The lists kept under their current versions, as kept; the others, read from Cassandra (and kept); and
        how long those reads took."""
        if not account_ids:
            self.claimed = {}
            return {}, {}, 0.0
        self.claimed = await self.claim(account_ids)
        now = time.monotonic()
        kept: dict[Followed, array[int]] = {}
        stale: list[tuple[Followed, bytes]] = []
        for account_id, token in self.claimed.items():
            copy = self._kept.get(account_id)
            if copy is not None and copy[0] == token and now - copy[1] < self.max_age:
                self._kept.move_to_end(account_id)
                kept[account_id] = copy[2]
            else:
                stale.append((account_id, token))
        lists: list[list[int]] = []
        started = time.perf_counter()
        if stale:
            lists = await asyncio.gather(*(self._read(account_id) for account_id, _ in stale))
        seconds = time.perf_counter() - started
        read: dict[Followed, list[int]] = {}
        for (account_id, token), followers in zip(stale, lists, strict=True):
            self._keep(account_id, token, now, followers)
            read[account_id] = followers
        return kept, read, seconds

    async def claim(self, account_ids: Sequence[Followed]) -> dict[Followed, bytes]:
        """The current version token of each list (installed where there is none), without reading any list: for
        what is kept under the versions of lists too long to read whole (a large account's, kicau/follow_options.py).
        One Redis round trip."""
        if not account_ids:
            return {}
        tokens = await claim_versions(self._redis, [self._version(account_id) for account_id in account_ids])
        return dict(zip(account_ids, tokens, strict=True))

    def _keep(self, account_id: Followed, token: bytes, now: float, followers: list[int]) -> None:
        old = self._kept.pop(account_id, None)
        if old is not None:
            self._ids -= len(old[2])
        if len(followers) > self.max_ids // 4:
            return  # a list this long would evict most others; read it each time instead
        self._kept[account_id] = (token, now, array("q", followers))
        self._ids += len(followers)
        while self._ids > self.max_ids:
            _, (_, _, dropped) = self._kept.popitem(last=False)
            self._ids -= len(dropped)


if TYPE_CHECKING:  # kicau/follow_options.py keeps its copies with this module's classes
    from kicau.follow_options import FollowOptions

    # Which of some accounts follow an author, each with its follow's options.
    AskFollowersAmong = Callable[[int, list[int]], Awaitable[dict[int, FollowOptions]]]


class KnownFollowers:
    """Which of some accounts follow an author, remembered per author under the same version token as the lists
    above: asked again about the same author, only accounts never asked about are looked up, as long as nobody
    followed or unfollowed the author meanwhile (a change deletes the token, and every answer kept under it is
    dropped). A gateway asks this for each status of a large account, about the accounts it holds streams for;
    without it every status cost one read per 100 of them in the author's partition (~170 ms for 1,000). Each
    follower comes with its follow's options, written under the same version (kicau/follow_options.py)."""

    def __init__(self, redis: Redis, ask: AskFollowersAmong, *, max_authors: int = 1024,
                 max_answers: int = 500_000, max_age: float = 300.0) -> None:
        self._redis = redis
        self._ask = ask
        self.max_authors = max_authors
        self.max_answers = max_answers  # over all authors (~70 bytes each); least recently asked authors go first
        self.max_age = max_age
        # author -> (version token, since when, {candidate: its follow's options, or None for no follow})
        self._kept: OrderedDict[int, tuple[bytes, float, dict[int, FollowOptions | None]]] = OrderedDict()
        self._answers = 0

    async def __call__(self, author: int, candidates: list[int]) -> dict[int, FollowOptions]:
        """The candidates that follow the author, in the order given, with their follows' options."""
        fresh = uuid.uuid4().hex.encode()
        current = await self._redis.set(keys.followers_version(author), fresh, nx=True, get=True)
        token = current if isinstance(current, bytes) else fresh  # None: ours was installed
        now = time.monotonic()
        kept = self._kept.pop(author, None)
        answers: dict[int, FollowOptions | None] = {}
        since = now
        if kept is not None:
            self._answers -= len(kept[2])
            if kept[0] == token and now - kept[1] < self.max_age:
                answers, since = kept[2], kept[1]
        unknown = [c for c in candidates if c not in answers]
        if unknown:
            follow = await self._ask(author, unknown)
            answers.update((c, follow.get(c)) for c in unknown)
        found = {c: options for c in candidates if (options := answers[c]) is not None}
        if len(answers) > 2 * len(candidates) + 1000:  # mostly accounts whose streams have closed since
            answers = {c: answers[c] for c in candidates}
        self._kept[author] = (token, since, answers)
        self._answers += len(answers)
        while self._kept and (len(self._kept) > self.max_authors or self._answers > self.max_answers):
            _, (_, _, dropped) = self._kept.popitem(last=False)
            self._answers -= len(dropped)
        return found


class KeptUnderVersions(Generic[Kept]):
    """What else the fanout keeps of an account beside its follower list, under the version token it has just
    claimed for that list (``FollowerLists.claimed``): no Redis command of its own, and a Cassandra read (``read``)
    only when the version changed. Whoever changes what is kept drops the version before and after, as for the
    follower list itself. Kept for the ``max_kept`` most recently used accounts, at most ``max_age`` seconds.
    Followers' options (kicau/follow_options.py) and the lists an author is in (kicau/lists.py) are kept so."""

    def __init__(self, read: Callable[[int], Awaitable[Kept]], *, max_kept: int = 100_000,
                 max_age: float = 300.0) -> None:
        self.read = read  # straight from Cassandra, nothing kept
        self.max_kept = max_kept
        self.max_age = max_age
        self._kept: OrderedDict[int, tuple[bytes, float, Kept]] = OrderedDict()

    async def of(self, claimed: Mapping[int, bytes]) -> dict[int, Kept]:
        """What is kept of each account whose version token is given."""
        now = time.monotonic()
        found: dict[int, Kept] = {}
        stale: list[tuple[int, bytes]] = []
        for account_id, token in claimed.items():
            kept = self._kept.get(account_id)
            if kept is not None and kept[0] == token and now - kept[1] < self.max_age:
                self._kept.move_to_end(account_id)
                found[account_id] = kept[2]
            else:
                stale.append((account_id, token))
        if stale:
            read = await asyncio.gather(*(self.read(account_id) for account_id, _ in stale))
            for (account_id, token), value in zip(stale, read, strict=True):
                self._kept[account_id] = (token, now, value)
                self._kept.move_to_end(account_id)
                found[account_id] = value
            while len(self._kept) > self.max_kept:
                self._kept.popitem(last=False)
        return found

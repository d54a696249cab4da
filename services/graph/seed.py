"""Seed a realistic follow graph into Cassandra, fast.

    python -m services.graph.seed --users 100000 --mean-follows 20 --large 1000000 --large 50000

* ``--users`` accounts follow on average ``--mean-follows`` others (Poisson), chosen by a Zipf law over a
  popularity rank (``--zipf``), which gives the heavy-tailed in-degree of real social graphs.
* each ``--large N`` adds one account followed by N accounts (the first N seeded users, topped up with
  follower-only accounts when N exceeds ``--users``), so a celebrity with 1,000,000 followers needs no
  million registrations; accounts at or above the large-account threshold enter the registry.
* rows go in through concurrent asynchronous writes: follower rows of one account share a partition and are
  sent as unlogged single-partition batches; the rest as individual prepared statements, ``--concurrency`` at a
  time. A progress bar shows rows written and the rows/s achieved.

Seeded accounts have usernames ``<prefix>_<n>``, no password, and ids from a reserved snowflake worker (63),
so they never collide with ids issued by the services. Counters are added, so seed a keyspace once.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import math
import random
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cassandra import OperationTimedOut, Unavailable, WriteTimeout
from cassandra.cluster import Session
from cassandra.protocol import OverloadedErrorMessage
from cassandra.query import BatchStatement, BatchType

from kicau import clients, follower_lists
from kicau.bulk_rows import GraphRowWriters
from kicau.ids import SnowflakeGenerator
from kicau.large_accounts import LargeAccounts
from kicau.settings import CommonSettings

SEED_WORKER = 63
BATCH = 100
ATTEMPTS = 6
COUNTER_TIMEOUT = 120.0
RETRYABLE = (OperationTimedOut, WriteTimeout, Unavailable, OverloadedErrorMessage)


@dataclass
class Plan:
    users: list[int]
    lurkers: list[int]  # follower-only accounts topping up large audiences
    edges: dict[int, list[int]]  # followee -> followers
    large: list[int]


def zipf_table(n: int, exponent: float) -> list[float]:
    weights = itertools.accumulate(1.0 / (rank ** exponent) for rank in range(1, n + 1))
    return list(weights)


def poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method is fine for the small means of follow counts; fall back to a normal approximation above.
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def plan(*, users: int, mean_follows: float, zipf: float, large: list[int], seed: int) -> Plan:
    rng = random.Random(seed)
    ids = SnowflakeGenerator(SEED_WORKER)
    user_ids = [ids.next_id() for _ in range(users)]
    # Popularity order is a random permutation, so popular accounts are not simply the oldest.
    popularity = user_ids[:]
    rng.shuffle(popularity)
    table = zipf_table(users, zipf)
    total = table[-1]
    edges: dict[int, list[int]] = defaultdict(list)
    for follower in user_ids:
        wanted = min(poisson(rng, mean_follows), users - 1)
        chosen: set[int] = set()
        attempts = 0
        while len(chosen) < wanted and attempts < wanted * 4:
            attempts += 1
            followee = popularity[bisect.bisect_left(table, rng.random() * total)]
            if followee != follower:
                chosen.add(followee)
        for followee in chosen:
            edges[followee].append(follower)
    large_ids = [ids.next_id() for _ in large]
    lurker_count = max([0, *(size - users for size in large)])
    lurkers = [ids.next_id() for _ in range(lurker_count)]
    for account, size in zip(large_ids, large, strict=True):
        edges[account] = (user_ids + lurkers)[:size]
    return Plan(users=user_ids + large_ids, lurkers=lurkers, edges=edges, large=large_ids)


class Progress:
    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.retries = 0
        self.started = time.monotonic()
        self._shown = 0.0

    def add(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self._shown > 0.25 or self.done >= self.total:
            self._shown = now
            self.show()

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def show(self) -> None:
        share = self.done / self.total
        bar = "#" * int(share * 40)
        sys.stderr.write(f"\r[{bar:<40}] {share:6.1%} {self.done:>12,} rows {self.rate():>10,.0f} rows/s"
                         + (f" ({self.retries} retried)" if self.retries else ""))
        sys.stderr.flush()


class Loader:
    def __init__(self, session: Session, concurrency: int, progress: Progress) -> None:
        self.session = session
        self.slots = asyncio.Semaphore(concurrency)
        self.window = 2 * concurrency  # tasks created ahead of the semaphore, so memory stays flat
        self.progress = progress
        self.rows = GraphRowWriters.prepare(session, bot=False, password_hash="!seeded")

    async def run(self, statement: Any, params: Any, rows: int = 1, *, idempotent: bool = True) -> None:
        """One write. Plain inserts are idempotent and retried when Cassandra times out or sheds load (a busy
        node does, and one lost batch would leave a hole in the graph). A counter batch is not idempotent: it
        gets a long timeout instead and is never retried, so a counter can never count twice."""
        for attempt in itertools.count(1):
            try:
                async with self.slots:
                    await clients.execute(self.session, statement, params,
                                          request_timeout=None if idempotent else COUNTER_TIMEOUT)
                break
            except RETRYABLE:
                if not idempotent or attempt >= ATTEMPTS:
                    raise
                self.progress.retries += 1
                await asyncio.sleep(min(0.1 * 2 ** attempt, 5.0))
        self.progress.add(rows)

    async def gather(self, jobs: Iterator[Any]) -> None:
        """Run coroutines with bounded concurrency without creating them all at once."""
        pending: set[asyncio.Task[None]] = set()
        for job in jobs:
            pending.add(asyncio.create_task(job))
            if len(pending) >= self.window:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
        if pending:
            await asyncio.gather(*pending)

    def batched(self, rows: Iterator[tuple[Any, tuple[Any, ...]]], kind: BatchType) -> Iterator[Any]:
        """Unlogged (or counter) batches of ``BATCH`` rows: one request instead of a hundred. Rows of one
        partition (a followee's followers) are contiguous, so most batches touch few partitions."""
        while True:
            chunk = list(itertools.islice(rows, BATCH))
            if not chunk:
                return
            batch = BatchStatement(batch_type=kind)
            for statement, params in chunk:
                batch.add(statement, params)
            yield self.run(batch, None, len(chunk), idempotent=kind is not BatchType.COUNTER)


async def load(plan_: Plan, *, prefix: str, concurrency: int, settings: CommonSettings) -> tuple[int, float]:
    session = clients.cassandra_session(settings)
    following: dict[int, int] = defaultdict(int)
    for followers in plan_.edges.values():
        for follower in followers:
            following[follower] += 1
    edges = sum(len(f) for f in plan_.edges.values())
    total = 3 * len(plan_.users) + 2 * edges + len(plan_.edges) + len(following)
    progress = Progress(total)
    loader = Loader(session, concurrency, progress)
    now = datetime.now(UTC)

    def rows() -> Iterator[tuple[Any, tuple[Any, ...]]]:
        for n, account in enumerate(plan_.users):
            name = f"{prefix}_{n}"
            yield loader.rows.account, (account, name, f"{name}@seed.invalid", name, now)
            yield loader.rows.username, (name.lower(), account)
            yield loader.rows.email, (f"{name.lower()}@seed.invalid", account)
        for followee, followers in plan_.edges.items():
            for follower in followers:
                yield loader.rows.follower, (followee, follower, now)
        for followee, followers in plan_.edges.items():
            for follower in followers:
                yield loader.rows.following, (follower, followee, now)

    def counters() -> Iterator[tuple[Any, tuple[Any, ...]]]:
        for followee, followers in plan_.edges.items():
            yield loader.rows.add_followers, (len(followers), followee)
        for follower, count in following.items():
            yield loader.rows.add_following, (count, follower)

    def jobs() -> Iterator[Any]:
        yield from loader.batched(rows(), BatchType.UNLOGGED)
        yield from loader.batched(counters(), BatchType.COUNTER)

    redis = clients.redis_client(settings, name="seed")
    try:
        await loader.gather(jobs())
        # Rows written behind the graph service's back: drop any copy of these follower lists (the fanout's).
        await follower_lists.forget(redis, *plan_.edges)
        registry = LargeAccounts(session)
        for account, followers in plan_.edges.items():
            if len(followers) >= settings.large_account_threshold:
                await registry.add(account)
    finally:
        progress.show()
        sys.stderr.write("\n")
        clients.close_cassandra(session)
        await redis.aclose()
    return progress.done, progress.rate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.graph.seed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--mean-follows", type=float, default=20.0)
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of followee popularity")
    parser.add_argument("--large", type=int, action="append", default=[],
                        help="add an account with this many followers (repeatable)")
    parser.add_argument("--prefix", default="seed")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="batches in flight (of 100 rows each)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.monotonic()
    graph = plan(users=args.users, mean_follows=args.mean_follows, zipf=args.zipf, large=args.large, seed=args.seed)
    degrees = sorted((len(f) for f in graph.edges.values()), reverse=True)
    print(f"planned {len(graph.users):,} accounts (+{len(graph.lurkers):,} follower-only), "
          f"{sum(degrees):,} follows in {time.monotonic() - started:.1f}s; "
          f"top in-degrees {degrees[:5]}, median {degrees[len(degrees) // 2] if degrees else 0}")
    rows, rate = asyncio.run(load(graph, prefix=args.prefix, concurrency=args.concurrency,
                                  settings=CommonSettings()))
    print(f"wrote {rows:,} rows in {time.monotonic() - started:.1f}s: {rate:,.0f} rows/s")
    for account, size in zip(graph.large, args.large, strict=True):
        print(f"large account {account} ({args.prefix}_{graph.users.index(account)}) has {size:,} followers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Section 1: timeline entries per second written by the real fanout service, against what Redis itself can
take of the same command (``redis-benchmark``, measured right before, same machine).

One author gets ``followers`` follower edges in Cassandra; every follower's home timeline is materialised
first (the sentinel alone, as a rebuild for a reader who follows nobody would leave it), so a fanout that
writes only into existing timelines still writes all of them. The author then posts through the public API
and the fanout's own counter ``kicau_fanout_timeline_entries_total`` is read until it has grown by posts x
(followers + 1).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis

from bench import profiling
from bench.common import (
    FANOUT_AUTHORS,
    FANOUT_FOLLOWERS,
    FANOUT_METRICS,
    GATEWAY,
    PUSH_TIMELINES,
    REDIS_PORT,
    REDIS_SOCKET,
    REDIS_URL,
    BenchError,
    Histogram,
    log,
    sample_sum,
    scrape,
)
from bench.seed import Seeder, seed_followers
from kicau import keys
from kicau.feeds import Feeds, calls_must_stay_in_one_slot, feed_member
from kicau.resp import Sender
from kicau.settings import CommonSettings

LIMIT_KEY = "bench:limit:{u:__rand_int__}:home"
# The push script's measure (``measure_push_script``): timelines and rounds of one new status each.
PUSH_SCRIPT_TIMELINES = 3_000
PUSH_ROUNDS = 5
# A new member per command, as the fanout writes new entries: redis-benchmark replaces each __rand_int__ with a
# 12-digit number drawn from the key space, so every timeline gets ~10 distinct members over a run. (With one
# fixed member, as measured before, every ZADD after a key's first is a no-op update that writes nothing;
# that rate is still reported, as ``redis_zadd_same_member_per_s``.)
LIMIT_MEMBER = "__rand_int__"
# One fixed 8-byte member for the no-op rate (no NUL and all below 0x80: it travels as one argv string).
SAME_MEMBER = "\x01\x1f\x4e\x22\x10\x01\x04\x01"
# (pipeline depth, clients): the fanout sends one deep pipeline at a time; the limit is the best of these.
LIMIT_CONFIGS = ((64, 1), (256, 1), (1000, 1), (256, 4), (1000, 4))
SAFETY_TTL_SECONDS = 3600  # bench timelines vanish by themselves if a run is interrupted before its cleanup
_RPS = re.compile(rb"([\d.]+) requests per second")


@dataclass
class FanoutOptions:
    followers: int = 30_000
    posts: int = 10
    rounds: int = 2
    limit_requests: int = 300_000
    timeout_s: float = 180.0
    profile: bool = False


def redis_benchmark(command: list[str], *, pipeline: int, clients: int, requests: int, keyspace: int) -> float:
    """Requests per second of one redis-benchmark run of ``command`` (``__rand_int__`` spread over keyspace)."""
    # Over the same transport as the fanout's own connection: the Unix socket when the services use it.
    server = ["-s", REDIS_SOCKET] if REDIS_SOCKET else ["-h", "127.0.0.1", "-p", str(REDIS_PORT)]
    argv = ["redis-benchmark", *server, "-q", "-P", str(pipeline),
            "-c", str(clients), "-n", str(requests), "-r", str(keyspace), *command]
    # Run again once when it fails: one run in a make bench (2026-12-01 14:37Z) exited 1 with no result, and the
    # same command right after measured normally.
    for attempt in (1, 2):
        done = subprocess.run(argv, capture_output=True, timeout=120, check=False)
        found = _RPS.findall(done.stdout.replace(b"\r", b"\n"))
        if done.returncode == 0 and found:
            return float(found[-1])
        log(f"  redis-benchmark {' '.join(command[:1])} exited {done.returncode} (attempt {attempt}): "
            f"{done.stderr[-200:]!r}")
    raise RuntimeError(f"no result from {' '.join(argv)}: exit {done.returncode}, {done.stdout[-300:]!r} "
                       f"{done.stderr[-300:]!r}")


async def _delete_matching(redis: Redis, pattern: str) -> int:
    removed = 0
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=pattern, count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            removed += await redis.unlink(*batch)
            batch = []
    if batch:
        removed += await redis.unlink(*batch)
    return removed


def measure_limit(opts: FanoutOptions) -> dict[str, Any]:
    """Redis's own ceiling for the fanout's commands on this machine, measured just now."""
    runs = []
    zadd = ["ZADD", LIMIT_KEY, "0", LIMIT_MEMBER]
    for pipeline, clients in LIMIT_CONFIGS:
        rps = redis_benchmark(zadd, pipeline=pipeline, clients=clients, requests=opts.limit_requests,
                              keyspace=opts.followers)
        runs.append({"pipeline": pipeline, "clients": clients, "zadd_per_s": round(rps)})
        log(f"  redis-benchmark ZADD -P {pipeline} -c {clients}: {rps:,.0f}/s")
    best = max(runs, key=lambda r: r["zadd_per_s"])
    same = redis_benchmark(["ZADD", LIMIT_KEY, "0", SAME_MEMBER], pipeline=best["pipeline"], clients=best["clients"],
                           requests=opts.limit_requests, keyspace=opts.followers)
    log(f"  redis-benchmark ZADD of one fixed member (no-op after the first) -P {best['pipeline']} "
        f"-c {best['clients']}: {same:,.0f}/s")
    # The fanout sends ZADD + ZREMRANGEBYRANK (the cap) per entry; the pair's ceiling is their harmonic sum.
    trim = redis_benchmark(["ZREMRANGEBYRANK", LIMIT_KEY, "1", "-801"], pipeline=best["pipeline"],
                           clients=best["clients"], requests=opts.limit_requests, keyspace=opts.followers)
    log(f"  redis-benchmark ZREMRANGEBYRANK -P {best['pipeline']} -c {best['clients']}: {trim:,.0f}/s")
    pair = 1.0 / (1.0 / best["zadd_per_s"] + 1.0 / trim)
    return {
        "redis_zadd_pipelined_limit_per_s": best["zadd_per_s"],
        "limit_runs": runs,
        "limit_command": f"redis-benchmark -P {best['pipeline']} -c {best['clients']} -n {opts.limit_requests} "
                         f"-r {opts.followers} ZADD {LIMIT_KEY} 0 __rand_int__",
        "redis_zadd_same_member_per_s": round(same),
        "redis_zremrangebyrank_limit_per_s": round(trim),
        "redis_zadd_plus_trim_limit_entries_per_s": round(pair),
    }


async def measure_push_script(redis: Redis, timelines: int, fill: int) -> dict[str, Any]:
    """What Redis can take of the fanout's own push script (kicau/feeds.py), packed as the fanout packs it
    (``TimelineWrites``), into ``timelines`` timelines holding ``fill`` entries each (0: just materialised; the
    cap: full, as the timelines of active readers are in the steady state). Each round pushes one new status,
    newer than every entry, to all of them in one pipeline. Reported: timelines per second of Redis's own time
    in the script (``INFO commandstats``, so another process's load does not count), and of wall clock."""
    feeds = Feeds(redis, cap=CommonSettings().home_timeline_cap, ttl_seconds=SAFETY_TTL_SECONDS,
                  one_slot_per_call=await calls_must_stay_in_one_slot(redis))
    ids = range(PUSH_TIMELINES, PUSH_TIMELINES + timelines)
    newest = 10**18
    try:
        for start in range(0, timelines, 200):
            pipe = redis.pipeline(transaction=False)
            for account_id in ids[start:start + 200]:
                feeds.materialise(pipe, keys.home_feed(account_id), range(newest - fill, newest))
            await pipe.execute()
        usec = 0.0
        started = time.perf_counter()
        for status_id in range(newest, newest + PUSH_ROUNDS):
            writes = feeds.writes()
            writes.push(ids, [status_id])
            before = (await redis.info("commandstats")).get("cmdstat_evalsha", {}).get("usec", 0)
            async with Sender(redis) as sender:
                await sender.send(*writes.take())
                written = (await sender.finish())[2:]  # after the two SCRIPT LOADs
            usec += (await redis.info("commandstats"))["cmdstat_evalsha"]["usec"] - before
            if sum(written) != timelines:
                raise BenchError(f"push script: {sum(written)} of {timelines} timelines written")
        wall = time.perf_counter() - started
    finally:
        for start in range(0, timelines, 1000):
            await redis.unlink(*[keys.home_feed(a) for a in ids[start:start + 1000]])
    per_redis_second = timelines * PUSH_ROUNDS / (usec / 1e6)
    log(f"  push script into {timelines:,} timelines of {fill} entries: {per_redis_second:,.0f} timelines per "
        f"second of Redis time ({usec / (timelines * PUSH_ROUNDS):.2f} µs each), "
        f"{timelines * PUSH_ROUNDS / wall:,.0f}/s wall clock")
    return {"timelines": timelines, "entries_before": fill, "rounds": PUSH_ROUNDS,
            "timelines_per_redis_second": round(per_redis_second),
            "redis_us_per_timeline": round(usec / (timelines * PUSH_ROUNDS), 2),
            "timelines_per_s_wall": round(timelines * PUSH_ROUNDS / wall)}


async def _materialise_feeds(redis: Redis, account_ids: range) -> None:
    """The sentinel in every follower's timeline: it exists (and counts as rebuilt) before the posts."""
    for start in range(0, len(account_ids), 5000):
        pipe = redis.pipeline(transaction=False)
        for account_id in account_ids[start:start + 5000]:
            pipe.unlink(keys.home_feed(account_id))
            pipe.rpush(keys.home_feed(account_id), keys.FEED_SENTINEL)
            pipe.expire(keys.home_feed(account_id), SAFETY_TTL_SECONDS)
        await pipe.execute()


def _entries() -> tuple[float, float, float]:
    samples = scrape(FANOUT_METRICS)
    batch = Histogram.read(samples, "kicau_fanout_batch_duration_seconds")
    return sample_sum(samples, "kicau_fanout_timeline_entries_total"), batch.total, batch.count


async def _post(client: httpx.AsyncClient, token: str, text: str) -> int:
    answer = await client.post("/api/v1/statuses", json={"status": text},
                               headers={"Authorization": f"Bearer {token}"})
    answer.raise_for_status()
    return int(answer.json()["id"])


async def _present(redis: Redis, sample: list[int], ids: list[int]) -> int:
    """How many (sampled timeline, posted status) pairs are in Redis already: one LRANGE per timeline."""
    wanted = {feed_member(i) for i in ids}
    pipe = redis.pipeline(transaction=False)
    for account_id in sample:
        pipe.lrange(keys.home_feed(account_id), 0, -1)
    return sum(len(wanted.intersection(entries)) for entries in await pipe.execute())


async def _round(client: httpx.AsyncClient, redis: Redis, token: str, posts: int, timelines: list[int],
                 timeout_s: float) -> dict[str, Any]:
    """Post ``posts`` statuses at once and time until every sampled follower timeline holds all of them.

    Completion is read from Redis (a sample of the timelines, always including the first and last follower),
    so it does not matter which fanout process of the consumer group did the work; the fanout's own counter
    on :8083 is reported beside it (it misses entries written by other members of the group).
    """
    step = max(1, len(timelines) // 300)
    sample = sorted({*timelines[::step], timelines[0], timelines[-1]})
    before, batch_s0, batches0 = _entries()
    started = time.perf_counter()
    ids = await asyncio.gather(*(_post(client, token, f"bench fanout {i} {time.time()}") for i in range(posts)))
    posted = time.perf_counter()
    wanted = len(sample) * len(ids)
    present = 0
    while time.perf_counter() - started < timeout_s:
        present = await _present(redis, sample, list(ids))
        if present >= wanted:
            break
        await asyncio.sleep(0.05)
    finished = time.perf_counter()
    now, batch_s, batches = _entries()
    counted = now - before
    expected = posts * len(timelines)
    written = expected * present / wanted if wanted else 0
    wall = finished - started
    return {
        "posts": posts,
        "expected_entries": expected,
        "complete": present >= wanted,
        "sampled_fraction_written": round(present / wanted, 4) if wanted else None,
        "seconds": round(wall, 3),
        "post_seconds": round(posted - started, 3),
        "entries_per_s": round(written / wall) if wall > 0 and present >= wanted else None,
        "fanout_counter_entries": int(counted),
        "batch_seconds": round(batch_s - batch_s0, 3),
        "batches": int(batches - batches0),
        "entries_per_batch_second": (round(counted / (batch_s - batch_s0))
                                     if batch_s > batch_s0 and counted >= expected else None),
        "last_status_id": max(ids),
    }


async def run(opts: FanoutOptions) -> dict[str, Any]:
    log(f"fanout: seeding an author with {opts.followers:,} followers")
    if not 0 < opts.followers < 1_000_000:
        raise ValueError("followers must be between 1 and 999,999")
    author = FANOUT_AUTHORS + opts.followers
    seeder = Seeder()
    try:
        token = seed_followers(seeder, author, f"bench_fanout_author_{opts.followers}", FANOUT_FOLLOWERS,
                               opts.followers)
        stored = seeder.followers_count(author)
        if seeder.drop_large_account(author):
            # This section measures fan-out on write, which a registered large account would skip.
            log("  the bench author was registered as a large account; removed it from the registry")
            await asyncio.sleep(2.0)  # services reload the registry every second
    finally:
        seeder.close()
    followers = range(FANOUT_FOLLOWERS, FANOUT_FOLLOWERS + stored)
    timelines = [author, *followers]  # the author's own timeline gets each status too
    redis = Redis.from_url(REDIS_URL)
    try:
        log(f"fanout: materialising {stored:,} home timelines (sentinel member)")
        await _materialise_feeds(redis, range(author, author + 1))
        await _materialise_feeds(redis, followers)

        log("fanout: Redis limit for the same command (redis-benchmark)")
        limit = await asyncio.to_thread(measure_limit, opts)
        await _delete_matching(redis, "bench:limit:*")
        log("fanout: the push script's own cost in Redis, into empty and into full timelines")
        push_script = {"empty": await measure_push_script(redis, PUSH_SCRIPT_TIMELINES, 0),
                       "full": await measure_push_script(redis, PUSH_SCRIPT_TIMELINES,
                                                         CommonSettings().home_timeline_cap)}

        async with httpx.AsyncClient(base_url=GATEWAY, timeout=30) as client:
            log("fanout: warm-up post")
            warm = await _round(client, redis, token, 1, timelines, min(opts.timeout_s, 90.0))
            log(f"  warm-up: {warm['expected_entries']:,} entries, complete={warm['complete']}, "
                f"in {warm['seconds']:.2f}s")
            if not warm["complete"]:
                raise RuntimeError(
                    f"the warm-up post reached {warm['sampled_fraction_written']:.0%} of the sampled timelines in "
                    f"{warm['seconds']:.0f}s (fanout :8083 counted {warm['fanout_counter_entries']}): is another "
                    "process in consumer group kicau-fanout holding the author's partition?")
            rounds = []
            for number in range(opts.rounds):
                profiler = None
                if opts.profile and number == opts.rounds - 1:
                    profiler = profiling.start("fanout", seconds=20)
                log(f"fanout: round {number + 1}/{opts.rounds}: {opts.posts} posts x {len(timelines):,} timelines")
                result = await _round(client, redis, token, opts.posts, timelines, opts.timeout_s)
                rounds.append(result)
                log(f"  {result['expected_entries']:,} entries, complete={result['complete']}, in "
                    f"{result['seconds']:.2f}s = {result['entries_per_s'] or 0:,}/s (fanout :8083 counted "
                    f"{result['fanout_counter_entries']:,}; inside its batches "
                    f"{result['entries_per_batch_second'] or 0:,}/s)")
                if profiler is not None:
                    profiling.finish(profiler)
        last_follower = followers[-1] if stored else author
        last_id = rounds[-1]["last_status_id"]
        in_last_feed = await redis.lpos(keys.home_feed(last_follower), feed_member(last_id).decode()) is not None
    finally:
        removed = await _delete_matching(redis, "bench:limit:*")
        pipe = redis.pipeline(transaction=False)
        for account_id in [author, *followers]:
            pipe.unlink(keys.home_feed(account_id))
        await pipe.execute()
        await redis.aclose()
        del removed

    best = max(rounds, key=lambda r: r["entries_per_s"] or 0)
    if not best["entries_per_s"]:
        raise RuntimeError(
            f"no round was fanned out completely within {opts.timeout_s:.0f}s (sampled fractions "
            f"{[r['sampled_fraction_written'] for r in rounds]}, fanout :8083 counted "
            f"{[r['fanout_counter_entries'] for r in rounds]}): was the fanout restarted or its partition "
            "taken by another member of the consumer group?")
    limit_value = limit["redis_zadd_pipelined_limit_per_s"]
    return {
        "entries_per_s": best["entries_per_s"],
        "redis_zadd_pipelined_limit_per_s": limit_value,
        "ratio": round(best["entries_per_s"] / limit_value, 3) if limit_value and best["entries_per_s"] else None,
        "followers": stored,
        "posts_per_round": opts.posts,
        "entries_per_batch_second": best["entries_per_batch_second"],
        "ratio_vs_zadd_plus_trim": (round(best["entries_per_s"] / limit["redis_zadd_plus_trim_limit_entries_per_s"], 3)
                                    if best["entries_per_s"] else None),
        # The rounds write into timelines holding a few entries: against the script's rate into such timelines.
        "ratio_vs_push_script": round(best["entries_per_s"] / push_script["empty"]["timelines_per_redis_second"], 3),
        "push_script": push_script,
        "last_follower_has_status": in_last_feed,
        "rounds": rounds,
        **{k: v for k, v in limit.items() if k != "redis_zadd_pipelined_limit_per_s"},
    }

"""Section 4: Redis bytes per home-timeline entry.

``timelines`` full home timelines (the cap, 800 newest, plus the sentinel) are written with the project's own
writer (``kicau.feeds.Feeds.materialise``, the entry format the fanout and the rebuild use) under bench
account ids, then measured with ``MEMORY USAGE <key> SAMPLES 0`` (exact: every node of the list is counted)
and with the growth of ``used_memory``. The keys are removed afterwards (and expire within the hour if the run
is interrupted).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from bench.common import MEMORY_FEEDS, REDIS_URL, log
from kicau import keys
from kicau.feeds import Feeds
from kicau.ids import id_from_ms
from kicau.settings import CommonSettings

SAFETY_TTL_SECONDS = 3600


@dataclass
class MemoryOptions:
    timelines: int = 1000


def _status_ids(count: int, rng: random.Random) -> list[int]:
    """Realistic ids: snowflakes of the last few days, each from a random millisecond, worker and sequence."""
    now_ms = int(time.time() * 1000)
    ids = {id_from_ms(now_ms - rng.randrange(3 * 86_400_000)) | rng.randrange(1 << 16) for _ in range(count)}
    return sorted(ids)  # Feeds.materialise writes them in the order that fills a listpack fastest anyway


async def run(opts: MemoryOptions) -> dict[str, Any]:
    cap = CommonSettings().home_timeline_cap
    redis = Redis.from_url(REDIS_URL)
    feeds = Feeds(redis, cap=cap, ttl_seconds=SAFETY_TTL_SECONDS)
    ids = range(MEMORY_FEEDS, MEMORY_FEEDS + opts.timelines)
    rng = random.Random(6)
    try:
        config = await redis.config_get("list-max-listpack-*")
        await redis.unlink(*[keys.home_feed(a) for a in ids])
        before = int((await redis.info("memory"))["used_memory"])
        log(f"memory: filling {opts.timelines} home timelines to the cap ({cap} entries + sentinel)")
        for start in range(0, len(ids), 100):
            pipe = redis.pipeline(transaction=False)
            for account_id in ids[start:start + 100]:
                feeds.materialise(pipe, keys.home_feed(account_id), _status_ids(cap, rng))
            await pipe.execute()
        after = int((await redis.info("memory"))["used_memory"])
        pipe = redis.pipeline(transaction=False)
        for account_id in ids:
            pipe.execute_command("MEMORY", "USAGE", keys.home_feed(account_id), "SAMPLES", "0")
            pipe.llen(keys.home_feed(account_id))
        replies = await pipe.execute()
        encoding = await redis.object("encoding", keys.home_feed(ids[0]))
    finally:
        pipe = redis.pipeline(transaction=False)
        for account_id in ids:
            pipe.unlink(keys.home_feed(account_id))
        await pipe.execute()
        await redis.aclose()
    usages = [int(u) for u in replies[0::2]]
    sizes = [int(s) for s in replies[1::2]]
    entries = sum(sizes)
    per_entry = sum(usages) / entries
    per_entry_used = (after - before) / entries
    log(f"  MEMORY USAGE: {per_entry:.2f} bytes/entry ({encoding.decode() if encoding else '?'}); "
        f"used_memory growth: {per_entry_used:.2f} bytes/entry")
    return {
        "bytes_per_entry": round(per_entry, 2),
        "bytes_per_entry_used_memory": round(per_entry_used, 2),
        "timelines": opts.timelines,
        "entries_per_timeline": round(entries / len(sizes), 1),
        "bytes_per_timeline": round(sum(usages) / len(usages)),
        "encoding": encoding.decode() if isinstance(encoding, bytes) else encoding,
        "redis_config": {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                         for k, v in config.items()},
    }

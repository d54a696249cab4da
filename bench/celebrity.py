"""The very-large-account case: one status from an account with 1,000,000 followers.

Side by side on the same stack:
* hybrid (Kicau's path): the author is in the large-account registry; the status costs a constant number of
  Redis commands (counted from Redis's slow log, attributed to the fanout's named connections), shows in sample
  followers' home timelines through the read-time merge, and reaches their open streams through one broadcast;
* fanout on write: the same author taken out of the registry, every follower's home timeline present, the same
  status path writing one entry per follower; the time until the last entry is written.

Run alone with ``python -m bench.celebrity [--followers N]``; ``make bench`` runs it as one section.
(Owned by the large-account path: bench/__main__.py calls ``run(CelebrityOptions())``.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import redis

from bench.common import (
    CELEBRITY_AUTHOR,
    CELEBRITY_FOLLOWERS,
    FANOUT_METRICS,
    GATEWAY,
    REDIS_URL,
    BenchError,
    log,
    percentiles,
    sample_sum,
    scrape,
)
from bench.seed import Seeder, seed_followers
from kicau import clients, keys, presence
from kicau.feeds import feed_member
from kicau.large_accounts import LargeAccounts
from kicau.settings import CommonSettings

SAMPLE = 200  # followers with tokens: they hold streams
READERS = 20  # of which these poll their home timelines (more pollers would measure the polling itself)
REGISTRY_REFRESH_S = 6.0  # the fanout re-reads the registry every 5 s


class CommandCounter:
    """Counts the commands the fanout's connections run while it is open, from Redis's slow log set to keep every
    command with the name of the client that sent it. (MONITOR names a client by its address only, and every
    service's connections share one address on the stack's Unix socket.) A script's inner commands are not
    logged, as MONITOR's address filter did not count them either: a script call is one command."""

    SLOWLOG_ENTRIES = 1_000_000

    def __init__(self) -> None:
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.count = 0
        self.commands: list[str] = []  # the commands counted, oldest first (each cut to 60 characters)
        self.background: list[str] = []  # the presence mirror's periodic reads in the window, not counted
        self._saved: dict[str, str] = {}

    def __enter__(self) -> CommandCounter:
        for name in ("slowlog-log-slower-than", "slowlog-max-len"):
            self._saved[name] = _text(self.redis.config_get(name)[name])
        self.redis.config_set("slowlog-max-len", self.SLOWLOG_ENTRIES)
        self.redis.slowlog_reset()
        self.redis.config_set("slowlog-log-slower-than", 0)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.redis.config_set("slowlog-log-slower-than", self._saved["slowlog-log-slower-than"])
            logged = self.redis.slowlog_get(self.SLOWLOG_ENTRIES)
            mine = [_text(entry.get("command")) for entry in reversed(logged)
                    if _text(entry.get("client_name")).startswith("kicau-fanout")]
            # The fanout's presence mirror re-reads who streams where every few seconds (kicau/presence.py),
            # whatever is posted: such a read that falls inside the window is not the status's work.
            self.background = [c[:60] for c in mine if _is_presence_read(c)]
            self.commands = [c[:60] for c in mine if not _is_presence_read(c)]
            self.count = len(self.commands)
        finally:
            self.redis.slowlog_reset()
            self.redis.config_set("slowlog-max-len", self._saved["slowlog-max-len"])
            self.redis.close()


def _is_presence_read(command: str) -> bool:
    name, _, rest = command.partition(" ")
    return name.upper() in {"SMEMBERS", "EXISTS", "HGETALL"} and rest.startswith(
        (presence.GATEWAYS, presence.GATEWAY_KEYS_PREFIX))


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


async def open_streams(tokens: list[str], received: dict[str, list[float]], ready: asyncio.Event) -> list[Any]:
    """One SSE connection per token, read chunk by chunk; records arrival times per status id."""
    host, port = GATEWAY.removeprefix("http://").split(":")
    opened = 0

    async def listen(token: str) -> None:
        nonlocal opened
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write((f"GET /api/v1/streaming/user HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                      "Accept: text/event-stream\r\n\r\n").encode())
        await writer.drain()
        buffer = b""
        started = False
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                now = time.time()
                buffer += chunk
                if not started:
                    if not buffer.startswith(b"HTTP/1.1 200"):
                        raise RuntimeError(f"stream refused: {buffer[:200]!r}")
                    if b"\r\n\r\n" not in buffer:
                        continue
                    started = True
                    buffer = buffer.split(b"\r\n\r\n", 1)[1]
                    opened += 1
                    if opened == len(tokens):
                        ready.set()
                while b"\n\n" in buffer:
                    frame, buffer = buffer.split(b"\n\n", 1)
                    fields = dict(line.split(": ", 1) for line in frame.decode().split("\n") if ": " in line)
                    if fields.get("event") == "update":
                        received.setdefault(fields["id"], []).append(now)
        finally:
            writer.close()

    return [asyncio.create_task(listen(t)) for t in tokens]


async def home_has(client: httpx.AsyncClient, token: str, status_id: str) -> bool:
    answer = await client.get("/api/v1/timelines/home?limit=5", headers={"Authorization": f"Bearer {token}"})
    return answer.status_code == 200 and status_id in [s["id"] for s in answer.json()]


async def hybrid(followers: int, author_token: str, sample_tokens: list[str]) -> dict[str, Any]:
    received: dict[str, list[float]] = {}
    ready = asyncio.Event()
    streams = await open_streams(sample_tokens, received, ready)
    await asyncio.wait_for(ready.wait(), timeout=60)
    await asyncio.sleep(1.0)
    async with httpx.AsyncClient(base_url=GATEWAY, timeout=30) as client:
        for token in sample_tokens:  # materialise the sample's home timelines before the post
            await client.get("/api/v1/timelines/home?limit=1", headers={"Authorization": f"Bearer {token}"})
        with CommandCounter() as counter:
            started = time.time()
            answer = await client.post("/api/v1/statuses", headers={"Authorization": f"Bearer {author_token}"},
                                       json={"status": "one status, a million readers"})
            answer.raise_for_status()
            status = answer.json()
            status_id = status["id"]
            pending = set(sample_tokens[:READERS])
            while pending and time.time() - started < 30:
                seen = await asyncio.gather(*(home_has(client, t, status_id) for t in pending))
                pending = {t for t, ok in zip(pending, seen, strict=True) if not ok}
            visible_ms = (time.time() - started) * 1000
            deadline = time.time() + 10
            while len(received.get(status_id, [])) < len(sample_tokens) and time.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
        commands, command_names, background = counter.count, counter.commands, counter.background
    for task in streams:
        task.cancel()
    accepted = time.mktime(time.strptime(status["created_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    accepted += int(status["created_at"][20:23]) / 1000
    latencies = [(t - accepted) * 1000 for t in received.get(status_id, [])]
    stream = percentiles(latencies)
    return {
        "followers": followers,
        "post_redis_commands": commands,
        "post_redis_command_names": command_names,
        "post_redis_background_commands": background,
        "visible_in_home_ms": round(visible_ms, 1) if not pending else None,
        "home_sample": READERS,
        "stream_receivers": len(latencies),
        "stream_p50_ms": None if stream["p50"] is None else round(stream["p50"], 1),
        "stream_p99_ms": None if stream["p99"] is None else round(stream["p99"], 1),
    }


def fanout_on_write(followers: int, author_token: str, registry: LargeAccounts, loop: asyncio.AbstractEventLoop,
                    ) -> dict[str, Any]:
    """The same status path without the large-account registry: one timeline entry per follower."""
    r = redis.Redis.from_url(REDIS_URL)
    ids = range(CELEBRITY_FOLLOWERS, CELEBRITY_FOLLOWERS + followers)
    log(f"  fanout on write: materialising {followers:,} home timelines")
    for start in range(0, followers, 20_000):
        pipe = r.pipeline(transaction=False)
        for follower in ids[start:start + 20_000]:
            pipe.unlink(keys.home_feed(follower))
            pipe.rpush(keys.home_feed(follower), keys.FEED_SENTINEL)
        pipe.execute()
    loop.run_until_complete(registry.remove(CELEBRITY_AUTHOR))
    time.sleep(REGISTRY_REFRESH_S)
    try:
        metrics = scrape(FANOUT_METRICS)
        before = sample_sum(metrics, "kicau_fanout_timeline_entries_total")
        read_before = (sample_sum(metrics, "kicau_fanout_follower_read_duration_seconds_sum"),
                       sample_sum(metrics, "kicau_fanout_followers_read_total"))
        started = time.time()
        with httpx.Client(base_url=GATEWAY, timeout=30) as client:
            answer = client.post("/api/v1/statuses", headers={"Authorization": f"Bearer {author_token}"},
                                 json={"status": "fanned out on write"})
            answer.raise_for_status()
            status_id = int(answer.json()["id"])
        # Until every entry is written: the fanout's counter moves once each batch is applied. (Waiting for one
        # particular follower's timeline, as this once did, measured whichever batch that follower fell in: the
        # fanout writes bucket by bucket, in no order of account ids.)
        written = 0.0
        while time.time() - started < 600:
            written = sample_sum(scrape(FANOUT_METRICS), "kicau_fanout_timeline_entries_total") - before
            if written >= followers:
                break
            time.sleep(0.05)
        elapsed = time.time() - started
        metrics = scrape(FANOUT_METRICS)
        # The part spent reading the follower list from Cassandra: all of it when the fanout holds no copy (its
        # first status since it started, or since the copy expired), none when it does.
        read_s = sample_sum(metrics, "kicau_fanout_follower_read_duration_seconds_sum") - read_before[0]
        read_ids = sample_sum(metrics, "kicau_fanout_followers_read_total") - read_before[1]
        sample = [keys.home_feed(ids[i]) for i in (0, followers // 2, followers - 1)]
        if any(r.lpos(key, feed_member(status_id).decode()) is None for key in sample):
            raise BenchError("fanout on write: the counter says done but a sampled timeline lacks the status")
        log(f"  fanout on write: {written:,.0f} entries in {elapsed:.2f}s, of which {read_s:.2f}s reading"
            f" {read_ids:,.0f} follower ids from Cassandra")
    finally:
        loop.run_until_complete(registry.add(CELEBRITY_AUTHOR))
        log("  removing the materialised timelines")
        for start in range(0, followers, 20_000):
            pipe = r.pipeline(transaction=False)
            for follower in ids[start:start + 20_000]:
                pipe.unlink(keys.home_feed(follower))
            pipe.execute()
        r.close()
    return {"fanout_on_write_s": round(elapsed, 2), "fanout_on_write_entries": int(written),
            "fanout_on_write_follower_read_s": round(read_s, 2), "fanout_on_write_followers_read": int(read_ids)}


@dataclass(frozen=True)
class CelebrityOptions:
    followers: int = 1_000_000


def run(options: CelebrityOptions | None = None) -> dict[str, Any]:
    followers = (options or CelebrityOptions()).followers
    log(f"celebrity: an account with {followers:,} followers")
    seeder = Seeder()
    try:
        author_token = seed_followers(seeder, CELEBRITY_AUTHOR, "bench_celebrity", CELEBRITY_FOLLOWERS, followers)
        sample_ids = {CELEBRITY_FOLLOWERS + i * (followers // SAMPLE): f"bench_celebrity_f{i}" for i in range(SAMPLE)}
        sample_tokens = list(seeder.accounts(sample_ids).values())
        # Readers merge large followees from their `following` rows; the bulk seed writes followers rows only.
        now = datetime.now(UTC)
        for follower in sample_ids:
            seeder.session.execute(seeder._rows.following, (follower, CELEBRITY_AUTHOR, now))
    finally:
        seeder.close()
    session = clients.cassandra_session(CommonSettings())
    registry = LargeAccounts(session)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(registry.add(CELEBRITY_AUTHOR))
        time.sleep(REGISTRY_REFRESH_S)
        log("  hybrid: posting once, watching homes and streams")
        result = loop.run_until_complete(hybrid(followers, author_token, sample_tokens))
        log(f"  hybrid: {result['post_redis_commands']} Redis commands, visible in {result['visible_in_home_ms']} ms,"
            f" stream p99 {result['stream_p99_ms']} ms")
        result.update(fanout_on_write(followers, author_token, registry, loop))
    finally:
        loop.close()
        clients.close_cassandra(session)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.celebrity")
    parser.add_argument("--followers", type=int, default=1_000_000)
    print(json.dumps(run(CelebrityOptions(parser.parse_args().followers)), indent=2))

"""Section 2: gateway requests per second for a full home-timeline page and for posting a status, against a
hello-world FastAPI app served with the same uvicorn options, all loaded by wrk (C, one thread) from this
machine. Runs are interleaved (hello, home, post, hello, ...) so a noisy neighbour hits all three alike; the
best run of each is reported, every run is kept.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import profiling
from bench.common import (
    GATEWAY,
    GATEWAY_FRIEND,
    GATEWAY_POSTER,
    GATEWAY_READER,
    ROOT,
    BenchError,
    free_port,
    log,
    wait_for_port,
)
from bench.seed import Seeder

WRK_SCRIPT = Path(__file__).with_name("wrk.lua")
PAGE = 20  # Mastodon's default page: what a client's home request gets


@dataclass
class GatewayOptions:
    connections: int = 32
    seconds: int = 10
    warmup_seconds: int = 3
    rounds: int = 2
    profile: bool = False


def wrk(url: str, *, seconds: int, connections: int, method: str = "GET", token: str | None = None,
        body: str | None = None) -> dict[str, Any]:
    env = {**os.environ, "BENCH_METHOD": method, "BENCH_TOKEN": token or "", "BENCH_BODY": body or ""}
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(WRK_SCRIPT), url]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 60)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line.removeprefix("BENCH_JSON "))
            seconds_run = raw["duration_us"] / 1e6
            errors = sum(v for k, v in raw.items() if k.startswith("errors_"))
            return {
                "rps": round(raw["requests"] / seconds_run, 1),
                "requests": raw["requests"],
                "errors": errors,
                "non_2xx": raw["errors_status"],
                "p50_ms": raw["p50_us"] / 1000,
                "p90_ms": raw["p90_us"] / 1000,
                "p99_ms": raw["p99_us"] / 1000,
                "max_ms": raw["max_us"] / 1000,
            }
    raise BenchError(f"wrk gave no summary: {done.stdout[-500:]} {done.stderr[-500:]}")


async def _prepare_home(reader_token: str, friend_token: str) -> int:
    """Make the reader's home timeline hold at least a full page, through the public API."""
    async with httpx.AsyncClient(base_url=GATEWAY, timeout=30) as client:
        def auth(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        async def page_size() -> int:
            answer = await client.get("/api/v1/timelines/home", params={"limit": PAGE}, headers=auth(reader_token))
            answer.raise_for_status()
            return len(answer.json())

        have = await page_size()  # also materialises the timeline (rebuild from Cassandra) when missing
        if have < PAGE:
            log(f"  posting {PAGE} statuses for the reader's home timeline")
            for i in range(PAGE):
                answer = await client.post("/api/v1/statuses", headers=auth(friend_token),
                                           json={"status": f"bench home page status {i}: " + "lorem ipsum " * 12})
                answer.raise_for_status()
            deadline = time.monotonic() + 30
            while have < PAGE and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                have = await page_size()
        if have < PAGE:
            raise BenchError(f"the reader's home timeline holds {have} statuses, expected {PAGE}")
        return have


async def run(opts: GatewayOptions) -> dict[str, Any]:
    log("gateway: seeding reader, poster and followed account")
    seeder = Seeder()
    try:
        issued = seeder.accounts({GATEWAY_READER: "bench_gw_reader", GATEWAY_POSTER: "bench_gw_poster",
                                  GATEWAY_FRIEND: "bench_gw_friend"})
        seeder.follow([GATEWAY_READER], GATEWAY_FRIEND)
        seeder.set_counts(GATEWAY_FRIEND, followers=1)
        seeder.set_counts(GATEWAY_READER, following=1)
    finally:
        seeder.close()
    reader, poster, friend = issued[GATEWAY_READER], issued[GATEWAY_POSTER], issued[GATEWAY_FRIEND]
    page = await _prepare_home(reader, friend)
    log(f"  reader's home page: {page} statuses")

    port = free_port()
    hello = subprocess.Popen(  # noqa: ASYNC220 (started once, never waited on in the loop)
        [sys.executable, "-m", "bench.hello", "--port", str(port)], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        targets: dict[str, dict[str, Any]] = {
            "hello": {"url": f"http://127.0.0.1:{port}/hello"},
            "home": {"url": f"{GATEWAY}/api/v1/timelines/home", "token": reader},
            "post": {"url": f"{GATEWAY}/api/v1/statuses", "method": "POST", "token": poster,
                     "body": json.dumps({"status": "bench wrk post: " + "lorem ipsum " * 8})},
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        for number in range(opts.rounds):
            for name, target in targets.items():
                if number == 0 and opts.warmup_seconds:
                    await asyncio.to_thread(wrk, target["url"], seconds=opts.warmup_seconds,
                                            connections=opts.connections, method=target.get("method", "GET"),
                                            token=target.get("token"), body=target.get("body"))
                profiler = None
                if opts.profile and number == opts.rounds - 1 and name != "hello":
                    profiler = profiling.start("gateway", seconds=opts.seconds, suffix=f"-{name}")
                result = await asyncio.to_thread(wrk, target["url"], seconds=opts.seconds,
                                                 connections=opts.connections, method=target.get("method", "GET"),
                                                 token=target.get("token"), body=target.get("body"))
                profiling.finish(profiler)
                runs[name].append(result)
                log(f"  round {number + 1}/{opts.rounds} {name:5s}: {result['rps']:8,.0f} req/s  "
                    f"p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms  errors {result['errors']}")
    finally:
        hello.terminate()
        try:
            hello.wait(timeout=15)
        except subprocess.TimeoutExpired:
            hello.kill()

    def clean(run: dict[str, Any]) -> bool:
        # A run with errors (a service restarting under it, timeouts) does not count as throughput.
        return bool(run["errors"] <= 0.01 * max(1, run["requests"]))

    best = {name: max([x for x in r if clean(x)] or r, key=lambda x: x["rps"] if clean(x) else -1)
            for name, r in runs.items()}
    hello_rps = best["hello"]["rps"]
    return {
        "home_rps": best["home"]["rps"],
        "post_rps": best["post"]["rps"],
        "hello_rps": hello_rps,
        "home_ratio": round(best["home"]["rps"] / hello_rps, 3) if hello_rps else None,
        "post_ratio": round(best["post"]["rps"] / hello_rps, 3) if hello_rps else None,
        "home_p99_ms": best["home"]["p99_ms"],
        "post_p99_ms": best["post"]["p99_ms"],
        "hello_p99_ms": best["hello"]["p99_ms"],
        "home_page_statuses": page,
        "runs_with_errors": sum(1 for r in runs.values() for x in r if not clean(x)),
        "load": f"wrk -t1 -c{opts.connections} -d{opts.seconds}s (closed loop), best of {opts.rounds} "
                f"interleaved rounds",
        "runs": runs,
    }

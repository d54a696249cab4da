"""``python -m bench``: every benchmark of issue #6 in one run, side by side on this machine.

Sections (each can be skipped or run alone with ``--only``): fanout, gateway, delivery, memory, celebrity.
The stack must be running (``make up``). Results go to loadtests/results/latest.{json,md} and PNG plots.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from bench import celebrity, delivery, fanout, gateway, memory, profiling, report
from bench.common import (
    LOG_LINES,
    RESULTS,
    STATE,
    BenchError,
    check_stack,
    cpu_ticks,
    ensure_tools,
    fanout_group_members,
    load_average,
    log,
    machine_info,
    steal_share,
    wait_for_stack,
)

SECTIONS = ("fanout", "gateway", "delivery", "memory", "celebrity")
# Which services each section needs up (memory talks to Redis only).
NEEDS: dict[str, tuple[str, ...]] = {"fanout": ("gateway", "fanout"), "gateway": ("gateway",),
                                     "delivery": ("gateway", "fanout"), "memory": (),
                                     "celebrity": ("gateway", "fanout")}


async def _call(function: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """A section's entry point, coroutine or plain function (a plain one runs in a thread, so it may start an
    event loop of its own)."""
    if inspect.iscoroutinefunction(function):
        return dict(await function(*args))
    return dict(await asyncio.to_thread(function, *args))


def _delivery(args: argparse.Namespace) -> Any:
    both = args.stream_transport == "both"
    opts = delivery.DeliveryOptions(streams=args.streams, rates=args.rates, default_rate=args.default_rate,
                                    seconds=args.rate_seconds, transport="sse" if both else args.stream_transport)
    return delivery.run_both(opts) if both else delivery.run(opts)


def _rates(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})")
    p.add_argument("--skip", default="", help="comma-separated sections to skip")
    p.add_argument("--quick", action="store_true", help="smaller sizes and shorter runs (a smoke test, ~3 min)")
    p.add_argument("--profile", action="store_true",
                   help="py-spy profiles of the services each section loads (loadtests/results/profiles/*.folded; "
                        "with --no-write, .stack/bench/profiles/)")
    p.add_argument("--fanout-followers", type=int, default=30_000)
    p.add_argument("--fanout-posts", type=int, default=10)
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--rates", type=_rates, default=delivery.DEFAULT_RATES,
                   help="delivery post rates, e.g. 2,10,25 (default 2,10,15,20,25)")
    p.add_argument("--default-rate", type=float, default=10.0, help="the rate reported in `delivery`")
    p.add_argument("--rate-seconds", type=float, default=15.0)
    p.add_argument("--stream-transport", choices=("both", "sse", "websocket"), default="both",
                   help="how the delivery section's listeners hold their streams: both = every rate over SSE, "
                        "then the default rate over WebSocket")
    p.add_argument("--wrk-seconds", type=int, default=10)
    p.add_argument("--wrk-connections", type=int, default=32)
    p.add_argument("--timelines", type=int, default=1000, help="full timelines for the memory section")
    p.add_argument("--no-write", action="store_true", help="print results, do not write loadtests/results/")
    return p.parse_args(argv)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    wanted = [s for s in (args.only.split(",") if args.only else SECTIONS) if s and s not in args.skip.split(",")]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        raise BenchError(f"unknown sections {sorted(unknown)}; known: {SECTIONS}")
    if args.quick:
        args.fanout_followers = min(args.fanout_followers, 5000)
        args.fanout_posts = min(args.fanout_posts, 5)
        args.streams = min(args.streams, 200)
        args.rate_seconds = min(args.rate_seconds, 5.0)
        args.wrk_seconds = min(args.wrk_seconds, 4)
        args.timelines = min(args.timelines, 100)
    results: dict[str, Any] = {"machine": machine_info()}
    ticks_at_start = cpu_ticks()
    started = time.perf_counter()
    log(f"kicau bench: sections {', '.join(wanted)} on {results['machine']['cores']} cores, "
        f"load average {results['machine']['load_average_at_start']}")
    ensure_tools()
    check_stack()
    members = await fanout_group_members()
    results["machine"]["fanout_group_members"] = members
    if members is not None and members != 1:
        log(f"!! consumer group kicau-fanout has {members} members (expected 1, the stack's fanout): another "
            "process takes some partitions; the fanout and delivery sections may stall")
    plan: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
        "fanout": lambda: fanout.run(fanout.FanoutOptions(followers=args.fanout_followers, posts=args.fanout_posts,
                                                          rounds=1 if args.quick else 2, profile=args.profile)),
        "gateway": lambda: gateway.run(gateway.GatewayOptions(connections=args.wrk_connections,
                                                              seconds=args.wrk_seconds,
                                                              rounds=1 if args.quick else gateway.GatewayOptions.rounds,
                                                              profile=args.profile)),
        "delivery": lambda: _delivery(args),
        "memory": lambda: memory.run(memory.MemoryOptions(timelines=args.timelines)),
        "celebrity": lambda: _call(celebrity.run, celebrity.CelebrityOptions()),
    }
    errors: dict[str, str] = {}
    for index, name in enumerate(wanted, 1):
        log(f"== [{index}/{len(wanted)}] {name}")
        section_started = time.perf_counter()
        problems = await asyncio.to_thread(wait_for_stack, NEEDS[name])
        if problems:
            errors[name] = "stack not ready: " + "; ".join(problems)
            log(f"!! {name} skipped: {errors[name]}")
            continue
        try:
            outcome = await plan[name]()
        except BenchError:
            raise
        except Exception as exc:
            # One broken section must not cost the others' figures: record it and go on.
            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"!! {name} failed: {errors[name]}")
            continue
        outcome["section_seconds"] = round(time.perf_counter() - section_started, 1)
        if name == "memory":
            results["memory"] = outcome
            results["redis_bytes_per_timeline_entry"] = outcome["bytes_per_entry"]
        else:
            results[name] = outcome
        log(f"== {name} done in {outcome['section_seconds']}s")
    results.setdefault("redis_bytes_per_timeline_entry", None)
    if errors:
        results["errors"] = errors
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    results["load_average_at_end"] = load_average()
    results["machine"]["steal_share"] = steal_share(ticks_at_start, cpu_ticks())
    return results


def cli(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.no_write:
        profiling.write_to(STATE / "profiles")
    # SIGTERM (a stopped `make bench`) unwinds like Ctrl-C, so sections still remove what they wrote to Redis.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        results = uvloop.run(main(args))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "make bench" + (f" ARGS='{' '.join(argv)}'" if argv else "")
    if args.no_write:
        import json

        print(json.dumps(results, indent=2))
    else:
        for path in report.write(results, command, log_lines=LOG_LINES):
            log(f"wrote {path.relative_to(RESULTS.parent.parent)}")
        print((RESULTS / "latest.md").read_text())
    return 1 if results.get("errors") else 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))

"""Writing the results: latest.json (the schema of issue #6 plus detail), latest.md (a table with targets) and
PNG plots beside them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import DELIVERY_P99_TARGET_MS, POST_STAGE_NAMES, RESULTS, best_run, write_json

# (section, key, target, comparison, label)
TARGETS = (
    ("fanout", "ratio", 0.5, ">=", "fanout entries/s vs Redis ZADD limit"),
    ("gateway", "home_ratio", 0.5, ">=", "home timeline req/s vs hello world"),
    ("gateway", "post_ratio", 0.25, ">=", "post status req/s vs hello world"),
    ("delivery", "p99_ms", DELIVERY_P99_TARGET_MS, "<=", "stream delivery p99 (ms)"),
)



def _push(fanout: dict[str, Any], fill: str, figure: str = "timelines_per_redis_second") -> Any:
    """A figure of the fanout section's push-script measure (``fill``: "empty" or "full")."""
    return ((fanout.get("push_script") or {}).get(fill) or {}).get(figure)

def _post_path_while_delivering(rates: list[dict[str, Any]]) -> list[str]:
    """Per rate: where a post's answer went and what the machine had left while the streams were written (runs
    from before these keys were recorded have none, and no table)."""
    rows = [r for r in rates if "cpu_cores" in r]
    if not rows:
        return []
    lines = [
        "",
        "While posting at each rate: a post's answer at the gateway and in the post service (p99), the post "
        "service's stages (p99), the JVMs' collections (from their GC logs), the machine's idle share and the "
        "busiest processes in cores:",
        "",
        "| posts/s | gateway p50 / p99 ms | post service p99 ms | card / writes / publish / caches p99 ms "
        "| Cassandra / Kafka pauses (longest ms) | machine idle | busiest processes (cores) |",
        "|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        stages = " / ".join(_fmt(r.get(f"post_{stage}_p99_ms")) for stage in POST_STAGE_NAMES)
        pauses = " / ".join(f"{_fmt(r.get(f'{jvm}_gc_pauses'))} ({_fmt(r.get(f'{jvm}_gc_pause_max_ms'))})"
                            for jvm in ("cassandra", "kafka"))
        busiest = ", ".join(f"{name} {cores:.2f}" for name, cores in list(r["cpu_cores"].items())[:5])
        lines.append(
            f"| {_fmt(r['posts_per_s'])} | {_fmt(r.get('gateway_post_p50_ms'))} / {_fmt(r.get('gateway_post_p99_ms'))} "
            f"| {_fmt(r.get('post_service_p99_ms'))} | {stages} | {pauses} | {_share(r.get('machine_idle_share'))} "
            f"| {busiest} |")
    return lines


def _share(value: Any) -> str:
    """A share as a percentage; runs written before a figure was recorded show a dash."""
    return "—" if not isinstance(value, int | float) else f"{value:.0%}"


def _runs_set_aside(rates: list[dict[str, Any]], max_steal: Any) -> list[str]:
    """A sentence on the rates run again because the hypervisor took too much of the CPU during their first run
    (bench/delivery.py); nothing when none was."""
    again = [(r, first) for r in rates for first in r.get("set_aside") or []]
    if not again:
        return []
    return ["", f"Run again, the hypervisor having taken over {_share(max_steal)} of the machine's CPU during the "
                "first run (the rows above are the second): " + "; ".join(
                    f"{_fmt(r['posts_per_s'])} posts/s{' over ' + r['over'] if 'over' in r else ''} (first run p99 "
                    f"{_fmt(first.get('p99_ms'))} ms, {_share(first.get('machine_steal_share'))} stolen)"
                    for r, first in again) + "."]


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) < 10 and digits < 3:
            return f"{value:.{max(digits, 2)}f}".rstrip("0").rstrip(".") if value else "0"
        return f"{value:,.{digits}f}"
    return str(value)


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for section, key, target, op, label in TARGETS:
        value = (results.get(section) or {}).get(key)
        met = None if value is None else (value >= target if op == ">=" else value <= target)
        out.append({"what": label, "section": section, "key": key, "value": value, "target": f"{op} {target:g}",
                    "met": met})
    return out


def markdown(results: dict[str, Any], command: str) -> str:
    m = results["machine"]
    f = results.get("fanout") or {}
    g = results.get("gateway") or {}
    d = results.get("delivery") or {}
    c = results.get("celebrity") or {}
    lines = [
        "# Kicau benchmark (`make bench`)",
        "",
        f"Run {m.get('when')} on {m.get('cores')} cores, {m.get('memory_gb')} GB "
        f"({m.get('cpu') or 'cpu unknown'}); load average at start {m.get('load_average_at_start')}, "
        f"at end {results.get('load_average_at_end')}; CPU time stolen by the hypervisor over the run "
        f"{_share(m.get('steal_share'))}. Bench wall time {results.get('bench_seconds')} s. "
        f"Command: `{command}`.",
        "",
        "The machine is shared with other work (engines of other checkouts, test suites): figures move "
        "between runs; compare ratios measured in the same run rather than absolute numbers.",
        "",
        "## Targets",
        "",
        "| what | value | target | met |",
        "|---|---:|---:|:---:|",
    ]
    for v in results.get("verdicts", []):
        lines.append(f"| {v['what']} | {_fmt(v['value'], 3)} | {v['target']} | "
                     f"{'—' if v['met'] is None else ('yes' if v['met'] else '**no**')} |")
    lines += [
        "",
        "## 1. Fanout (real fanout service) vs Redis",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| followers of the posting account | {_fmt(f.get('followers'))} |",
        f"| fanout timeline entries/s (wall, post to last entry) | {_fmt(f.get('entries_per_s'))} |",
        f"| fanout entries/s inside its batches | {_fmt(f.get('entries_per_batch_second'))} |",
        f"| Redis ZADD pipelined limit/s | {_fmt(f.get('redis_zadd_pipelined_limit_per_s'))} |",
        f"| ratio (entries/s / ZADD limit) | {_fmt(f.get('ratio'), 3)} |",
        "| Redis ZADD + ZREMRANGEBYRANK limit (entries/s) | "
        f"{_fmt(f.get('redis_zadd_plus_trim_limit_entries_per_s'))} |",
        "| the push script, timelines per second of Redis time: into just-materialised / full timelines | "
        f"{_fmt(_push(f, 'empty'))} / {_fmt(_push(f, 'full'))} |",
        "| the push script, Redis µs per timeline: just-materialised / full | "
        f"{_fmt(_push(f, 'empty', 'redis_us_per_timeline'), 2)} / "
        f"{_fmt(_push(f, 'full', 'redis_us_per_timeline'), 2)} |",
        f"| ratio vs push script into just-materialised timelines | {_fmt(f.get('ratio_vs_push_script'), 3)} |",
        f"| limit command | `{f.get('limit_command', '—')}` |",
        "",
        "## 2. Gateway vs hello world (same uvicorn options)",
        "",
        "| target | req/s | p50 ms | p99 ms | ratio to hello | machine steal |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    runs = g.get("runs") or {}
    targets = [name for name in ("hello", "home", "post", "home_floor", "post_floor") if name in runs]
    for name in targets:
        best = best_run(runs[name])
        ratio = g.get(f"{name}_ratio") if name != "hello" else 1.0
        lines.append(f"| {name.replace('_', ' ')} | {_fmt(best.get('rps'))} | {_fmt(best.get('p50_ms'))} "
                     f"| {_fmt(best.get('p99_ms'))} | {_fmt(ratio, 3)} | {_share(best.get('machine_steal_share'))} |")
    paired = g.get("round_ratios") or {}
    if paired:
        aside = [bool(run.get("set_aside")) for run in runs.get("hello", [])]

        def marked(ratios: list[Any]) -> str:
            return " / ".join(_fmt(r, 3) + ("*" if i < len(aside) and aside[i] else "") for i, r in enumerate(ratios))

        lines += ["", "Each round's ratio to that round's hello world: " + "; ".join(
            f"{name.replace('_', ' ')} {marked(ratios)}" for name, ratios in paired.items() if ratios) + "."]
        if any(aside):
            lines[-1] += (f" Rounds marked * were set aside, the hypervisor having taken over "
                          f"{_share(g.get('max_steal'))} of the CPU during one of their runs; the bests above come "
                          + ("from the others." if not all(aside) else "from all of them, none being kept."))
    if "home_floor" in runs:
        lines += [
            "",
            "The floors (`bench/floor.py`) cross the same hops with the same bytes and durable writes and none of "
            "Kicau's own work: a front where the gateway stands (one Redis round trip like the rate limiter's, "
            "then the gateway's upstream client) and a back where the timeline and post services stand (the "
            "page's cached cards in one Redis round trip; one Cassandra row and one Kafka event with `acks=all`). "
            "The floors still make the round trips Kicau now mostly skips: the front's rate-limiter-shaped one "
            "(the gateway spends leased counts and keeps copies of tokens) and the back's reading of the cards "
            "(the timeline keeps copies of statuses, cards and page ranges; all kicau/tracked_cache.py), so Kicau's "
            "home "
            "reads may come near or past their floor. "
            f"Kicau's home reads run at {_fmt(g.get('home_of_floor'), 3)} of their floor's rate, "
            f"posts at {_fmt(g.get('post_of_floor'), 3)}.",
        ]
    if g.get("home_local_copy_share") is not None:
        lines += ["", f"Reads of statuses, cards and page ranges the home pages took from the timeline's own "
                      f"copies: {_fmt(100 * g['home_local_copy_share'], 1)}%. Every reader here reads the same "
                      "page of a home timeline nobody writes into during the run; a real audience's share depends "
                      "on how much its home timelines overlap and how often they change between reads."]
    if g.get("post_writes_per_batch"):
        lines += ["", "Posts' Cassandra writes per batch (group commit, kicau/write_groups.py; 1 = every write "
                      "alone): " + ", ".join(f"{statement} {_fmt(size, 2)}"
                                            for statement, size in g["post_writes_per_batch"].items()) + "."]
    cpu = g.get("cpu_us_per_request") or {}
    processes = sorted({p for per in cpu.values() for p in per}, key=lambda p: -max(
        per.get(p, 0.0) for per in cpu.values()))
    if processes:
        lines += ["", "CPU per request by process (µs, best run; wrk's own is not counted):", "",
                  "| target | " + " | ".join(processes) + " | total |",
                  "|---|" + "---:|" * (len(processes) + 1)]
        for name in [n for n in ("hello", "home", "post", "home_floor", "post_floor") if n in cpu]:
            per = cpu.get(name) or {}
            cells = " | ".join(_fmt(per.get(p)) if p in per else "—" for p in processes)
            lines.append(f"| {name.replace('_', ' ')} | {cells} | {_fmt(sum(per.values()))} |")
        jit = g.get("jit_us_per_request") or {}
        compiling = [f"{name.replace('_', ' ')}: " + ", ".join(f"{jvm} {_fmt(us)}" for jvm, us in per.items())
                     for name, per in jit.items() if any(us > 0 for us in per.values())]
        if compiling:
            lines += ["", "Of which the JVMs spent JIT compiling (µs per request; a cost of a freshly started stack "
                          "that falls as it warms, not of the request): " + "; ".join(compiling) + "."]
    lines += [
        "",
        f"Load: {g.get('load', '—')}.",
        "",
        f"## 3. Stream delivery latency ({_fmt(d.get('streams'))} SSE streams; the last rows over WebSocket)",
        "",
        "| posts/s | deliveries | p50 ms | p95 ms | p99 ms | max ms | server p50 ms | server p99 ms "
        "| post answer p50 ms | fanout publish lag p99 ms | GC pauses gateway / fanout (longest ≤ ms) "
        "| machine steal | client µs a delivery |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    websocket_rates = [{**r, "over": "WebSocket"} for r in (d.get("websocket") or {}).get("rates", [])]
    for r in [*d.get("rates", []), *websocket_rates]:
        pauses = " / ".join(
            f"{_fmt(r.get(f'{p}_gc_pauses'))} ({_fmt(r.get(f'{p}_gc_pause_max_ms_at_most'))})"
            for p in ("gateway", "fanout"))
        over = f" over {r['over']}" if "over" in r else ""
        lines.append(
            f"| {_fmt(r['posts_per_s'])}{over} | {_fmt(r['deliveries'])}/{_fmt(r['expected_deliveries'])} | "
            f"{_fmt(r['p50_ms'])} | {_fmt(r['p95_ms'])} | {_fmt(r['p99_ms'])} | {_fmt(r['max_ms'])} | "
            f"{_fmt(r['server_p50_ms'])} | {_fmt(r['server_p99_ms'])} | {_fmt(r['post_answer_p50_ms'])} | "
            f"{_fmt(r.get('fanout_publish_lag_p99_ms'))} | {pauses} | {_share(r.get('machine_steal_share'))} | "
            f"{_fmt(r.get('client_cpu_us_per_delivery'))} |")
    capacity = d.get("p99_within_target_up_to_posts_per_s")
    streams = d.get("streams") or 0
    rate = "—" if capacity is None else f"{capacity:g}"
    lines += [
        "",
        f"p99 within {DELIVERY_P99_TARGET_MS:g} ms up to **{rate} posts/s** over SSE "
        f"({_fmt(int(capacity * streams)) if capacity else '—'} deliveries a second): the highest rate measured "
        "that met it with every lower one meeting it too." if "p99_within_target_up_to_posts_per_s" in d else
        "(Run before the capacity line was reported.)",
        "",
        "Client latency = frame arrival - status `created_at` (ms precision), timed by bench/listeners (Go, a "
        "level-triggered epoll a core; its own CPU in the last column); server = gateway histogram "
        "`kicau_stream_delivery_latency_seconds` (accepted → written), interpolated inside its buckets. Fanout "
        "publish lag = `kicau_fanout_publish_lag_seconds` (accepted → published to the gateways); GC pauses = "
        "collections during the rate and the bucket bound of the longest (`kicau_gc_pause_seconds`).",
        *_runs_set_aside([*d.get("rates", []), *websocket_rates], d.get("max_steal")),
        *_post_path_while_delivering(d.get("rates", [])),
        "",
        "## 4. Redis memory",
        "",
        f"{_fmt(results.get('redis_bytes_per_timeline_entry'), 2)} bytes per home-timeline entry "
        f"(`MEMORY USAGE`, {_fmt((results.get('memory') or {}).get('timelines'))} full timelines, encoding "
        f"{(results.get('memory') or {}).get('encoding', '—')}).",
        "",
        "## 5. Celebrity (large account)",
        "",
        "| figure | value |",
        "|---|---:|",
    ]
    for key in ("followers", "post_redis_commands", "visible_in_home_ms", "stream_p99_ms", "fanout_on_write_s",
                "fanout_on_write_follower_read_s", "fanout_on_write_followers_read"):
        lines.append(f"| {key} | {_fmt(c.get(key))} |")
    if c.get("todo"):
        lines += ["", f"_{c['todo']}_"]
    lines += ["", "Plots: `delivery_latency.png`, `fanout_throughput.png`, `gateway_throughput.png`.", ""]
    return "\n".join(lines)


def plots(results: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    d = results.get("delivery") or {}
    rates = d.get("rates") or []
    if rates:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        x = [r["posts_per_s"] for r in rates]
        for key, style, label in (("p50_ms", "o-", "client p50"), ("p95_ms", "s-", "client p95"),
                                  ("p99_ms", "^-", "client p99"), ("server_p99_ms", "v--", "server p99")):
            ax.plot(x, [float("nan") if r.get(key) is None else r[key] for r in rates], style, label=label)
        ax.axhline(DELIVERY_P99_TARGET_MS, color="red", linestyle=":",
                   label=f"target p99 {DELIVERY_P99_TARGET_MS:g} ms")
        ax.set_xlabel("posts per second (open loop)")
        ax.set_ylabel("status → stream delivery (ms)")
        ax.set_title(f"Delivery latency vs load, {d.get('streams')} SSE streams")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "delivery_latency.png", dpi=110)
        plt.close(fig)
        written.append("delivery_latency.png")

    f = results.get("fanout") or {}
    if f.get("entries_per_s"):
        candidates = [("fanout\nentries/s", f.get("entries_per_s")),
                ("Redis ZADD\nlimit", f.get("redis_zadd_pipelined_limit_per_s")),
                ("Redis ZADD+trim\nlimit", f.get("redis_zadd_plus_trim_limit_entries_per_s")),
                ("push script,\nempty timelines", _push(f, "empty")),
                ("push script,\nfull timelines", _push(f, "full"))]
        bars: list[tuple[str, float]] = [(n, float(v)) for n, v in candidates if v]
        fig, ax = plt.subplots(figsize=(7, 4.2))
        colors = ["tab:blue"] + ["tab:gray"] * (len(bars) - 1)
        ax.bar([n for n, _ in bars], [v for _, v in bars], color=colors)
        limit = float(f.get("redis_zadd_pipelined_limit_per_s") or 0)
        ax.axhline(limit * 0.5, color="red", linestyle=":", label="target: 50% of ZADD limit")
        for i, (_, v) in enumerate(bars):
            ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=9)
        ax.set_ylabel("per second")
        ax.set_title(f"Fanout throughput vs Redis limit ({f.get('followers'):,} followers)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "fanout_throughput.png", dpi=110)
        plt.close(fig)
        written.append("fanout_throughput.png")

    g = results.get("gateway") or {}
    if g.get("hello_rps"):
        names = ["hello world", "GET home", "POST status"]
        values = [g["hello_rps"], g.get("home_rps") or 0, g.get("post_rps") or 0]
        colours = ["tab:gray", "tab:blue", "tab:orange"]
        if g.get("home_floor_rps"):
            names += ["home floor", "post floor"]
            values += [g["home_floor_rps"], g.get("post_floor_rps") or 0]
            colours += ["lightsteelblue", "navajowhite"]
        fig, ax = plt.subplots(figsize=(8, 4.2))
        ax.bar(names, values, color=colours)
        ax.axhline(g["hello_rps"] * 0.5, color="red", linestyle=":", label="target home: 50% of hello")
        ax.axhline(g["hello_rps"] * 0.25, color="purple", linestyle=":", label="target post: 25% of hello")
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=9)
        ax.set_ylabel("requests per second (wrk)")
        ax.set_title("Gateway throughput vs hello world and the design's floor (same uvicorn options)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "gateway_throughput.png", dpi=110)
        plt.close(fig)
        written.append("gateway_throughput.png")
    return written


def write(results: dict[str, Any], command: str, out: Path = RESULTS,
          log_lines: Sequence[str] = ()) -> list[Path]:
    """latest.json, latest.md, the plots and, with ``log_lines``, the run's progress log (latest.log): each from
    this run, so that none of them describes an earlier one."""
    results["verdicts"] = verdicts(results)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "latest.json", results)
    (out / "latest.md").write_text(markdown(results, command))
    written = [out / "latest.json", out / "latest.md"]
    if log_lines:
        (out / "latest.log").write_text("".join(f"{line}\n" for line in log_lines))
        written.append(out / "latest.log")
    written += [out / name for name in plots(results, out)]
    return written

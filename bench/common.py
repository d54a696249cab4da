"""What every benchmark section shares: progress output, the running stack's addresses, Prometheus scrapes,
histogram quantiles, external tools and the machine's description.

Everything here talks to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from stack.services import redis_url

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "loadtests" / "results"
STATE = ROOT / ".stack" / "bench"  # git-ignored: the bench's per-machine token secret and scratch files

# The stack's own port variables (what `python -m stack up` reads) pick the addresses, so a bench pointed at a
# second stack on other ports talks to that stack only; KICAU_BENCH_* still override them.
GATEWAY = os.environ.get("KICAU_BENCH_GATEWAY", f"http://127.0.0.1:{os.environ.get('KICAU_GATEWAY_PORT', '8080')}")
FANOUT_METRICS = os.environ.get(
    "KICAU_BENCH_FANOUT_METRICS", f"http://127.0.0.1:{os.environ.get('KICAU_FANOUT_PORT', '8083')}/metrics")
TIMELINE_METRICS = os.environ.get(
    "KICAU_BENCH_TIMELINE_METRICS", f"http://127.0.0.1:{os.environ.get('KICAU_TIMELINE_PORT', '8082')}/metrics")
POST_METRICS = os.environ.get(
    "KICAU_BENCH_POST_METRICS", f"http://127.0.0.1:{os.environ.get('KICAU_POST_PORT', '8081')}/metrics")
KAFKA_BOOTSTRAP = os.environ.get("KICAU_KAFKA_BOOTSTRAP", f"127.0.0.1:{os.environ.get('KICAU_KAFKA_PORT', '9092')}")
GATEWAY_METRICS = f"{GATEWAY}/metrics"
DELIVERY_P99_TARGET_MS = 100.0  # issue #6: status -> stream delivery p99 with 1,000 open streams
REDIS_HOST = "127.0.0.1"
REDIS_PORT = int(os.environ.get("KICAU_REDIS_PORT", "6379"))
# As the services reach Redis (stack/services.py): on the stack's Unix socket when it has one.
REDIS_URL = os.environ.get("KICAU_REDIS_URL") or redis_url()
# The socket in REDIS_URL, for tools that take a path (redis-benchmark -s), or None over TCP.
REDIS_SOCKET = urlsplit(REDIS_URL).path if REDIS_URL.startswith("unix:") else None

# Bench accounts live in an id range no snowflake reaches before the year 2200 (snowflakes are ms << 16), so
# everything the bench writes in Redis can be found and removed by id, and never collides with real users.
BENCH_BASE = 8_000_000_000_000_000_000
FANOUT_AUTHORS = BENCH_BASE + 100_000  # + follower count: one author per size, so sizes never mix
FANOUT_FOLLOWERS = BENCH_BASE + 1_000_000  # .. + followers
DELIVERY_POSTERS = BENCH_BASE + 10  # .. + posters
DELIVERY_LISTENERS = BENCH_BASE + 2_000_000  # .. + streams
GATEWAY_FRIEND = BENCH_BASE + 3_000_003  # the account the gateway section's readers follow
GATEWAY_READERS = BENCH_BASE + 3_100_000  # .. + accounts (load spread over accounts: per-account rate limits)
GATEWAY_POSTERS = BENCH_BASE + 3_200_000  # .. + accounts
MEMORY_FEEDS = BENCH_BASE + 4_000_000  # .. + timelines (Redis only, no accounts)
PUSH_TIMELINES = BENCH_BASE + 4_500_000  # .. + timelines: the fanout section's push-script measure (Redis only)
CELEBRITY_AUTHOR = BENCH_BASE + 5  # reserved for the celebrity section
CELEBRITY_FOLLOWERS = BENCH_BASE + 6_000_000  # reserved for the celebrity section

_STARTED = time.monotonic()
# Every progress line of this run, written beside the results as latest.log (bench/report.py).
LOG_LINES: list[str] = []


def log(message: str) -> None:
    """One progress line with the time since the bench started."""
    elapsed = time.monotonic() - _STARTED
    line = f"[{int(elapsed // 60):02d}:{elapsed % 60:05.2f}] {message}"
    LOG_LINES.append(line)
    print(line, flush=True)


class BenchError(RuntimeError):
    """A precondition the bench cannot fix by itself (stack not running, tool missing)."""


# --- external tools -----------------------------------------------------------------------------------------

_TOOLS = {"wrk": "wrk", "redis-benchmark": "redis-tools"}


def ensure_tools() -> None:
    """wrk and redis-benchmark come from Debian; install them when missing (root only)."""
    missing = sorted({pkg for tool, pkg in _TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BenchError(f"missing tools {missing}: install them (apt-get install -y {' '.join(missing)})")
    log(f"installing {' '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *missing]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        subprocess.run(install, env=env, capture_output=True, check=True)
    still = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if still:
        raise BenchError(f"could not install {still}")


def wait_for_stack(needs: tuple[str, ...] = ("gateway", "fanout"), patience_s: float = 180.0) -> list[str]:
    """Poll until the gateway and the fanout answer (the stack is shared and may be restarted between
    sections); the problems still seen when patience runs out, or an empty list."""
    deadline = time.monotonic() + patience_s
    problems = stack_problems(needs)
    if problems:
        log(f"  waiting up to {patience_s:.0f}s for the stack: {'; '.join(problems)}")
    while problems and time.monotonic() < deadline:
        time.sleep(2.0)
        problems = stack_problems(needs)
    return problems


def check_stack() -> None:
    problems = stack_problems(("gateway",))
    if problems:
        raise BenchError("the stack is not ready (" + "; ".join(problems) + "); start it with `make up`")


def stack_problems(needs: tuple[str, ...] = ("gateway", "fanout")) -> list[str]:
    problems = []
    probes = {"gateway": f"{GATEWAY}/readyz", "fanout": FANOUT_METRICS}
    for name, url in ((n, probes[n]) for n in needs):
        try:
            answer = httpx.get(url, timeout=5)
            if answer.status_code != 200:
                problems.append(f"{name}: HTTP {answer.status_code}")
        except httpx.HTTPError as exc:
            problems.append(f"{name}: {exc}")
    return problems


async def fanout_group_members(bootstrap: str = KAFKA_BOOTSTRAP, group: str = "kicau-fanout") -> int | None:
    """Members of the fanout's consumer group: a stray worker from elsewhere (e.g. a test that forgot to point
    its own fanout at its own Kafka) takes partitions, and what it does with them is not measured here."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), 10)
        described = await asyncio.wait_for(admin.describe_consumer_groups([group]), 10)
        return sum(len(g.groups[0][5]) for g in described if g.groups)
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def service_pid(name: str) -> int | None:
    try:
        return int((ROOT / ".stack" / "services" / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None



def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


# --- Prometheus -----------------------------------------------------------------------------------------------

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    text = httpx.get(url, timeout=10).text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return samples


def sample_sum(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and wanted <= set(lab))


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts (upper bound -> count), as Prometheus exposes them, and their sum."""

    buckets: tuple[tuple[float, float], ...]
    total: float
    count: float

    @staticmethod
    def read(samples: Samples, name: str, **labels: str) -> Histogram:
        """Every series of ``name`` whose labels include ``labels``, summed bucket by bucket."""
        wanted = set(labels.items())
        bounds: dict[float, float] = {}
        for (n, series), value in samples.items():
            if n == f"{name}_bucket" and wanted <= set(series):
                bound = float(dict(series)["le"])
                bounds[bound] = bounds.get(bound, 0.0) + value
        return Histogram(
            buckets=tuple(sorted(bounds.items())),
            total=sample_sum(samples, f"{name}_sum", **labels),
            count=sample_sum(samples, f"{name}_count", **labels),
        )

    def minus(self, before: Histogram) -> Histogram:
        old = dict(before.buckets)
        return Histogram(
            buckets=tuple((b, c - old.get(b, 0.0)) for b, c in self.buckets),
            total=self.total - before.total,
            count=self.count - before.count,
        )

    def quantile(self, q: float) -> float | None:
        """Linear interpolation inside the bucket that holds the q-quantile, like PromQL's histogram_quantile."""
        if self.count <= 0 or not self.buckets:
            return None
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0.0
        for bound, count in self.buckets:
            if count >= rank:
                if bound == float("inf"):
                    return lower_bound
                span = count - lower_count
                fraction = (rank - lower_count) / span if span > 0 else 1.0
                return lower_bound + (bound - lower_bound) * fraction
            lower_bound, lower_count = bound, count
        return lower_bound

    def upper_bound_of_largest(self) -> float | None:
        """The bucket bound under which every observation fell: an upper bound on the largest one."""
        for bound, count in self.buckets:
            if count >= self.count > 0:
                return bound
        return None


def percentiles(values: Sequence[float], qs: Iterable[float] = (0.5, 0.95, 0.99)) -> dict[str, float | None]:
    """Nearest-rank percentiles, keyed p50/p95/p99/..."""
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for q in qs:
        key = f"p{round(q * 100, 1):g}".replace(".", "_")
        if not ordered:
            out[key] = None
            continue
        rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
        out[key] = ordered[rank]
    return out


# --- the machine ------------------------------------------------------------------------------------------------


def machine_info() -> dict[str, object]:
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu": cpu_model,
        "load_average_at_start": load,
        "python": sys.version.split()[0],
        "kernel": platform.release(),
    }


def cpu_ticks() -> tuple[int, int]:
    """(stolen, all) clock ticks of the machine's CPUs so far (``/proc/stat``; (0, 0) where unreadable).

    Steal is time the hypervisor ran something else while this virtual machine had work to run: during a run it
    slows everything measured alike, and no load average shows it."""
    fields = _machine_ticks()
    return (fields[7] if len(fields) > 7 else 0), sum(fields)


def _machine_ticks() -> list[int]:
    """The machine's CPU time so far in clock ticks, by kind (``/proc/stat``: user nice system idle iowait irq
    softirq steal); empty where unreadable."""
    try:
        with open("/proc/stat") as stat:
            return [int(value) for value in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return []


def idle_ticks() -> tuple[int, int]:
    """(idle, all) clock ticks of the machine's CPUs so far, iowait counted as idle; (0, 0) where unreadable."""
    fields = _machine_ticks()
    return (fields[3] + fields[4], sum(fields)) if len(fields) > 4 else (0, 0)


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """Of the machine's CPU time between two ``cpu_ticks()`` (or ``idle_ticks()``), the share stolen by the
    hypervisor (or left idle)."""
    elapsed = after[1] - before[1]
    return round((after[0] - before[0]) / elapsed, 3) if elapsed > 0 else None


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=False) + "\n")


STACK_SERVICES = ("gateway", "graph", "post", "timeline", "fanout")
_JVMS = ("cassandra", "kafka")
_ENGINE_PID_FILES = {"cassandra": ROOT / ".stack" / "cassandra" / "pid", "kafka": ROOT / ".stack" / "kafka" / "pid"}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# The JVMs' collection logs (stack/engines.py, gc_log_flags): one line a pause, e.g.
# ``[2026-12-06T15:48:29.805+0000][2644ms] GC(0) Pause Young (Normal) (G1 Evacuation Pause) 52M->12M(1024M) 41.614ms``
ENGINE_GC_LOGS = {name: path.with_name("gc.log") for name, path in _ENGINE_PID_FILES.items()}


def jvm_pauses(log: Path, start: datetime, end: datetime) -> list[float]:
    """The stop-the-world pauses (ms) that began between two moments, from a JVM's GC log (``ENGINE_GC_LOGS``)
    and the file it rotated into, if any; in the order they began; empty when there is no log."""
    pauses: list[tuple[datetime, float]] = []
    for path in sorted(log.parent.glob(f"{log.name}*")):
        with contextlib.suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                if " Pause " not in line or not line.startswith("[") or not line.endswith("ms"):
                    continue
                try:
                    at = datetime.strptime(line[1:line.index("]")], "%Y-%m-%dT%H:%M:%S.%f%z")
                    took = float(line.rsplit(" ", 1)[1][:-2])
                except ValueError:
                    continue
                if start <= at <= end:
                    pauses.append((at, took))
    return [took for _, took in sorted(pauses)]


# The post service's stages (services/post/service.py and store.py, ``kicau_post_stage_duration_seconds``), in the
# order a status goes through them.
POST_STAGE_NAMES = ("card", "status_writes", "publish", "caches")


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time a process has used so far (Linux ``/proc``), or None if it is gone."""
    try:
        return _cpu_seconds_of(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None


def _cpu_seconds_of(stat: str) -> float:
    """User plus system CPU time in a ``/proc/<pid>/stat`` (or ``/proc/<pid>/task/<tid>/stat``) line."""
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


# A JVM's just-in-time compiler threads (``C1 CompilerThre``, ``C2 CompilerThre`` as /proc cuts their names).
_JIT_THREAD_PREFIXES = ("C1 CompilerThre", "C2 CompilerThre")


def jit_seconds(pid: int) -> float:
    """CPU time a JVM's JIT compiler threads have used so far (0 for any other process, or one gone). Right after
    the stack starts, compiling is up to half of Cassandra's and Kafka's CPU (measured per thread under load), a
    cost that falls away as they warm; reported apart so that it is not mistaken for the cost of a request."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            if task.joinpath("comm").read_text().startswith(_JIT_THREAD_PREFIXES):
                total += _cpu_seconds_of(task.joinpath("stat").read_text())
        except OSError:
            continue  # the thread ended meanwhile
    return total


def stack_pids(redis_pid: int | None) -> dict[str, int]:
    """Every process of the running stack by name: the services, Redis, Cassandra and Kafka."""
    pids = {name: pid for name in STACK_SERVICES if (pid := service_pid(name)) is not None}
    for name, path in _ENGINE_PID_FILES.items():
        with contextlib.suppress(OSError, ValueError):
            pids[name] = int(path.read_text().strip())
    if redis_pid is not None:
        pids["redis"] = redis_pid
    return pids


class CpuMeter:
    """CPU time per request of each process, over one load run: where the machine's time went."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._before: dict[str, float] = {}
        self._after: dict[str, float] = {}
        self._jit_before: dict[str, float] = {}
        self._jit_after: dict[str, float] = {}
        self._ticks_before = self._ticks_after = (0, 0)
        self._idle_before = self._idle_after = (0, 0)
        self._started = self._seconds = 0.0

    def _jit(self) -> dict[str, float]:
        return {name: jit_seconds(pid) for name, pid in self._pids.items() if name in _JVMS}

    def __enter__(self) -> CpuMeter:
        self._before = {name: used for name, pid in self._pids.items() if (used := cpu_seconds(pid)) is not None}
        self._jit_before = self._jit()
        self._ticks_before, self._idle_before = cpu_ticks(), idle_ticks()
        self._started = time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        self._seconds = time.monotonic() - self._started
        self._ticks_after, self._idle_after = cpu_ticks(), idle_ticks()
        self._after = {name: used for name, pid in self._pids.items() if (used := cpu_seconds(pid)) is not None}
        self._jit_after = self._jit()

    def steal_share(self) -> float | None:
        """The machine's CPU time stolen by the hypervisor during the run (see ``cpu_ticks``)."""
        return steal_share(self._ticks_before, self._ticks_after)

    def idle_share(self) -> float | None:
        """The machine's CPU time left idle during the run (all cores together)."""
        return steal_share(self._idle_before, self._idle_after)

    def cores(self) -> dict[str, float]:
        """Each process's CPU over the run, in cores (1.0 = one core busy all along), busiest first."""
        if self._seconds <= 0:
            return {}
        used = {name: round((self._after[name] - before) / self._seconds, 2)
                for name, before in self._before.items() if name in self._after}
        return dict(sorted(used.items(), key=lambda item: item[1], reverse=True))

    def per_request_us(self, requests: int) -> dict[str, float]:
        if not requests:
            return {}
        return {name: round((self._after[name] - before) / requests * 1e6, 1)
                for name, before in self._before.items() if name in self._after}

    def jit_per_request_us(self, requests: int) -> dict[str, float]:
        """Of ``per_request_us``, what each JVM spent compiling (see ``jit_seconds``)."""
        if not requests:
            return {}
        return {name: round((self._jit_after[name] - before) / requests * 1e6, 1)
                for name, before in self._jit_before.items() if name in self._jit_after}


# The gateway section's rounds (bench/gateway.py), and its report (bench/report.py).
def clean(run: dict[str, Any]) -> bool:
    """Whether a run counts as throughput: one with errors (a service restarting under it, timeouts) does not."""
    return bool(run["errors"] <= 0.01 * max(1, run["requests"]))


def round_stolen(round_runs: list[dict[str, Any]], max_steal: float) -> bool:
    """Whether the hypervisor took more than ``max_steal`` of the machine's CPU during any run of a round."""
    return any((run.get("machine_steal_share") or 0.0) > max_steal for run in round_runs)


def best_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A target's fastest run among the clean ones of the rounds kept; failing that, among the clean ones; failing
    that, among all."""
    for pool in ([r for r in runs if clean(r) and not r.get("set_aside")], [r for r in runs if clean(r)], runs):
        if pool:
            return max(pool, key=lambda r: r["rps"])
    raise ValueError("no runs")

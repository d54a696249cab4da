"""At each post rate the delivery section also records where the post path's time went and what the machine had
left: the JVMs' pauses from their GC logs, each process's CPU in cores and the machine's idle share. Read from
the running stack's real logs and processes, and shown in the report (results from before show no table)."""

from __future__ import annotations

import copy
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import report
from bench.common import ENGINE_GC_LOGS, CpuMeter, jvm_pauses

COMMITTED = Path(__file__).resolve().parents[2] / "loadtests" / "results" / "latest.json"
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def test_pauses_are_read_between_two_moments_from_the_log_and_the_file_it_rotated_into(tmp_path: Path) -> None:
    log = tmp_path / "gc.log"
    (tmp_path / "gc.log.0").write_text(
        "[2026-12-06T15:48:27.164+0000][3ms] Using G1\n"
        "[2026-12-06T15:48:29.805+0000][2644ms] GC(0) Pause Young (Normal) (G1 Evacuation Pause) "
        "52M->12M(1024M) 41.614ms\n")
    log.write_text(
        "[2026-12-06T15:49:30.620+0000][63504ms] GC(15) Pause Young (Concurrent Start) (G1 Evacuation Pause) "
        "175M->164M(285M) 10.843ms\n"
        "[2026-12-06T15:49:30.700+0000][63583ms] GC(16) Concurrent Mark Cycle 80.123ms\n"  # not a pause
        "[2026-12-06T15:49:30.701+0000][63584ms] GC(16) Pause Remark 164M->164M(285M) 9.521ms\n"
        "[2026-12-06T15:49:31.000+0000][63900ms] GC(17) Pause Young (Normal) (G1 Evacuation Pause) 17")  # cut short
    start = datetime(2026, 12, 6, 15, 48, 29, tzinfo=UTC)
    assert jvm_pauses(log, start, start + timedelta(minutes=2)) == [41.614, 10.843, 9.521]
    assert jvm_pauses(log, start + timedelta(seconds=61), start + timedelta(minutes=2)) == [10.843, 9.521]
    assert jvm_pauses(log, start + timedelta(minutes=2), start + timedelta(minutes=3)) == []
    assert jvm_pauses(tmp_path / "absent" / "gc.log", LONG_AGO, datetime.now(UTC)) == []


def test_the_stacks_jvms_log_their_pauses_where_the_bench_reads_them() -> None:
    # Both engines collected while starting (Cassandra's first young collections come within seconds of its
    # start), so their logs, written by the flags stack/engines.py starts them with, hold pauses already.
    for engine, log in ENGINE_GC_LOGS.items():
        assert log.exists(), f"{engine} writes no GC log at {log}"
        assert jvm_pauses(log, LONG_AGO, datetime.now(UTC)), f"{engine}'s GC log has no pause in it"


def test_cores_are_each_process_cpu_over_the_run_and_idle_is_the_machines_share_left() -> None:
    with CpuMeter({"this test": os.getpid()}) as meter:
        until = time.process_time() + 0.3
        while time.process_time() < until:
            pass  # busy for 0.3 s of CPU
    cores = meter.cores()
    assert set(cores) == {"this test"} and 0.3 <= cores["this test"] <= 1.05
    idle = meter.idle_share()
    assert idle is not None and 0.0 <= idle <= 1.0
    assert idle <= 1.0 - cores["this test"] / (os.cpu_count() or 1) + 0.1  # this process was not idle


def test_the_report_tables_the_post_path_at_each_rate_where_recorded() -> None:
    committed = json.loads(COMMITTED.read_text())
    older = copy.deepcopy(committed)
    for row in older["delivery"]["rates"]:
        row.pop("cpu_cores", None)
    assert "While posting at each rate" not in report.markdown(older, "make bench")
    recorded = copy.deepcopy(committed)
    row = recorded["delivery"]["rates"][-1]
    row.update({
        "posts_per_s": 25.0, "gateway_post_p50_ms": 9.1, "gateway_post_p99_ms": 51.6, "post_service_p99_ms": 38.3,
        "post_card_p99_ms": 10.9, "post_status_writes_p99_ms": 8.3, "post_publish_p99_ms": 14.7,
        "post_caches_p99_ms": 11.2, "cassandra_gc_pauses": 0, "cassandra_gc_pause_max_ms": None,
        "kafka_gc_pauses": 1, "kafka_gc_pause_max_ms": 22.6, "machine_idle_share": 0.273,
        "cpu_cores": {"gateway": 0.39, "listeners": 0.36, "cassandra": 0.24, "redis": 0.16, "fanout": 0.12,
                      "post": 0.07},
    })
    page = report.markdown(recorded, "make bench")
    assert ("| 25.0 | 9.1 / 51.6 | 38.3 | 10.9 / 8.3 / 14.7 / 11.2 | 0 (—) / 1 (22.6) | 27% | gateway 0.39, "
            "listeners 0.36, cassandra 0.24, redis 0.16, fanout 0.12 |") in page

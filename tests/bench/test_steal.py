"""The bench records how much of the machine's CPU time the hypervisor stole during each run (bench/common.py),
and the report shows it beside the figures it may have slowed; results written before it was recorded still
render, with a dash. A gateway round in which the hypervisor took too much is set aside, and its runs decide no
best."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from bench import report
from bench.common import CpuMeter, best_run, cpu_ticks, round_stolen, steal_share

COMMITTED = Path(__file__).resolve().parents[2] / "loadtests" / "results" / "latest.json"


def test_the_ticks_grow_and_the_share_is_of_the_ticks_between_two_readings() -> None:
    stolen, total = cpu_ticks()
    assert 0 <= stolen <= total and total > 0
    assert steal_share((10, 1_000), (60, 2_000)) == 0.05
    assert steal_share((10, 1_000), (10, 1_000)) is None  # no time passed: no share to tell
    with CpuMeter({}) as meter:
        sum(range(200_000))
    share = meter.steal_share()
    assert share is None or 0.0 <= share <= 1.0


def test_the_report_shows_steal_where_recorded_and_a_dash_where_not() -> None:
    committed = json.loads(COMMITTED.read_text())
    committed["machine"].pop("steal_share", None)
    page = report.markdown(committed, "make bench")
    assert "over the run —" in page and "| machine steal |" in page
    recorded = copy.deepcopy(committed)
    recorded["machine"]["steal_share"] = 0.283
    for run in recorded["gateway"]["runs"]["post"]:
        run["machine_steal_share"] = 0.31
    page = report.markdown(recorded, "make bench")
    assert "over the run 28%" in page
    assert "| 31% |" in page


def run(rps: float, steal: float | None, *, errors: int = 0, set_aside: bool = False) -> dict[str, object]:
    return {"rps": rps, "requests": int(rps * 10), "errors": errors, "machine_steal_share": steal,
            "set_aside": set_aside}


def test_a_round_with_a_run_over_the_steal_limit_is_stolen() -> None:
    assert not round_stolen([run(6_000, 0.02), run(3_000, 0.10), run(500, None)], 0.10)
    assert round_stolen([run(6_000, 0.02), run(3_000, 0.11)], 0.10)
    assert not round_stolen([], 0.10)


def test_the_best_run_comes_from_the_rounds_kept_then_the_clean_ones_then_all() -> None:
    # The fastest run was in a round set aside (its hello world slowed by the hypervisor, say): not the best.
    kept, stolen = run(3_000, 0.01), run(3_500, 0.30, set_aside=True)
    assert best_run([kept, stolen]) is kept
    # A run with errors does not count even in a round kept.
    failing = run(9_000, 0.0, errors=5_000)
    assert best_run([kept, failing, stolen]) is kept
    # No round kept: the fastest clean run of all; none clean: the fastest of all.
    assert best_run([stolen, run(2_000, 0.4, set_aside=True)]) is stolen
    assert best_run([failing]) is failing


def test_the_report_marks_the_rounds_set_aside_and_takes_the_bests_from_the_others() -> None:
    results = json.loads(COMMITTED.read_text())
    gateway = results["gateway"]
    gateway["max_steal"] = 0.10
    gateway["runs"] = {"hello": [run(6_000, 0.02), run(9_000, 0.35, set_aside=True)],
                       "home": [run(3_000, 0.03), run(2_000, 0.20, set_aside=True)]}
    gateway["round_ratios"] = {"home": [0.5, 0.222]}
    page = report.markdown(results, "make bench")
    assert "| hello | 6,000 |" in page  # not the 9,000 of the round set aside
    assert "home 0.500 / 0.222*." in page
    assert "Rounds marked * were set aside" in page and "over 10% of the CPU" in page


def test_the_report_names_the_delivery_rates_run_again_and_what_their_first_run_gave() -> None:
    results = json.loads(COMMITTED.read_text())
    delivery = results["delivery"]
    page = report.markdown(results, "make bench")
    assert "Run again" not in page  # a run with nothing set aside (or from before it was done) says nothing
    delivery["max_steal"] = 0.10
    delivery["rates"][1]["set_aside"] = [{"p50_ms": 37.9, "p99_ms": 105.1, "server_p99_ms": 95.8,
                                          "deliveries": 150_000, "expected_deliveries": 150_000,
                                          "machine_steal_share": 0.21}]
    page = report.markdown(results, "make bench")
    assert "Run again, the hypervisor having taken over 10% of the machine's CPU" in page
    assert "posts/s (first run p99 105.1 ms, 21% stolen)." in page

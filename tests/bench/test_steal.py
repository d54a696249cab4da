"""The bench records how much of the machine's CPU time the hypervisor stole during each run (bench/common.py),
and the report shows it beside the figures it may have slowed; results written before it was recorded still
render, with a dash."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from bench import report
from bench.common import CpuMeter, cpu_ticks, steal_share

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

"""What `make bench` writes beyond the targets: each gateway round's ratio to the hello world run of the same round
(bench/gateway.py; the best-of-rounds ratio divides two runs minutes apart, and these show how much the machine's
phase moved it), and the run's own progress log beside its results."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report
from bench.gateway import round_ratios

COMMITTED = Path(__file__).resolve().parents[2] / "loadtests" / "results" / "latest.json"


def test_each_round_is_divided_by_its_own_hello_world() -> None:
    runs = {"hello": [{"rps": 10_000.0}, {"rps": 8_000.0}], "home": [{"rps": 5_000.0}, {"rps": 4_400.0}],
            "post": [{"rps": 900.0}]}
    assert round_ratios(runs) == {"home": [0.5, 0.55], "post": [0.09]}
    assert round_ratios({"hello": [{"rps": 0.0}], "home": [{"rps": 1.0}]}) == {"home": [None]}


def test_the_report_lists_them_and_a_run_without_them_still_renders() -> None:
    committed = json.loads(COMMITTED.read_text())
    committed["gateway"]["round_ratios"] = {"home": [0.46, 0.481, 0.502], "post": [0.073]}
    page = report.markdown(committed, "make bench")
    assert "Each round's ratio to that round's hello world: home 0.460 / 0.481 / 0.502; post 0.073." in page
    committed["gateway"].pop("round_ratios")
    assert "Each round's ratio" not in report.markdown(committed, "make bench")


def test_the_progress_log_is_written_beside_the_results_of_its_run(tmp_path: Path) -> None:
    committed = json.loads(COMMITTED.read_text())
    written = report.write(committed, "make bench", tmp_path, log_lines=["[00:00.10] first", "[00:01.20] last"])
    assert tmp_path / "latest.log" in written
    assert (tmp_path / "latest.log").read_text() == "[00:00.10] first\n[00:01.20] last\n"

"""The delivery section states a capacity: the highest post rate whose p99 met the target with every lower rate
measured meeting it too. Read off one run's rows, so a rate that happened to pass above one that missed does not
count, and the report says it (or that the run predates it)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from bench import report
from bench.delivery import within_target_up_to

COMMITTED = Path(__file__).resolve().parents[2] / "loadtests" / "results" / "latest.json"


def rows(*pairs: tuple[float, float | None]) -> list[dict[str, float | None]]:
    return [{"posts_per_s": rate, "p99_ms": p99} for rate, p99 in pairs]


def test_the_capacity_is_the_last_rate_of_the_unbroken_run_of_met_targets() -> None:
    assert within_target_up_to(rows((2, 60.0), (10, 70.0), (15, 99.9), (20, 140.0), (25, 190.0))) == 15
    assert within_target_up_to(rows((25, 190.0), (2, 60.0), (10, 100.0))) == 10  # order of the rows, not rates
    assert within_target_up_to(rows((2, 60.0), (10, 120.0), (15, 95.0))) == 2  # 15 passed above a miss: not it
    assert within_target_up_to(rows((2, 60.0), (10, None), (15, 95.0))) == 2  # no figure is no pass
    assert within_target_up_to(rows((2, 101.0))) is None
    assert within_target_up_to([]) is None
    assert within_target_up_to(rows((2, 60.0), (10, 70.0)), target_ms=65.0) == 2


def test_the_report_states_the_capacity_or_that_the_run_predates_it() -> None:
    committed = json.loads(COMMITTED.read_text())
    older = copy.deepcopy(committed)
    older["delivery"].pop("p99_within_target_up_to_posts_per_s", None)
    assert "Run before the capacity line was reported" in report.markdown(older, "make bench")
    newer = copy.deepcopy(committed)
    newer["delivery"]["streams"] = 1000
    newer["delivery"]["p99_within_target_up_to_posts_per_s"] = 15.0
    assert "p99 within 100 ms up to **15 posts/s** over SSE (15,000 deliveries a second)" in report.markdown(
        newer, "make bench")
    newer["delivery"]["p99_within_target_up_to_posts_per_s"] = None
    assert "up to **— posts/s** over SSE (— deliveries a second)" in report.markdown(newer, "make bench")

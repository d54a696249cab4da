"""The post service times each stage of a status's creation (``kicau_post_stage_duration_seconds{stage}``), so
an operator can see where a post's latency goes: the card, the status row with its place in the author's list, the Kafka
publish and the cache bookkeeping. Against the running stack."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kicau.settings import CommonSettings
from tests.conftest import User

STAGES = ("card", "status_writes", "publish", "caches")


def _stage_counts() -> dict[str, float]:
    counts = dict.fromkeys(STAGES, 0.0)
    text = httpx.get(f"{CommonSettings().post_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "kicau_post_stage_duration_seconds_count":
                counts[sample.labels["stage"]] = sample.value
    return counts


def test_every_stage_of_a_created_status_is_timed(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author = make_user("stages")
    before = _stage_counts()
    for i in range(3):
        answer = http.post("/api/v1/statuses", headers=author.auth, json={"status": f"timed stage {i}"})
        assert answer.status_code == 200, answer.text
    after = _stage_counts()
    # Other tests may post meanwhile (never in this file's run order, but the counts only grow).
    assert all(after[stage] - before[stage] >= 3 for stage in STAGES), (before, after)


def test_a_refused_status_times_no_write(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author = make_user("stages_refused")
    before = _stage_counts()
    answer = http.post("/api/v1/statuses", headers=author.auth, json={"status": ""})
    assert answer.status_code == 422
    after = _stage_counts()
    assert after["status_writes"] == before["status_writes"] and after["publish"] == before["publish"]

"""deploy/prometheus/alerts.yml: Prometheus's own tool checks the rules and runs their unit tests
(alerts.test.yml: each alert fires on the series it is about, after its ``for``, with its labels and rendered
annotations, and not on the series beside them), and the stack's Prometheus has loaded every rule and evaluates it
without error. tests/faults/test_alerts.py shows one raised by a real fault."""

from __future__ import annotations

from typing import Any

import httpx
import yaml

from tests.conftest import eventually
from tests.deploy.conftest import PROMETHEUS_FILES as RULES
from tests.deploy.conftest import promtool


def rule_names() -> list[str]:
    groups = yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"]]


def test_promtool_accepts_the_rules() -> None:
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_rules_unit_tests_pass() -> None:
    tested = promtool("test", "rules", "alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test_that_sees_it_fire() -> None:
    cases = yaml.safe_load((RULES / "alerts.test.yml").read_text())["tests"]
    fired = {check["alertname"] for case in cases for check in case["alert_rule_test"] if check["exp_alerts"]}
    assert fired == set(rule_names())


def test_a_wrong_expectation_fails_the_unit_tests(tmp_path: Any) -> None:
    # The passing run above means something only if promtool fails a case whose expectation is wrong.
    cases = yaml.safe_load((RULES / "alerts.test.yml").read_text())
    cases["rule_files"] = [str(RULES / "alerts.yml")]
    first = cases["tests"][0]["alert_rule_test"][-1]["exp_alerts"][0]
    first["exp_labels"]["job"] = "gateway"  # the push service is the one that stopped answering
    wrong = tmp_path / "wrong.test.yml"
    wrong.write_text(yaml.safe_dump(cases))
    tested = promtool("test", "rules", str(wrong))
    assert tested.returncode != 0 and 'job="push"' in tested.stderr, tested.stdout + tested.stderr


def test_the_stacks_prometheus_evaluates_every_rule(prometheus: httpx.Client) -> None:
    def evaluated() -> dict[str, str]:
        groups = prometheus.get("/api/v1/rules").json()["data"]["groups"]
        rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
        assert set(rules) == set(rule_names()), rules.keys()
        assert all(rule["lastEvaluation"] > "2000" for rule in rules.values()), "not evaluated yet"
        return {name: rule["health"] for name, rule in rules.items()}

    health = eventually(evaluated, timeout=60, interval=1.0)
    assert set(health.values()) == {"ok"}, health

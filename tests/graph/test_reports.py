"""Reports (kicau/reports.py) through the public API of the running system and the operator's tool
(``python -m services.graph.reports``): a report names its target and its statuses, the instance's rules, a category;
the operator lists and resolves it; bad input is a 4xx with a Mastodon error and files nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest

from stack.config import ROOT
from stack.gateways import spawned_gateway
from stack.services import service_env
from tests.conftest import User
from tests.timeline.test_visibility import post

RULES = ["Be kind.", "No spam."]


def reports_tool(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "services.graph.reports", *args], cwd=ROOT, env=service_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def listed(report_id: str) -> list[str]:
    """The tool's line of one report, split at its tabs (none: not listed)."""
    lines = [line for line in reports_tool("list", "--days", "2", "--limit", "10000").splitlines()
             if line.startswith(f"{report_id}\t")]
    return lines[0].split("\t") if lines else []


@pytest.fixture(scope="module")
def ruled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A gateway of an instance with two rules."""
    with spawned_gateway(tmp_path_factory.mktemp("gateway-rules"), instance_rules=json.dumps(RULES)) as gateway, \
            httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


def test_a_report_reaches_the_operator_who_resolves_it(ruled: httpx.Client, make_user: Callable[..., User]) -> None:
    reporter, target = make_user("rep_r"), make_user("rep_t")
    first, second = post(ruled, target, "buy now"), post(ruled, target, "buy again")
    answer = ruled.post("/api/v1/reports", headers=reporter.auth, json={
        "account_id": target.id, "status_ids": [first, second], "comment": "selling things", "rule_ids": ["2"],
        "forward": True})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert {k: v for k, v in report.items() if k not in ("id", "created_at", "target_account")} == {
        "action_taken": False, "action_taken_at": None, "category": "violation", "comment": "selling things",
        "forwarded": False, "status_ids": [first, second], "rule_ids": ["2"]}
    assert report["target_account"]["id"] == target.id
    # A form (as Mastodon.py sends it), no statuses or rules: category "other" unless given.
    plain = ruled.post("/api/v1/reports", headers=reporter.auth, data={"account_id": target.id, "category": "spam"})
    assert plain.status_code == 200, plain.text
    assert (plain.json()["category"], plain.json()["status_ids"], plain.json()["comment"]) == ("spam", None, "")

    line = listed(report["id"])
    assert line[2:6] == [reporter.id, target.id, "violation", "open"]
    assert line[6:8] == [f"statuses={first},{second}", "rules=2"] and line[8] == "'selling things'"
    reports_tool("resolve", report["id"])
    assert listed(report["id"])[5].startswith("resolved ")
    assert report["id"] not in reports_tool("list", "--days", "2", "--limit", "10000", "--open")


def test_bad_reports_are_refused_and_file_nothing(ruled: httpx.Client, make_user: Callable[..., User]) -> None:
    reporter, target, other = make_user("rpb_r"), make_user("rpb_t"), make_user("rpb_o")
    theirs, not_theirs = post(ruled, target, "mine"), post(ruled, other, "someone else's")
    before = reports_tool("list", "--days", "2", "--limit", "10000").count(f"\t{reporter.id}\t")
    cases: list[tuple[dict[str, object], int]] = [
        ({"account_id": target.id, "status_ids": [not_theirs]}, 404),  # a status of another account
        ({"account_id": target.id, "status_ids": [theirs, "999"]}, 404),  # one that does not exist
        ({"account_id": "123456789"}, 404),  # no such account
        ({}, 422),
        ({"account_id": "me"}, 422),
        ({"account_id": target.id, "comment": "x" * 1001}, 422),
        ({"account_id": target.id, "category": "rude"}, 422),
        ({"account_id": target.id, "rule_ids": ["3"]}, 422),  # the instance has two rules
        ({"account_id": target.id, "status_ids": ["one"]}, 422),
        ({"account_id": target.id, "status_ids": [str(n) for n in range(101)]}, 422),
        ({"account_id": target.id, "forward": "perhaps"}, 422),
    ]
    for body, code in cases:
        answer = ruled.post("/api/v1/reports", headers=reporter.auth, json=body)
        assert answer.status_code == code, (body, answer.text)
        assert set(answer.json()) == {"error"}, answer.text
    assert ruled.post("/api/v1/reports", json={"account_id": target.id}).status_code == 401
    after = reports_tool("list", "--days", "2", "--limit", "10000").count(f"\t{reporter.id}\t")
    assert after == before == 0

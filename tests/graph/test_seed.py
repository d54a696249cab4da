"""The seeding tool (``python -m services.graph.seed``) against the real Cassandra: what it writes is a follow
graph the running services read like any other — accounts found by name, counts that match the rows, a
heavy-tailed in-degree, and a large account in the registry once it crosses the threshold."""

from __future__ import annotations

import re
import secrets
import statistics
import subprocess
from typing import Any

import httpx
import pytest
from cassandra.concurrent import execute_concurrent_with_args

from stack.config import ROOT, VENV_PYTHON
from stack.services import service_env

USERS, MEAN_FOLLOWS, LARGE, THRESHOLD = 1500, 8, 3000, 2000


@pytest.fixture(scope="module")
def session(stack_cassandra: Any) -> Any:
    return stack_cassandra


@pytest.fixture(scope="module")
def seeded() -> tuple[str, int, str]:
    """Seeds a fresh graph (a prefix no earlier run used); returns the prefix, the large account and the output."""
    prefix = f"sd{secrets.token_hex(4)}"
    env = {**service_env(), "KICAU_LARGE_ACCOUNT_THRESHOLD": str(THRESHOLD)}
    run = subprocess.run(
        [str(VENV_PYTHON), "-m", "services.graph.seed", "--users", str(USERS), "--mean-follows", str(MEAN_FOLLOWS),
         "--large", str(LARGE), "--prefix", prefix, "--concurrency", "64"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    large = re.search(r"large account (\d+) \(", run.stdout)
    assert large, run.stdout
    # The progress bar and the achieved rate are what a user watches.
    assert "rows/s" in run.stderr and re.search(r"wrote [\d,]+ rows in [\d.]+s: [\d,]+ rows/s", run.stdout)
    return prefix, int(large.group(1)), run.stdout


def _seeded_ids(session: Any, prefix: str) -> list[int]:
    names = [(f"{prefix}_{n}",) for n in range(USERS + 1)]  # the users, then the large account
    statement = session.prepare("SELECT account_id FROM accounts_by_username WHERE username = ?")
    results = execute_concurrent_with_args(session, statement, names, concurrency=64)
    ids = []
    for ok, rows in results:
        assert ok, rows
        found = list(rows)
        assert len(found) == 1, "a seeded username has no index row"
        ids.append(int(found[0]["account_id"]))
    return ids


def test_seeded_accounts_are_served_by_the_api(seeded: tuple[str, int, str], http: httpx.Client) -> None:
    prefix, large, _ = seeded
    found = http.get("/api/v1/accounts/lookup", params={"acct": f"{prefix}_7"})
    assert found.status_code == 200, found.text
    assert found.json()["username"] == f"{prefix}_7"
    card = http.get(f"/api/v1/accounts/{large}")
    assert card.status_code == 200, card.text
    assert card.json()["followers_count"] == LARGE


def test_counts_match_rows_and_in_degree_is_heavy_tailed(seeded: tuple[str, int, str], session: Any) -> None:
    prefix, large, _ = seeded
    ids = _seeded_ids(session, prefix)
    assert ids[-1] == large
    count_rows = session.prepare("SELECT count(*) AS n FROM followers WHERE followee_id = ?")
    stats = session.prepare("SELECT followers_count, following_count FROM account_stats WHERE account_id = ?")
    rows = [next(iter(r))["n"] for ok, r in execute_concurrent_with_args(session, count_rows, [(i,) for i in ids])]
    counters = [list(r) for ok, r in execute_concurrent_with_args(session, stats, [(i,) for i in ids])]
    followers_counter = [int(c[0]["followers_count"] or 0) if c else 0 for c in counters]
    # Every counter equals the rows the fanout reads.
    assert rows == followers_counter
    assert rows[-1] == LARGE
    in_degrees = rows[:-1]
    mean = sum(in_degrees) / len(in_degrees)
    # Poisson follows, so about USERS x MEAN_FOLLOWS edges among the users...
    assert 0.8 * MEAN_FOLLOWS <= mean <= 1.2 * MEAN_FOLLOWS, mean
    # ...spread by a Zipf law: most accounts have few followers while a few have many times the mean.
    assert statistics.median(in_degrees) < mean
    assert max(in_degrees) >= 10 * mean, (max(in_degrees), mean)
    # The other direction of each edge: a sample's following rows match its counter.
    count_following = session.prepare("SELECT count(*) AS n FROM following WHERE follower_id = ?")
    sample = ids[:100]
    following_rows = [next(iter(r))["n"] for ok, r in
                      execute_concurrent_with_args(session, count_following, [(i,) for i in sample])]
    following_counter = [int(c[0]["following_count"] or 0) if c else 0 for c in counters[:100]]
    assert following_rows == following_counter
    # Each of the first USERS accounts also follows the large account (LARGE > USERS).
    assert all(n >= 1 for n in following_rows)


def test_a_large_account_enters_the_registry(seeded: tuple[str, int, str], session: Any) -> None:
    _, large, _ = seeded
    found = session.execute("SELECT account_id FROM large_accounts WHERE shard = 0 AND account_id = %s", (large,))
    assert len(list(found)) == 1

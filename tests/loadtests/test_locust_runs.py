"""``make load``'s Locust runs against the running stack, as a user starts them: one process, and distributed
(a master and two workers, ``--processes 2``), against the stack's gateway, and ``make load``'s own way, against a
load gateway it starts beside it (loadtests/run.py). Each must finish with no failed request, give every request of
the mix and the streaming users' delivery entry in the CSV and the HTML report, and, distributed, give every
worker the API users of all of them (the follow graph spans workers)."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import GATEWAY

ROOT = Path(__file__).resolve().parents[2]
USERS = 6  # Locust gives 5 of them to ApiUser and 1 to StreamingUser (weights 10 and 1)
MIX = ["/api/v1/timelines/home", "/api/v1/accounts/:id/statuses", "/api/v1/statuses"]


Stats = dict[str, dict[str, str]]  # load_stats.csv: its rows by request name


def run_locust(workdir: Path, transport: str, *extra: str, rate: str = "2", users: int = USERS,
               seconds: int = 45, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], Stats]:
    env = {
        **os.environ,
        **(env or {}),
        # Open loop at 2 requests a second per user: under the gateway's 300 requests per account per 5 minutes.
        "KICAU_LOAD_RATE": rate,
        "KICAU_LOAD_STREAM_SECONDS": "4",  # short listening windows: posters are followed as they register
        "KICAU_LOAD_STREAM_TRANSPORT": transport,
    }
    # Run from elsewhere than the repository, by the locustfile's path: its imports must not depend on the cwd.
    run = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"), "--headless",
         "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", GATEWAY, "--csv", str(workdir / "load"),
         "--html", str(workdir / "load.html"), "--only-summary", *extra],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=240,
    )
    with (workdir / "load_stats.csv").open() as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    return run, rows


def check_run(run: subprocess.CompletedProcess[str], rows: Stats, workdir: Path, kind: str,
              entry: str = "status -> stream delivery") -> None:
    assert run.returncode == 0, run.stderr[-3000:]  # Locust exits 1 when any request failed
    for name in [*MIX, entry]:
        assert name in rows, (name, sorted(rows))
        assert int(rows[name]["Request Count"]) > 0 and int(rows[name]["Failure Count"]) == 0, rows[name]
    assert rows[entry]["Type"] == kind
    assert "stream: refused or unreadable" not in rows
    # The report's JSON escapes ">".
    assert entry.replace(">", "\\u003e") in (workdir / "load.html").read_text()


def test_a_single_process_run_reports_the_mix_and_sse_deliveries(tmp_path: Path) -> None:
    # As if Locust ran on a machine whose clock is 4 s ahead of the server's: uncorrected, every delivery would
    # take 4 s more than it did.
    run, rows = run_locust(tmp_path, "sse", env={"KICAU_LOAD_CLOCK_SHIFT_MS": "4000"})
    check_run(run, rows, tmp_path, "SSE")
    # The mix's weights (60 / 30 / 10) show in the counts.
    home, account, post = (int(rows[name]["Request Count"]) for name in MIX)
    assert home > account > post > 0, (home, account, post)
    # The process measured the skew, to within the bound it states...
    measured = re.search(r"kicau: the server's clock is ([\d.]+) ms (ahead of|behind) this process's "
                         r"\(± ([\d.]+) ms, best of 5 posts\)", run.stderr)
    assert measured is not None, run.stderr[-3000:]
    offset_ms = float(measured.group(1)) * (1 if measured.group(2) == "ahead of" else -1)
    assert abs(offset_ms - -4000) <= float(measured.group(3)) + 0.1, measured.group(0)  # + the log's rounding
    # ...and timed the deliveries on the server's clock.
    assert int(rows["status -> stream delivery"]["Median Response Time"]) < 2000, rows["status -> stream delivery"]
    assert int(rows["setup: clock sample"]["Request Count"]) == 5
    assert int(rows["setup: clock sample delete"]["Request Count"]) == 5


def test_streaming_users_on_the_public_stream(tmp_path: Path) -> None:
    """``KICAU_LOAD_STREAM=public``: the streaming user follows no one and gets every status posted."""
    run, rows = run_locust(tmp_path, "sse", env={"KICAU_LOAD_STREAM": "public"}, seconds=30)
    check_run(run, rows, tmp_path, "SSE", entry="status -> public stream delivery")
    assert "status -> stream delivery" not in rows


@pytest.mark.parametrize("transport", ["websocket"])
def test_a_distributed_run_shares_its_users_between_workers(tmp_path: Path, transport: str) -> None:
    run, rows = run_locust(tmp_path, transport, "--processes", "2")
    check_run(run, rows, tmp_path, "WebSocket")
    workers = [(int(known), int(own)) for known, own in
               re.findall(r"kicau: (\d+) API users known to this process, (\d+) of them registered by it", run.stderr)]
    assert len(workers) == 2, run.stderr[-3000:]
    api_users = sum(own for _, own in workers)
    assert api_users == USERS - 1
    assert all(0 < own < api_users for _, own in workers), workers  # both workers ran API users...
    assert all(known == api_users for known, _ in workers), workers  # ...and each knew all of them


def test_a_closed_loop_against_the_usual_rate_limits_fails_and_says_why(tmp_path: Path) -> None:
    # One closed-loop API user makes hundreds of requests a second; its account may make 300 in 5 minutes.
    run, rows = run_locust(tmp_path, "sse", rate="0", users=2, seconds=15)
    assert run.returncode == 1, run.stderr[-3000:]  # the refused requests are failures
    refused = re.search(r"kicau: (\d+) requests were refused by the gateway's rate limits \(429\)", run.stderr)
    assert refused is not None, run.stderr[-3000:]
    with (tmp_path / "load_failures.csv").open() as listed:
        errors = {row["Error"] for row in csv.DictReader(listed)}
    assert errors == {"LocustBadStatusCode(code=429)"}, errors  # the limiter's answers, and nothing else
    failures = sum(int(rows[name]["Failure Count"]) for name in MIX if name in rows)
    # The process counts to its very end; the CSV may be written a moment before.
    assert int(refused.group(1)) >= failures > 0
    assert "KICAU_GATEWAY_RATE_LIMIT_ACCOUNT_REQUESTS" in run.stderr  # ...and how to run without measuring them


def test_make_load_runs_a_closed_loop_on_a_load_gateway_of_its_own(tmp_path: Path) -> None:
    """``make load`` with no HOST: a closed loop, which the stack's gateway refuses within seconds (the test
    above), runs with no failure on the load gateway, and that gateway is gone afterwards."""
    recipe = subprocess.run(["make", "-n", "load"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "-m loadtests.run" in recipe, recipe
    env = {**os.environ, "KICAU_LOAD_RATE": "0", "KICAU_LOAD_STREAM_SECONDS": "4"}
    run = subprocess.run(
        [sys.executable, "-m", "loadtests.run", "--", "--headless", "-u", str(USERS), "-r", str(USERS), "-t", "20s",
         "--csv", str(tmp_path / "load"), "--html", str(tmp_path / "load.html"), "--only-summary"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    with (tmp_path / "load_stats.csv").open() as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    check_run(run, rows, tmp_path, "SSE")
    started = re.search(r"kicau: load gateway on (http://127\.0\.0\.1:(\d+)) \(pid (\d+),", run.stderr)
    assert started is not None, run.stderr[-3000:]
    assert started.group(1) != GATEWAY
    # The API users made more requests than their accounts may make in a window under the usual limits.
    assert sum(int(rows[name]["Request Count"]) for name in MIX) > (USERS - 1) * 300, rows
    with pytest.raises(ProcessLookupError):
        os.kill(int(started.group(3)), 0)  # stopped, and reaped by its parent

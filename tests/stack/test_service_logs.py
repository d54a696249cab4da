"""The failure report's extract of the services' logs (tests/service_logs.py)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.service_logs import MAX_WIDTH, logged_since


def _epoch(stamp: str) -> float:
    return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S"))


def test_the_warnings_and_errors_since_the_test_began_in_time_order(tmp_path: Path) -> None:
    (tmp_path / "post.log").write_text(
        "2026-12-07 02:34:09,900 WARNING kicau: before the test\n"
        "2026-12-07 02:34:10,022 WARNING aiokafka.producer.sender: Got error produce response\n"
        "Traceback (most recent call last):\n"
        "2026-12-07 02:34:10,029 ERROR kicau: unhandled error in post: TimeoutError\n"
        "INFO:     127.0.0.1:5000 - \"PUT /internal/statuses/1 HTTP/1.1\" 503\n"
        "2026-12-07 02:34:11,000 INFO kicau: not a warning\n")
    (tmp_path / "fanout.log").write_text(
        "2026-12-07 02:34:10,025 WARNING services.fanout.worker: could not commit applied offsets\n")
    (tmp_path / "fanout.pid").write_text("123\n")
    assert logged_since(_epoch("2026-12-07 02:34:10"), tmp_path).splitlines() == [
        "post | 2026-12-07 02:34:10,022 WARNING aiokafka.producer.sender: Got error produce response",
        "fanout | 2026-12-07 02:34:10,025 WARNING services.fanout.worker: could not commit applied offsets",
        "post | 2026-12-07 02:34:10,029 ERROR kicau: unhandled error in post: TimeoutError",
    ]


def test_the_last_lines_kept_each_cut_and_the_rest_counted(tmp_path: Path) -> None:
    (tmp_path / "gateway.log").write_text("".join(
        f"2026-12-07 03:00:{second:02d},000 ERROR kicau: {second} {'x' * 300}\n" for second in range(10)))
    lines = logged_since(_epoch("2026-12-07 03:00:00"), tmp_path, max_lines=3).splitlines()
    assert lines[0] == "(7 earlier lines left out)"
    assert [line.split()[6] for line in lines[1:]] == ["7", "8", "9"]
    assert all(len(line) == len("gateway | ") + MAX_WIDTH for line in lines[1:])


def test_nothing_without_logs_or_warnings(tmp_path: Path) -> None:
    assert logged_since(time.time(), tmp_path) == ""
    (tmp_path / "graph.log").write_text("2026-12-07 03:00:00,000 INFO kicau: fine\n")
    assert logged_since(_epoch("2026-12-07 02:00:00"), tmp_path) == ""

"""What the stack's services logged while a test ran, shown under the test's failure.

A failure in CI comes with pytest's output alone: the services' logs stay on the machine that ran it. The warnings
and errors the services wrote during the failing test (a timed-out publish, a rebalance, a retried batch) are often
what tells a flaky wait from a lost event, so they are added to the failure's report."""

from __future__ import annotations

import time
from pathlib import Path

# Log lines begin with logging's asctime, "2026-12-07 02:34:10,022 WARNING name: message".
_STAMP = len("2026-12-07 02:34:10")
_LEVELS = (" WARNING ", " ERROR ", " CRITICAL ")
_TAIL_BYTES = 4 << 20  # of each log: a test's lines are at its end
MAX_LINES = 40
MAX_WIDTH = 240


def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _tail(path: Path) -> list[str]:
    with path.open("rb") as log:
        log.seek(0, 2)
        log.seek(max(0, log.tell() - _TAIL_BYTES))
        return log.read().decode("utf-8", "replace").splitlines()


def logged_since(started: float, directory: Path, *, max_lines: int = MAX_LINES) -> str:
    """The warnings and errors of every ``*.log`` in ``directory`` stamped from ``started`` (epoch seconds, to the
    second) on, oldest first, each as ``service | line`` (cut to ``MAX_WIDTH``); the last ``max_lines`` of them,
    with a count of those left out. Empty when there are none (or no logs)."""
    since = _stamp(started)
    found: list[tuple[str, str]] = []
    for path in sorted(directory.glob("*.log")):
        for line in _tail(path):
            if line[:_STAMP] >= since and line[:4].isdigit() and any(level in line for level in _LEVELS):
                found.append((line[:_STAMP + 4], f"{path.stem} | {line[:MAX_WIDTH]}"))
    found.sort(key=lambda pair: pair[0])  # stable: one service's lines keep their order within a millisecond
    shown = [text for _, text in found[-max_lines:]]
    if len(found) > max_lines:
        shown.insert(0, f"({len(found) - max_lines} earlier lines left out)")
    return "\n".join(shown)

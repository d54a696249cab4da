"""Fault tests run last (they kill, pause and restart engines and services) and leave the stack healthy.

Each test gets a :class:`Faults` handle: whatever it paused is resumed and whatever it started is stopped
when it ends, pass or fail, and `python -m stack up` then restarts anything missing and waits until every
engine and service is ready again.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from kicau.crash_points import CRASH_EXIT_CODE
from stack import procs
from tests.faults import harness

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the fault tests behind every other test of the session, whatever the collection order."""
    faults = [item for item in items if HERE in Path(str(item.path)).resolve().parents]
    if faults:
        others = [item for item in items if HERE not in Path(str(item.path)).resolve().parents]
        items[:] = others + faults


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if harness.FIGURES:
        terminalreporter.section("fault figures")
        for line in harness.FIGURES:
            terminalreporter.write_line(line)


class Faults:
    """What one test did to the stack, so that it can be undone."""

    def __init__(self) -> None:
        self.paused: set[int] = set()
        self.extra: list[harness.ExtraProcess] = []

    def pause(self, pid: int) -> None:
        self.paused.add(pid)
        os.kill(pid, signal.SIGSTOP)

    def resume(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        self.paused.discard(pid)

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        harness.wait_dead(pid)
        self.paused.discard(pid)

    def spawn_fanout(self) -> harness.ExtraProcess:
        extra = harness.spawn_fanout(procs.free_port())
        self.extra.append(extra)
        return extra

    def spawn_service(self, name: str, env: dict[str, str]) -> harness.ExtraProcess:
        """``name`` in the place of the stack's own, which must be down (``kill`` it first)."""
        extra = harness.spawn_service(name, env)
        self.extra.append(extra)
        return extra

    def crash_during(self, name: str, crash_at: str,
                     request: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
        """Run service ``name`` armed to die at ``crash_at`` (kicau/crash_points.py) in place of the stack's own;
        make ``request``, which must answer a Mastodon error (502 or 503, never 500) as the service dies there;
        then bring the stack back. The broken answer, and the seconds the stack took to come back."""
        self.kill(harness.service_pid(name))
        crashing = self.spawn_service(name, {"KICAU_CRASH_AT": crash_at})
        harness.wait_http_ready(crashing.port)
        broken = request()
        assert broken.status_code in (502, 503) and "error" in broken.json(), broken.text
        assert crashing.proc.wait(timeout=30) == CRASH_EXIT_CODE, f"the {name} service did not die at {crash_at}"
        return broken, harness.stack_up()

    def restore(self) -> None:
        for pid in list(self.paused):
            self.resume(pid)
        for extra in self.extra:
            extra.stop()


@pytest.fixture
def faults(gateway_url: str) -> Iterator[Faults]:
    # Only a stack started from this checkout may be harmed; anything else fails before a fault is injected.
    harness.service_pid("gateway")
    # Start from a healthy stack whatever the tests before did to it (a few seconds when all is up).
    harness.stack_up()
    handle = Faults()
    try:
        yield handle
    finally:
        handle.restore()
        harness.stack_up()
        problem = harness.stack_status_ok()
        assert problem is None, f"stack not healthy after the fault test:\n{problem}"

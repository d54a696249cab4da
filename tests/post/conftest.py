"""Fixtures of the post service's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from stack.procs import free_port
from stack.services import service_env
from tests.conftest import eventually

ROOT = Path(__file__).resolve().parents[2]



@pytest.fixture
def eager_post_service() -> Iterator[Callable[..., tuple[str, subprocess.Popen[bytes]]]]:
    """Starts post services that take times a second ahead and look for due statuses every 0.1 s (extra
    environment given per call), on ports of their own; stops them after the test."""
    started: list[subprocess.Popen[bytes]] = []
    logs = []

    def start(**extra: str) -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        env = {key: value for key, value in service_env().items() if not key.startswith("KICAU_POST_")}
        env.update({"KICAU_POST_PORT": str(port), "KICAU_POST_SCHEDULED_MIN_LEAD_SECONDS": "1",
                    "KICAU_POST_SCHEDULED_POLL_SECONDS": "0.1", **extra})
        log = open(ROOT / ".stack" / "services" / f"post-eager-{port}.log", "wb")  # noqa: SIM115
        logs.append(log)
        process = subprocess.Popen([sys.executable, "-m", "services.post"], cwd=ROOT, env={**os.environ, **env},
                                   stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        eventually(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, timeout=120, interval=0.5)
        return url, process

    yield start
    for process in started:
        process.terminate()
    for process in started:
        process.wait(timeout=30)
    for log in logs:
        log.close()

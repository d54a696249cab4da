"""What the tests of deploy/prometheus and deploy/grafana against the stack's own Prometheus share
(stack/engines.py, ``Prometheus``)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from stack.config import HOST, ROOT, ports

PROMETHEUS_FILES = ROOT / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Prometheus's own tool, run in deploy/prometheus (relative paths there are the files' own)."""
    found = shutil.which("promtool")
    assert found is not None, "promtool comes with Debian's prometheus package, which `python -m stack up` installs"
    return subprocess.run([found, *args], capture_output=True, text=True, check=False, cwd=PROMETHEUS_FILES)


@pytest.fixture(scope="module")
def prometheus() -> Iterator[httpx.Client]:
    """A client of the stack's Prometheus."""
    with httpx.Client(base_url=f"http://{HOST}:{ports().prometheus}", timeout=10) as client:
        yield client

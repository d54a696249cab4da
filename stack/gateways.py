"""A second gateway process beside the stack's, with settings of its own: tests that need tiny rate limits, a
small stream queue or a short heartbeat, and ``make load``'s gateway with limits meant for load tests
(loadtests/run.py). It runs the same code against the same running services, Redis and Kafka as the stack's
gateway, on a free port, and is stopped (SIGTERM, so it withdraws its stream presence) when the block ends."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from stack.config import ROOT, VENV_PYTHON
from stack.procs import free_port
from stack.services import service_env

# How long a gateway (or any app started beside the stack) may take to answer: a loaded 2-core machine needs this.
READY_SECONDS = 120.0


@dataclass
class Gateway:
    url: str
    port: int
    log: Path
    pid: int

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until_answering(process: subprocess.Popen[bytes], url: str, log: Path, what: str) -> None:
    """Until ``url`` answers 200. Fails with the process's log if it exits first or READY_SECONDS pass."""
    deadline = time.monotonic() + READY_SECONDS
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready within {READY_SECONDS:.0f} s:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)


def gateway_env(port: int, settings: dict[str, str], public_url: str | None = None) -> dict[str, str]:
    """The stack's service environment for a gateway on ``port`` with ``settings`` (GatewaySettings fields, set as
    KICAU_GATEWAY_*) and nothing else of the gateway's: settings inherited from the shell (a developer's raised
    limits, say) must not leak into a gateway whose settings are its caller's."""
    env = {k: v for k, v in service_env().items() if not k.startswith("KICAU_GATEWAY_")}
    env.update({"KICAU_GATEWAY_HOST": "127.0.0.1", "KICAU_GATEWAY_PORT": str(port)})
    env.update({f"KICAU_GATEWAY_{name.upper()}": value for name, value in settings.items()})
    if public_url is not None:
        env["KICAU_PUBLIC_URL"] = public_url
    return env


@contextlib.contextmanager
def spawned_gateway(log_dir: Path, *, public_url: str | None = None, what: str = "test gateway",
                    **settings: str) -> Iterator[Gateway]:
    """``settings`` are GatewaySettings fields (``rate_limit_ip_requests="3"``) set as KICAU_GATEWAY_*;
    ``public_url``, the instance's own (KICAU_PUBLIC_URL) if not the stack's; ``what`` names it in failures."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"gateway-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(VENV_PYTHON), "-m", "services.gateway"], cwd=ROOT,
                                   env=gateway_env(port, settings, public_url), stdout=out, stderr=subprocess.STDOUT)
    gateway = Gateway(url=f"http://127.0.0.1:{port}", port=port, log=log, pid=process.pid)
    try:
        wait_until_answering(process, f"{gateway.url}/readyz", log, what)
        yield gateway
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

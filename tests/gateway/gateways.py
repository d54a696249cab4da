"""A second gateway process for tests that need settings of their own (tiny rate limits, a small stream queue,
a short heartbeat). It runs the same code against the same running services, Redis and Kafka as the stack's
gateway, on a free port, and is stopped (SIGTERM, so it withdraws its stream presence) when the test ends."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from stack.config import ROOT, VENV_PYTHON
from stack.services import service_env


@dataclass
class Gateway:
    url: str
    port: int
    log: Path
    pid: int

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_answering(process: subprocess.Popen[bytes], url: str, log: Path, what: str) -> None:
    """Until ``url`` answers 200. Fails with the process's log if it exits first or 120 s pass (a loaded
    2-core machine needs that long)."""
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready within 120 s:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)


@contextlib.contextmanager
def spawned_gateway(log_dir: Path, *, public_url: str | None = None, **settings: str) -> Iterator[Gateway]:
    """``settings`` are GatewaySettings fields (``rate_limit_ip_requests="3"``) set as KICAU_GATEWAY_*;
    ``public_url``, the instance's own (KICAU_PUBLIC_URL) if not the stack's."""
    port = free_port()
    env = {**service_env(), "KICAU_GATEWAY_HOST": "127.0.0.1", "KICAU_GATEWAY_PORT": str(port)}
    # Inherited gateway settings (a developer's raised limits, say) must not leak into the test's own.
    env = {k: v for k, v in env.items() if not k.startswith("KICAU_GATEWAY_") or k in ("KICAU_GATEWAY_HOST",
                                                                                         "KICAU_GATEWAY_PORT")}
    env.update({f"KICAU_GATEWAY_{name.upper()}": value for name, value in settings.items()})
    if public_url is not None:
        env["KICAU_PUBLIC_URL"] = public_url
    log = log_dir / f"gateway-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(VENV_PYTHON), "-m", "services.gateway"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    gateway = Gateway(url=f"http://127.0.0.1:{port}", port=port, log=log, pid=process.pid)
    try:
        wait_until_answering(process, f"{gateway.url}/readyz", log, "test gateway")
        yield gateway
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

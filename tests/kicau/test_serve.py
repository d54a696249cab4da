"""How the services listen (kicau/serve.py): the Unix socket an internal service also listens on is this user's
only, replaces one a killed process left behind, never replaces anything else and is removed when the service
is stopped; on the running stack, the internal services answer on their sockets and the gateway and the
services reach Redis on its socket."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from kicau.serve import unix_listener
from stack.services import SERVICES, service_env


def test_a_socket_is_this_users_only_and_replaces_a_stale_one(tmp_path: Path) -> None:
    path = str(tmp_path / "service.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)  # a killed service's socket file: bound, nobody listening any more
    stale.close()
    listener = unix_listener(path)
    try:
        listener.listen(1)
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)  # the new socket is the one listening
    finally:
        listener.close()


def test_anything_but_a_socket_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "service.sock"
    path.write_text("someone's data")
    with pytest.raises(SystemExit, match="is not a socket"):
        unix_listener(str(path))
    assert path.read_text() == "someone's data"


def test_the_stacks_internal_services_answer_on_their_sockets(stack_redis: Any) -> None:
    env = service_env()
    internal = [s for s in SERVICES if s.socket is not None]
    assert {s.name for s in internal} == {"graph", "post", "timeline"}
    for service in internal:
        assert env[f"KICAU_{service.name.upper()}_URL"] == f"unix://{service.socket}"
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(service.socket)), timeout=10) as client:
            ready = client.get("http://localhost/readyz")
        assert ready.status_code == 200 and ready.json() == {"ready": True}, (service.name, ready.text)
    # Every service's Redis connections come over Redis's own socket (its address is the socket's path).
    named = [c for c in stack_redis.client_list() if str(c.get("name", "")).startswith("kicau-")]
    assert {c["name"].removesuffix("-pipelined") for c in named} >= {"kicau-gateway", "kicau-timeline"}
    assert all(c["addr"].startswith("/") for c in named), named


def test_a_service_stopped_by_sigterm_removes_its_socket(tmp_path: Path) -> None:
    """As `stack down` stops a service: the socket answers while it serves and is gone once it has stopped."""
    path = tmp_path / "hello.sock"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    served = subprocess.Popen([sys.executable, "-c", "from kicau.serve import run; "
                               f"run('bench.hello:app', host='127.0.0.1', port={port}, unix_socket={str(path)!r})"],
                              cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 30
        while not path.exists():
            assert served.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=10) as client:
            assert client.get("http://localhost/hello").json() == {"hello": "world"}
        served.send_signal(signal.SIGTERM)
        served.wait(timeout=20)
    finally:
        served.kill()
    assert not path.exists()

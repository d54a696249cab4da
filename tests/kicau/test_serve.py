"""How the services listen (kicau/serve.py): the Unix socket an internal service also listens on is this user's
only, replaces one a killed process left behind, never replaces anything else and is removed when the service
is stopped; on the running stack, the internal services answer calls on their call sockets and the gateway and the
services reach Redis on its socket."""

from __future__ import annotations

import asyncio
import json
import os
import resource
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

from kicau.internal_rpc import CallClient
from kicau.serve import unix_listener, unlink_if_ours
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


def test_an_exiting_process_leaves_its_successors_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "call.sock")
    old = unix_listener(path)
    old_inode = os.stat(path).st_ino
    new = unix_listener(path)  # a successor binds while the old process is still exiting
    try:
        unlink_if_ours(path, old_inode)
        assert stat.S_ISSOCK(os.lstat(path).st_mode)  # the successor's socket stays
        unlink_if_ours(path, os.stat(path).st_ino)
        assert not os.path.exists(path)
        unlink_if_ours(path, old_inode)  # gone already: nothing to do
    finally:
        old.close()
        new.close()


def test_anything_but_a_socket_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "service.sock"
    path.write_text("someone's data")
    with pytest.raises(SystemExit, match="is not a socket"):
        unix_listener(str(path))
    assert path.read_text() == "someone's data"


async def test_the_stacks_internal_services_answer_on_their_call_sockets(stack_redis: Any) -> None:
    env = service_env()
    internal = [s for s in SERVICES if s.call_socket is not None]
    assert {s.name for s in internal} == {"graph", "post", "timeline"}
    for service in internal:
        assert env[f"KICAU_{service.name.upper()}_URL"] == f"kicau+unix://{service.call_socket}"
        assert stat.S_IMODE(os.stat(str(service.call_socket)).st_mode) == 0o600
        client = CallClient(str(service.call_socket))
        status, _, body = await client.call("GET", "/readyz", b"", [], b"", asyncio.get_running_loop().time() + 10)
        await client.aclose()
        assert (status, json.loads(body)) == (200, {"ready": True}), (service.name, body)
    # Every service's Redis connections come over Redis's own socket (its address is the socket's path).
    named = [c for c in stack_redis.client_list() if str(c.get("name", "")).startswith("kicau-")]
    assert {c["name"].removesuffix("-pipelined") for c in named} >= {"kicau-gateway", "kicau-timeline"}
    assert all(c["addr"].startswith("/") for c in named), named


def test_a_service_stopped_by_sigterm_removes_its_sockets(tmp_path: Path) -> None:
    """As `stack down` stops a service: the sockets answer while it serves and are gone once it has stopped."""
    path, calls = tmp_path / "hello.sock", tmp_path / "hello.call.sock"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    served = subprocess.Popen([sys.executable, "-c", "from kicau.serve import run; "
                               f"run('bench.hello:app', host='127.0.0.1', port={port}, unix_socket={str(path)!r}, "
                               f"call_socket={str(calls)!r})"],
                              cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 30
        while not (path.exists() and calls.exists()):
            assert served.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=10) as client:
            assert client.get("http://localhost/hello").json() == {"hello": "world"}
        assert asyncio.run(_call_hello(calls)) == (200, b'{"hello":"world"}')
        served.send_signal(signal.SIGTERM)
        served.wait(timeout=20)
    finally:
        served.kill()
    assert not path.exists() and not calls.exists()


async def _call_hello(path: Path) -> tuple[int, bytes]:
    client = CallClient(str(path))
    try:
        status, _, body = await client.call("GET", "/hello", b"", [], b"", asyncio.get_running_loop().time() + 10)
        return status, body
    finally:
        await client.aclose()


def test_the_gateway_holds_an_idle_connection_longer_than_clients_do(gateway_url: str) -> None:
    """An idle keep-alive connection is still served after httpx's 5 s idle expiry: a client lets go of it before
    the gateway closes it, so a request never leaves on a connection the server is closing at that moment."""
    host, port = httpx.URL(gateway_url).host, httpx.URL(gateway_url).port
    request = f"GET /readyz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    with socket.create_connection((host, port), timeout=10) as connection:
        for pause in (0.0, httpx.Limits().keepalive_expiry or 5.0):
            time.sleep(pause + 1)
            connection.sendall(request)
            answer = connection.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200"), (pause, answer)


def test_a_service_holds_more_connections_than_the_soft_open_files_limit_it_started_with() -> None:
    """Many hosts start a process with a soft limit of 1,024 open files (systemd's default; Docker's since 25.0)
    under a much higher hard one, and an asyncio server never raises it: past the soft limit every accept fails
    (EMFILE) and new clients wait in the listen queue, so a gateway would hold fewer than ~1,000 streams. A service
    run through kicau.serve raises its soft limit to the hard one: started at 256, it answers 400 connections held
    open at once."""
    held, soft = 400, 256
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < held + 64:
        pytest.fail(f"this host's hard limit of open files ({hard}) is below what the test holds")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    served = subprocess.Popen(
        [sys.executable, "-c", f"from kicau.serve import run; run('bench.hello:app', host='127.0.0.1', port={port})"],
        cwd=Path(__file__).resolve().parents[2],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)))
    connections: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            assert served.poll() is None and time.monotonic() < deadline, "the server did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        limits = Path(f"/proc/{served.pid}/limits").read_text()
        open_files = next(line for line in limits.splitlines() if line.startswith("Max open files")).split()
        assert open_files[3] == open_files[4], limits  # soft raised to hard
        request = f"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        for _ in range(held):
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            connections.append(connection)
            connection.sendall(request)
        # Every one answered while all are open (a keep-alive connection holds its descriptor in the server).
        answered = sum(_answered(connection) for connection in connections)
        assert answered == held
    finally:
        for connection in connections:
            connection.close()
        served.kill()
        served.wait(timeout=10)


def _answered(connection: socket.socket) -> bool:
    try:
        return connection.recv(4096).startswith(b"HTTP/1.1 200")
    except OSError:  # reset: what a server out of descriptors does to the connections it cannot take
        return False

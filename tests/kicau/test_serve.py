"""How the services listen (kicau/serve.py): the Unix socket an internal service also listens on is this user's
only, replaces one a killed process left behind and never replaces anything else; on the running stack, the
internal services answer on their sockets and the gateway and the services reach Redis on its socket."""

from __future__ import annotations

import os
import socket
import stat
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

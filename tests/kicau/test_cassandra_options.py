"""How settings become the Cassandra driver's options: credentials, the local data centre, consistency, and sockets
with Nagle's algorithm off."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT
from pydantic import ValidationError

from kicau.clients import cassandra_cluster_options
from kicau.settings import CommonSettings


def test_no_credentials_by_default() -> None:
    options = cassandra_cluster_options(CommonSettings())
    assert "auth_provider" not in options


def test_requests_leave_at_once() -> None:
    """Nagle's algorithm off: the driver keeps it on unless told, and a write of a group of posts then waited
    ~40 ms for a delayed ACK (kicau/clients.py)."""
    options = cassandra_cluster_options(CommonSettings())
    assert (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) in options["sockopts"]


def test_the_driver_sockets_have_nagle_off(stack_cassandra: Any) -> None:
    """On the real driver and node: every connection the session holds (its pool's and the control connection)
    has TCP_NODELAY set, as the option above asks."""
    connections = [conn for pool in stack_cassandra.get_pools() for conn in pool.get_connections()]
    connections.append(stack_cassandra.cluster.control_connection._connection)
    assert len(connections) >= 2
    assert all(conn._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for conn in connections)


def test_credentials_and_data_centre_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KICAU_CASSANDRA_USERNAME", "kicau")
    monkeypatch.setenv("KICAU_CASSANDRA_PASSWORD", "s3cret")
    monkeypatch.setenv("KICAU_CASSANDRA_LOCAL_DC", "dc1")
    monkeypatch.setenv("KICAU_CASSANDRA_HOSTS", "10.0.0.1, 10.0.0.2")
    monkeypatch.setenv("KICAU_CASSANDRA_READ_CONSISTENCY", "LOCAL_QUORUM")
    settings = CommonSettings()
    options = cassandra_cluster_options(settings)
    auth = options["auth_provider"]
    assert isinstance(auth, PlainTextAuthProvider)
    assert (auth.username, auth.password) == ("kicau", "s3cret")
    assert options["contact_points"] == ["10.0.0.1", "10.0.0.2"]
    profile = options["execution_profiles"][EXEC_PROFILE_DEFAULT]
    assert profile.load_balancing_policy._child_policy.local_dc == "dc1"
    assert profile.consistency_level == ConsistencyLevel.LOCAL_QUORUM
    # The password never shows in the settings' representation (which may end up in a log line).
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())


def test_half_a_credential_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KICAU_CASSANDRA_USERNAME", "kicau")
    with pytest.raises(ValidationError, match="KICAU_CASSANDRA_PASSWORD"):
        CommonSettings()

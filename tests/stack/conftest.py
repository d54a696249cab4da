"""Fixtures for the stack tests: the engines started by `python -m stack up` (as `make test` does)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stack import probes
from stack.config import HOST, ports

SCRATCH_KEYSPACE = "kicau_stack_test"


@pytest.fixture
def engines_up() -> None:
    p = ports()
    down = {
        name: problem
        for name, problem in (
            ("kafka", probes.probe_kafka(p.kafka)),
            ("cassandra", probes.probe_cassandra(p.cassandra)),
            ("redis", probes.probe_redis(p.redis)),
        )
        if problem is not None
    }
    if down:
        pytest.fail(f"engines not answering ({down}); start them with `python -m stack up`")


@pytest.fixture
def kafka_bootstrap(engines_up: None) -> str:
    return f"{HOST}:{ports().kafka}"


@pytest.fixture
def cassandra_session(engines_up: None) -> Iterator[Any]:
    from cassandra.cluster import Cluster

    cluster = Cluster([HOST], port=ports().cassandra, protocol_version=4)
    session = cluster.connect()
    session.default_timeout = 60
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {SCRATCH_KEYSPACE} "
        "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    session.execute(f"CREATE TABLE IF NOT EXISTS {SCRATCH_KEYSPACE}.scratch (id uuid PRIMARY KEY, body text)")
    try:
        yield session
    finally:
        cluster.shutdown()


@pytest.fixture
def scratch_keyspace() -> str:
    return SCRATCH_KEYSPACE


@pytest.fixture
def redis_url(engines_up: None) -> str:
    return f"redis://{HOST}:{ports().redis}/0"

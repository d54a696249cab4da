"""deploy/init/migrate.py (the schema job of docker-compose.yml and deploy/kubernetes) without a Cassandra: its
environment parsing, its retry while Cassandra starts, and what it sends through stack.migrate."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from deploy.init import migrate as entrypoint
from deploy.init.migrate import MigrateConfig
from stack.config import StackError
from stack.migrate import discover


def test_defaults_match_the_local_stack() -> None:
    config = MigrateConfig.from_env({})
    assert config.hosts == ("127.0.0.1",)
    assert (config.port, config.keyspace, config.consistency) == (9042, "kicau", "LOCAL_ONE")
    assert "SimpleStrategy" in config.replication
    assert config.username is None and config.password is None and config.local_dc is None


def test_cluster_settings_come_from_the_environment() -> None:
    config = MigrateConfig.from_env(
        {
            "KICAU_CASSANDRA_HOSTS": " cassandra-0.cassandra , cassandra-1.cassandra ,",
            "KICAU_CASSANDRA_PORT": "19042",
            "KICAU_CASSANDRA_KEYSPACE": "kicau_test",
            "KICAU_CASSANDRA_REPLICATION": "{'class': 'NetworkTopologyStrategy', 'dc1': 3}",
            "KICAU_CASSANDRA_WRITE_CONSISTENCY": "local_quorum",
            "KICAU_CASSANDRA_LOCAL_DC": "dc1",
            "KICAU_CASSANDRA_USERNAME": "kicau",
            "KICAU_CASSANDRA_PASSWORD": "secret",
            "KICAU_MIGRATE_TIMEOUT_SECONDS": "30",
        }
    )
    assert config.hosts == ("cassandra-0.cassandra", "cassandra-1.cassandra")
    assert (config.port, config.keyspace, config.consistency, config.local_dc) == (
        19042,
        "kicau_test",
        "LOCAL_QUORUM",
        "dc1",
    )
    assert config.replication == "{'class': 'NetworkTopologyStrategy', 'dc1': 3}"
    assert (config.username, config.password, config.timeout_seconds) == ("kicau", "secret", 30.0)
    assert "secret" not in config.describe()


@pytest.mark.parametrize(
    "env",
    [
        {"KICAU_CASSANDRA_PORT": "cassandra"},
        {"KICAU_CASSANDRA_PORT": "70000"},
        {"KICAU_CASSANDRA_WRITE_CONSISTENCY": "SERIAL_ISH"},
        {"KICAU_CASSANDRA_USERNAME": "kicau"},
        {"KICAU_MIGRATE_TIMEOUT_SECONDS": "soon"},
    ],
)
def test_bad_settings_are_refused_with_a_hint(env: dict[str, str]) -> None:
    with pytest.raises(StackError) as raised:
        MigrateConfig.from_env(env)
    assert raised.value.hint


def test_every_variable_read_is_declared() -> None:
    source = Path(entrypoint.__file__ or "").read_text()
    assert set(re.findall(r'"(KICAU_[A-Z_]+)"', source)) == set(entrypoint.ENVIRONMENT)


@dataclass
class FakeRow:
    version: int


@dataclass
class FakeSession:
    """Records statements the way stack.migrate issues them; knows which versions are already applied."""

    applied: set[int] = field(default_factory=set)
    statements: list[str] = field(default_factory=list)
    keyspace: str | None = None

    def execute(self, statement: str, params: Any = None, timeout: float | None = None) -> list[FakeRow]:
        self.statements.append(statement)
        if statement.startswith("SELECT version FROM"):
            return [FakeRow(v) for v in sorted(self.applied)]
        if statement.startswith("INSERT INTO") and "schema_migrations" in statement:
            self.applied.add(params[0])
        return []

    def set_keyspace(self, keyspace: str) -> None:
        self.keyspace = keyspace


def test_migrate_creates_the_keyspace_with_the_configured_replication_then_applies_each_file_once() -> None:
    config = MigrateConfig.from_env(
        {
            "KICAU_CASSANDRA_KEYSPACE": "kicau_ring",
            "KICAU_CASSANDRA_REPLICATION": "{'class': 'NetworkTopologyStrategy', 'dc1': 3}",
        }
    )
    session = FakeSession()
    applied = entrypoint.migrate(session, config)
    assert [m.version for m in applied] == [m.version for m in discover()]
    assert session.statements[0] == (
        "CREATE KEYSPACE IF NOT EXISTS kicau_ring WITH replication = {'class': 'NetworkTopologyStrategy', 'dc1': 3}"
    )
    assert session.keyspace == "kicau_ring"
    assert sum(len(m.statements()) for m in discover()) <= len(session.statements)

    again = FakeSession(applied=set(session.applied))
    assert entrypoint.migrate(again, config) == []
    assert not any(s.startswith("CREATE TABLE IF NOT EXISTS accounts ") for s in again.statements)


class FakeCluster:
    def __init__(self, outcomes: list[Exception | None]) -> None:
        self.outcomes = outcomes
        self.shut_down = False

    def connect(self) -> str:
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return "session"

    def shutdown(self) -> None:
        self.shut_down = True


def test_connect_retries_while_cassandra_starts() -> None:
    outcomes: list[Exception | None] = [ConnectionRefusedError(), OSError("starting"), None]
    clusters: list[FakeCluster] = []
    now = [0.0]

    def factory(_: MigrateConfig) -> FakeCluster:
        clusters.append(FakeCluster(outcomes))
        return clusters[-1]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    cluster, session = entrypoint.connect(
        MigrateConfig.from_env({}), factory, sleep=sleep, clock=lambda: now[0], log=lambda _: None
    )
    assert session == "session" and cluster is clusters[-1]
    assert len(clusters) == 3 and [c.shut_down for c in clusters] == [True, True, False]


def test_connect_gives_up_after_the_timeout_with_a_hint() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def factory(_: MigrateConfig) -> FakeCluster:
        return FakeCluster([ConnectionRefusedError()])

    config = MigrateConfig.from_env({"KICAU_MIGRATE_TIMEOUT_SECONDS": "10"})
    with pytest.raises(StackError) as raised:
        entrypoint.connect(config, factory, sleep=sleep, clock=lambda: now[0], log=lambda _: None)
    assert "did not answer within 10 s" in str(raised.value)
    assert 10 <= now[0] <= 15


def test_main_reports_bad_configuration_as_exit_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert entrypoint.main({"KICAU_CASSANDRA_PORT": "none"}) == 1
    assert "hint:" in capsys.readouterr().err

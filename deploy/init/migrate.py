"""Apply Kicau's Cassandra migrations to the cluster that the ``KICAU_*`` environment names.

``python -m stack migrate`` only reaches the local engines on 127.0.0.1. Containers (the ``schema`` service in
docker-compose.yml) and the Kubernetes Job in deploy/kubernetes run this script instead. It calls
``stack.migrate.apply_migrations``, so the CQL files (stack/migrations/NNNN_*.cql) and the ``schema_migrations``
bookkeeping are the same everywhere.

Environment:

- ``KICAU_CASSANDRA_HOSTS``: comma-separated contact points (default ``127.0.0.1``)
- ``KICAU_CASSANDRA_PORT``: native protocol port (default 9042)
- ``KICAU_CASSANDRA_KEYSPACE``: keyspace (default ``kicau``)
- ``KICAU_CASSANDRA_REPLICATION``: replication map used when the keyspace is created (default SimpleStrategy,
  RF 1). On a ring: ``{'class': 'NetworkTopologyStrategy', 'dc1': 3}``. An existing keyspace keeps its
  replication: change it with ``ALTER KEYSPACE`` and a repair.
- ``KICAU_CASSANDRA_WRITE_CONSISTENCY``: consistency of the bookkeeping reads and writes (default LOCAL_ONE;
  LOCAL_QUORUM on a ring)
- ``KICAU_CASSANDRA_LOCAL_DC``: data centre to route to (optional)
- ``KICAU_CASSANDRA_USERNAME`` / ``KICAU_CASSANDRA_PASSWORD``: PasswordAuthenticator credentials (optional)
- ``KICAU_MIGRATE_TIMEOUT_SECONDS``: how long to keep retrying the first connection (default 180)

Exit status 0 when the schema is up to date, 1 otherwise.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stack.config import StackError
from stack.migrate import Migration, apply_migrations

DEFAULT_REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
CONSISTENCY_LEVELS = ("ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "EACH_QUORUM", "ALL")
# Every variable this script reads (tests/deploy checks the manifests set no other KICAU_* name by mistake).
ENVIRONMENT = (
    "KICAU_CASSANDRA_HOSTS",
    "KICAU_CASSANDRA_PORT",
    "KICAU_CASSANDRA_KEYSPACE",
    "KICAU_CASSANDRA_REPLICATION",
    "KICAU_CASSANDRA_WRITE_CONSISTENCY",
    "KICAU_CASSANDRA_LOCAL_DC",
    "KICAU_CASSANDRA_USERNAME",
    "KICAU_CASSANDRA_PASSWORD",
    "KICAU_MIGRATE_TIMEOUT_SECONDS",
)


@dataclass(frozen=True)
class MigrateConfig:
    hosts: tuple[str, ...]
    port: int
    keyspace: str
    replication: str
    consistency: str
    local_dc: str | None
    username: str | None
    password: str | None
    timeout_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MigrateConfig:
        def get(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        hosts = tuple(h.strip() for h in get("KICAU_CASSANDRA_HOSTS", "127.0.0.1").split(",") if h.strip())
        port_raw = get("KICAU_CASSANDRA_PORT", "9042")
        timeout_raw = get("KICAU_MIGRATE_TIMEOUT_SECONDS", "180")
        try:
            port = int(port_raw)
            timeout_seconds = float(timeout_raw)
        except ValueError:
            raise StackError(f"KICAU_CASSANDRA_PORT={port_raw!r} / KICAU_MIGRATE_TIMEOUT_SECONDS={timeout_raw!r}",
                             "give both as numbers") from None  # fmt: skip
        if not 0 < port < 65536:
            raise StackError(f"KICAU_CASSANDRA_PORT={port} is not a port", "use 1-65535 (Cassandra's is 9042)")
        consistency = get("KICAU_CASSANDRA_WRITE_CONSISTENCY", "LOCAL_ONE").upper()
        if consistency not in CONSISTENCY_LEVELS:
            raise StackError(f"KICAU_CASSANDRA_WRITE_CONSISTENCY={consistency!r} is not a consistency level",
                             "use one of " + ", ".join(CONSISTENCY_LEVELS))  # fmt: skip
        username = env.get("KICAU_CASSANDRA_USERNAME", "").strip() or None
        password = env.get("KICAU_CASSANDRA_PASSWORD", "") or None
        if (username is None) != (password is None):
            raise StackError("only one of KICAU_CASSANDRA_USERNAME and KICAU_CASSANDRA_PASSWORD is set",
                             "set both or neither")  # fmt: skip
        return cls(
            hosts=hosts or ("127.0.0.1",),
            port=port,
            keyspace=get("KICAU_CASSANDRA_KEYSPACE", "kicau"),
            replication=get("KICAU_CASSANDRA_REPLICATION", DEFAULT_REPLICATION),
            consistency=consistency,
            local_dc=env.get("KICAU_CASSANDRA_LOCAL_DC", "").strip() or None,
            username=username,
            password=password,
            timeout_seconds=timeout_seconds,
        )

    def describe(self) -> str:
        auth = f" as {self.username}" if self.username else ""
        return f"{','.join(self.hosts)}:{self.port} keyspace {self.keyspace}{auth}"


def build_cluster(config: MigrateConfig) -> Any:
    from cassandra import ConsistencyLevel
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=config.local_dc)),
        consistency_level=ConsistencyLevel.name_to_value[config.consistency],
        # DDL on a fresh node, or while a ring settles its schema, can exceed the driver's 10 s default.
        request_timeout=60,
    )
    auth = PlainTextAuthProvider(config.username, config.password) if config.username else None
    return Cluster(
        list(config.hosts),
        port=config.port,
        protocol_version=4,
        connect_timeout=10,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        auth_provider=auth,
        max_schema_agreement_wait=60,
    )


def connect(
    config: MigrateConfig,
    cluster_factory: Callable[[MigrateConfig], Any] = build_cluster,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    log: Callable[[str], None] = print,
) -> tuple[Any, Any]:
    """(cluster, session), retrying while Cassandra is still starting; a new Cluster per attempt."""
    deadline = clock() + config.timeout_seconds
    attempt = 0
    # The driver logs a traceback per refused attempt; one line per attempt from here says the same.
    driver_log = logging.getLogger("cassandra")
    level = driver_log.level
    while True:
        attempt += 1
        cluster = cluster_factory(config)
        driver_log.setLevel(logging.CRITICAL)
        try:
            return cluster, cluster.connect()
        except Exception as exc:
            cluster.shutdown()
            if clock() >= deadline:
                raise StackError(f"Cassandra at {config.describe()} did not answer within "
                                 f"{config.timeout_seconds:.0f} s: {type(exc).__name__}: {exc}",
                                 "check KICAU_CASSANDRA_HOSTS/PORT and that the cluster is up") from exc  # fmt: skip
            log(f"migrate: Cassandra not ready (attempt {attempt}: {type(exc).__name__}); retrying")
            sleep(min(5.0, 1.0 + attempt))
        finally:
            driver_log.setLevel(level)


def migrate(session: Any, config: MigrateConfig) -> list[Migration]:
    return apply_migrations(session, config.keyspace, config.replication)


def main(env: Mapping[str, str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = MigrateConfig.from_env(os.environ if env is None else env)
        print(f"migrate: {config.describe()}", flush=True)
        cluster, session = connect(config)
        try:
            applied = migrate(session, config)
        finally:
            cluster.shutdown()
    except StackError as exc:
        print(f"migrate: error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"migrate: hint: {exc.hint}", file=sys.stderr)
        return 1
    names = ", ".join(m.path.name for m in applied)
    print(f"migrate: applied {names}" if applied else "migrate: schema up to date", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Paths, ports and environment knobs shared by every stack command."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACK_DIR = ROOT / ".stack"
# Clients on this host reach Redis here (stack/services.py: redis_url).
REDIS_SOCKET = STACK_DIR / "redis" / "redis.sock"


def fits_socket_address(path: Path) -> bool:
    """Whether ``path`` can name a Unix socket (108 bytes on Linux, with room to spare); a checkout at a longer
    path keeps to TCP."""
    return len(str(path).encode()) < 100
ENGINES_SRC = Path(__file__).resolve().parent / "engines"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

HOST = "127.0.0.1"


class StackError(Exception):
    """A failure we can explain in one line; `hint` says what to do about it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not an integer", f"unset {name} or give it a number") from None


@dataclass(frozen=True)
class Ports:
    kafka: int
    kafka_controller: int
    cassandra: int
    cassandra_storage: int
    cassandra_jmx: int
    redis: int
    prometheus: int
    alertmanager: int


def ports() -> Ports:
    return Ports(
        kafka=env_int("KICAU_KAFKA_PORT", 9092),
        kafka_controller=env_int("KICAU_KAFKA_CONTROLLER_PORT", 9093),
        cassandra=env_int("KICAU_CASSANDRA_PORT", 9042),
        cassandra_storage=env_int("KICAU_CASSANDRA_STORAGE_PORT", 7000),
        cassandra_jmx=env_int("KICAU_CASSANDRA_JMX_PORT", 7199),
        redis=env_int("KICAU_REDIS_PORT", 6379),
        prometheus=env_int("KICAU_PROMETHEUS_PORT", 9090),
        # Not Alertmanager's 9093, which is Kafka's controller here (its gossip port, 9094, is not opened).
        alertmanager=env_int("KICAU_ALERTMANAGER_PORT", 9095),
    )


def engine_timeout() -> float:
    return float(env_int("KICAU_STACK_TIMEOUT", 180))


def service_timeout() -> float:
    return float(env_int("KICAU_SERVICE_TIMEOUT", 60))


def kafka_partitions() -> int:
    # A partition is the unit of the fanout's parallelism: this stack runs one fanout member (two in the scale-out
    # test) on two cores. Every fetch of the fanout carries every partition of both topics, so partitions beyond
    # the members are paid for on each fetch, by the fanout and by Kafka: six a topic cost ~150 µs of CPU a post
    # more than two at ~450 posts/s (stack/README.md). Deployments choose their own (deploy/).
    return env_int("KICAU_KAFKA_PARTITIONS", 2)


def cassandra_keyspace() -> str:
    return os.environ.get("KICAU_CASSANDRA_KEYSPACE", "").strip() or "kicau"


def cassandra_replication() -> str:
    return (
        os.environ.get("KICAU_CASSANDRA_REPLICATION", "").strip()
        or "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )


KAFKA_TOPICS = ("kicau.statuses", "kicau.follows", "kicau.notices")

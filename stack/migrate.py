"""Apply stack/migrations/NNNN_name.cql to Cassandra once each, recording them in schema_migrations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack.config import HOST, MIGRATIONS_DIR, StackError, cassandra_keyspace, cassandra_replication, ports

_NAME = re.compile(r"^(\d{4})_([\w\-]+)\.cql$")
_KEYSPACE = re.compile(r"^[A-Za-z]\w{0,47}$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self) -> list[str]:
        return split_statements(self.path.read_text())


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.cql")):
        match = _NAME.match(path.name)
        if not match:
            raise StackError(f"migration file {path.name} is not named NNNN_name.cql", f"rename it in {directory}")
        version = int(match.group(1))
        if version in found:
            raise StackError(f"two migrations share version {version:04d}: {found[version].path.name}, {path.name}",
                             "renumber one of them")  # fmt: skip
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def split_statements(text: str) -> list[str]:
    """Split CQL on ';' outside quotes and comments, dropping `--`, `//` and `/* */` comments."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        two = text[i : i + 2]
        if two in ("--", "//"):
            end = text.find("\n", i)
            i = n if end == -1 else end
            continue
        if two == "/*":
            end = text.find("*/", i + 2)
            i = n if end == -1 else end + 2
            current.append(" ")
            continue
        if ch in ("'", '"') or two == "$$":
            closer = "$$" if two == "$$" else ch
            start = i
            i += len(closer)
            while i < n:
                if text.startswith(closer, i):
                    # A doubled quote inside a quoted string is an escaped quote, not the end.
                    if closer != "$$" and text.startswith(closer * 2, i):
                        i += 2
                        continue
                    i += len(closer)
                    break
                i += 1
            current.append(text[start:i])
            continue
        if ch == ";":
            statement = "".join(current).strip()
            if statement:
                statements.append(statement)
            current = []
        else:
            current.append(ch)
        i += 1
    tail = "".join(current).strip()
    if tail:
        statements.append(tail)
    return statements


def apply_migrations(session: Any, keyspace: str, replication: str | None = None) -> list[Migration]:
    """Create the keyspace and bookkeeping table, apply pending migrations. Returns those applied now."""
    if not _KEYSPACE.match(keyspace):
        raise StackError(f"invalid keyspace name {keyspace!r}", "set KICAU_CASSANDRA_KEYSPACE to a plain identifier")
    replication = replication or cassandra_replication()
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}")
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations "
        "(version int PRIMARY KEY, name text, applied_at timestamp)"
    )
    done = {row.version for row in session.execute(f"SELECT version FROM {keyspace}.schema_migrations")}
    session.set_keyspace(keyspace)
    applied: list[Migration] = []
    for migration in discover():
        if migration.version in done:
            continue
        for number, statement in enumerate(migration.statements(), start=1):
            try:
                session.execute(statement, timeout=60)
            except Exception as exc:
                raise StackError(
                    f"migration {migration.path.name} statement {number} failed: {exc}\n  {statement[:300]}",
                    "fix the migration; statements before it were applied, so keep them idempotent (IF NOT EXISTS)",
                ) from exc
        session.execute(
            f"INSERT INTO {keyspace}.schema_migrations (version, name, applied_at) VALUES (%s, %s, toTimestamp(now()))",
            (migration.version, migration.name),
        )
        applied.append(migration)
    return applied


def run() -> list[Migration]:
    from cassandra.cluster import Cluster

    cluster = Cluster([HOST], port=ports().cassandra, protocol_version=4, connect_timeout=10)
    try:
        session = cluster.connect()
        # DDL on a fresh single node can exceed the driver's 10 s default while the schema settles.
        session.default_timeout = 60
        return apply_migrations(session, cassandra_keyspace())
    except StackError:
        raise
    except Exception as exc:
        raise StackError(f"Cassandra migration failed: {type(exc).__name__}: {exc}",
                         "check `python -m stack logs cassandra`") from exc  # fmt: skip
    finally:
        cluster.shutdown()

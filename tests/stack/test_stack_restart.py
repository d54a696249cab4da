"""Data written before `stack down` is still there after the engines come back (slow: one test on purpose)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from typing import Any

from test_stack_engines import consume_until, create_topic, produce

from stack.config import ROOT


def run_stack(*args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "stack", *args], cwd=ROOT, capture_output=True, text=True, timeout=400, check=False
    )
    assert proc.returncode == 0, f"stack {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"


async def test_data_survives_restart(cassandra_session: Any, scratch_keyspace: str, kafka_bootstrap: str) -> None:
    row_id = uuid.uuid4()
    cassandra_session.execute(
        f"INSERT INTO {scratch_keyspace}.scratch (id, body) VALUES (%s, %s)", (row_id, "before restart")
    )
    topic = f"kicau.test.restart.{uuid.uuid4().hex}"
    key = uuid.uuid4().bytes
    await create_topic(kafka_bootstrap, topic)
    await produce(kafka_bootstrap, topic, key, b"before restart")
    cassandra_session.cluster.shutdown()

    try:
        await asyncio.to_thread(run_stack, "down")
        await asyncio.to_thread(run_stack, "up", "--engines-only")

        from cassandra.cluster import Cluster

        cluster = Cluster(cassandra_session.cluster.contact_points, port=cassandra_session.cluster.port)
        try:
            session = cluster.connect()
            row = session.execute(
                f"SELECT body FROM {scratch_keyspace}.scratch WHERE id = %s", (row_id,), timeout=30
            ).one()
            assert row is not None and row.body == "before restart"
        finally:
            cluster.shutdown()
        assert await consume_until(kafka_bootstrap, topic, key, patience=60) == b"before restart"
    finally:
        # Later tests expect the services too.
        await asyncio.to_thread(run_stack, "up")

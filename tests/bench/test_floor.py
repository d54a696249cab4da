"""The bench's floor (bench/floor.py) on the real engines: the back reads exactly the page's keys in one round
trip and writes a post's row and event for real; the front puts one Redis round trip before relaying to it.
A floor that skipped its writes or read nothing would make every floor figure in latest.json a lie."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.floor import COUNTER_KEY, KEYSPACE, STATUS_ANSWER, TABLE, TOPIC
from stack.config import ROOT, VENV_PYTHON
from stack.gateways import wait_until_answering
from stack.procs import free_port
from stack.services import service_env


@contextlib.contextmanager
def _floor(log: Path, *args: str) -> Iterator[str]:
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen([str(VENV_PYTHON), "-m", "bench.floor", "--port", str(port), *args], cwd=ROOT,
                                   env=service_env(), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(process, f"{url}/hello", log, "floor")
        yield url
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def page(stack_redis: redis.Redis, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes]]:
    run = uuid.uuid4().hex
    keys = [f"test:floor:{run}:{{s:{i}}}" for i in range(3)]
    values = [b'{"n":%d}' % i for i in range(3)]
    for key, value in zip(keys, values, strict=True):
        stack_redis.set(key, value, ex=600)
    path = tmp_path_factory.mktemp("floor") / "page.keys"
    path.write_text("\n".join(keys) + "\n")
    return path, values


@pytest.fixture(scope="module")
def floor(page: tuple[Path, list[bytes]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("floor-logs")
    calls = logs / "back.call.sock"  # the front reaches the back on a call socket, as the stack's gateway does
    with _floor(logs / "back.log", "--page-keys", str(page[0]), "--call-socket", str(calls)), \
            _floor(logs / "front.log", "--back", f"kicau+unix://{calls}") as front:
        yield front


def test_home_floor_answers_the_pages_cached_values_through_a_counted_relay(
        floor: str, page: tuple[Path, list[bytes]], stack_redis: redis.Redis) -> None:
    before = int(stack_redis.get(COUNTER_KEY) or 0)
    answer = httpx.get(f"{floor}/home", timeout=10)
    assert answer.status_code == 200
    *statuses, card = page[1]
    assert answer.content == b"[" + b",".join(status + card for status in statuses) + b"]"
    assert int(stack_redis.get(COUNTER_KEY) or 0) > before  # the front's rate-limiter-shaped round trip ran


def test_home_floor_outlives_the_cards_expiry(floor: str, page: tuple[Path, list[bytes]],
                                              stack_redis: redis.Redis) -> None:
    """Account cards expire after ~5 minutes, and nothing refills one during a floor run: the floor then answers
    the card it last read (every request of a run failed while it was gone)."""
    *statuses, card = page[1]
    card_key = page[0].read_text().split()[-1]
    assert httpx.get(f"{floor}/home", timeout=10).status_code == 200
    stack_redis.delete(card_key)
    try:
        answer = httpx.get(f"{floor}/home", timeout=10)
        assert answer.status_code == 200
        assert answer.content == b"[" + b",".join(status + card for status in statuses) + b"]"
    finally:
        stack_redis.set(card_key, card, ex=600)


def test_home_floor_keeps_the_card_it_found_at_start(page: tuple[Path, list[bytes]], stack_redis: redis.Redis,
                                                     tmp_path: Path) -> None:
    """The card may expire between the floor's start and its first request (Kicau's copies keep serving it, so
    nothing reads it back into Redis): the back reads it as it starts, and answers it once it is gone."""
    *statuses, card = page[1]
    card_key = page[0].read_text().split()[-1]
    try:
        with _floor(tmp_path / "back.log", "--page-keys", str(page[0])) as back:
            stack_redis.delete(card_key)
            answer = httpx.get(f"{back}/home", timeout=10)
        assert answer.status_code == 200
        assert answer.content == b"[" + b",".join(status + card for status in statuses) + b"]"
    finally:
        stack_redis.set(card_key, card, ex=600)


def _events() -> int:
    """How many events the floor's topic holds (its partitions' end offsets added up)."""

    async def count() -> int:
        bootstrap = service_env()["KICAU_KAFKA_BOOTSTRAP"]
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        await admin.start()
        try:
            described = await admin.describe_topics([TOPIC])
        finally:
            await admin.close()
        partitions = [TopicPartition(TOPIC, p["partition"]) for t in described for p in t["partitions"]]
        assert partitions, f"no partitions in {described}"
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        await consumer.start()
        try:
            return sum((await consumer.end_offsets(partitions)).values())
        finally:
            await consumer.stop()

    return asyncio.run(count())


def test_post_floor_writes_a_row_and_an_event(floor: str, stack_cassandra: Any) -> None:
    def rows() -> int:
        return int(stack_cassandra.execute(f"SELECT COUNT(*) AS n FROM {KEYSPACE}.{TABLE}").one()["n"])

    answer = httpx.post(f"{floor}/post", json={"status": "floor"}, timeout=30)
    assert answer.status_code == 200 and answer.content == STATUS_ANSWER
    rows_before, events_before = rows(), _events()
    for _ in range(3):
        assert httpx.post(f"{floor}/post", json={"status": "floor"}, timeout=30).status_code == 200
    assert rows() == rows_before + 3
    assert _events() == events_before + 3

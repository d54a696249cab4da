"""When the fanout worker commits its offsets (services/fanout/worker.py), on the real Kafka: at most once per
interval while it is busy, at once when it falls idle, before it hands partitions over in a rebalance, and
never for a batch it has not applied. The fanout's own work is stood in for by a recorder: what is tested is
the consume-apply-commit loop against the broker."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import OffsetAndMetadata

from kicau import clients
from kicau.events import Event, StatusDeleted, encode_event
from kicau.metrics import FANOUT_CONSUMER_RENEWALS
from kicau.settings import CommonSettings
from services.fanout import worker as worker_module
from services.fanout.worker import FanoutWorker
from stack.services import service_env

PARTITIONS = 2


class Recorder:
    """Stands where the fanout service does: keeps what it is asked to apply, taking ``seconds`` per batch."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.applied: list[int] = []
        self.seconds = seconds

    async def apply(self, events: Sequence[Event]) -> None:
        await asyncio.sleep(self.seconds)
        self.applied += [event.status_id for event in events if isinstance(event, StatusDeleted)]


class CountingWorker(FanoutWorker):
    commits = 0

    async def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.commits += 1
        await super()._commit(offsets)


def _bootstrap() -> str:
    return service_env()["KICAU_KAFKA_BOOTSTRAP"]


@dataclass
class Broker:
    """A scratch topic of the real Kafka, a consumer group name of its own, an admin client and a producer."""

    topic: str
    group: str
    admin: AIOKafkaAdminClient
    producer: AIOKafkaProducer

    async def produce(self, status_id: int) -> None:
        event = StatusDeleted(status_id=status_id, account_id=status_id % 7)
        await self.producer.send_and_wait(self.topic, encode_event(event), key=b"%d" % (status_id % 7))

    async def committed(self) -> int:
        """Messages of the topic the group has committed, over all partitions."""
        offsets = await self.admin.list_consumer_group_offsets(self.group)
        return sum(o.offset for tp, o in offsets.items() if tp.topic == self.topic and o.offset >= 0)

    async def committed_is(self, count: int) -> bool:
        return await self.committed() == count


@contextlib.asynccontextmanager
async def _broker() -> AsyncIterator[Broker]:
    topic = f"kicau.test.commits.{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=_bootstrap())
    producer = AIOKafkaProducer(bootstrap_servers=_bootstrap(), acks="all")
    await admin.start()
    await producer.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
        yield Broker(topic, f"kicau-test-{uuid.uuid4().hex[:8]}", admin, producer)
    finally:
        await producer.stop()
        with contextlib.suppress(Exception):
            await admin.delete_topics([topic])
        await admin.close()


@contextlib.asynccontextmanager
async def _subscribed(kafka: Broker, fanout: Recorder, interval: float,
                      max_batch: int = 500) -> AsyncIterator[tuple[AIOKafkaConsumer, CountingWorker]]:
    """A worker of the scratch group, subscribed with its rebalance listener as the fanout's is, not yet running."""
    settings = CommonSettings(kafka_bootstrap=_bootstrap())
    consumer = clients.kafka_consumer(settings, group_id=kafka.group, fetch_max_wait_ms=100)
    worker = CountingWorker(consumer, fanout, max_batch, interval)  # type: ignore[arg-type]
    consumer.subscribe([kafka.topic], listener=worker.listener)
    await consumer.start()
    try:
        yield consumer, worker
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def _worker(kafka: Broker, fanout: Recorder, interval: float,
                  max_batch: int = 500) -> AsyncIterator[CountingWorker]:
    """The same worker running its loop, as the fanout's does."""
    async with _subscribed(kafka, fanout, interval, max_batch) as (_, worker):
        task = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _apply_by_hand(consumer: AIOKafkaConsumer, worker: FanoutWorker, count: int) -> dict[TopicPartition, int]:
    """Turns of the worker's loop taken by hand, without the idle commit of ``run``, until ``count`` records are
    applied; returns how many came from each partition."""
    taken: dict[TopicPartition, int] = {}
    while sum(taken.values()) < count:
        batch = await consumer.getmany(timeout_ms=1000)
        await worker._process(batch)
        for tp, records in batch.items():
            taken[tp] = taken.get(tp, 0) + len(records)
    return taken


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` (it asks the broker or the worker, which signal nothing) until it holds, within 30 s."""
    async with asyncio.timeout(30):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


def test_busy_commits_wait_for_the_interval_and_an_idle_worker_commits_at_once() -> None:
    async def scenario() -> None:
        async with _broker() as kafka:
            fanout = Recorder(seconds=0.2)
            async with _worker(kafka, fanout, interval=60.0, max_batch=4) as worker:
                await kafka.produce(0)
                await _until(lambda: kafka.committed_is(1))  # idle once it was applied
                idle_commits = worker.commits
                # 40 statuses at once, taken 4 at a time at 200 ms a batch: two seconds without an idle poll.
                for status_id in range(1, 41):
                    await kafka.produce(status_id)
                await _until(lambda: _true(len(fanout.applied) >= 21))
                assert await kafka.committed() == 1, "applied, but the interval has not passed"
                assert worker.commits == idle_commits
                await _until(lambda: kafka.committed_is(41))
                assert worker.commits == idle_commits + 1, "one commit once it fell idle"
                assert sorted(fanout.applied) == list(range(41))

    asyncio.run(scenario())


def test_interval_zero_commits_after_every_batch() -> None:
    async def scenario() -> None:
        async with _broker() as kafka, _worker(kafka, Recorder(), interval=0.0) as worker:
            async def counted(batches: int) -> bool:
                return worker.batches == batches

            for status_id in range(5):
                await kafka.produce(status_id)
                await _until(lambda n=status_id + 1: kafka.committed_is(n))  # type: ignore[misc]
                # The worker counts a batch once its commit has returned: the broker may show the commit first.
                await _until(lambda n=status_id + 1: counted(n))  # type: ignore[misc]
            assert worker.batches == worker.commits == 5

    asyncio.run(scenario())


def test_partitions_handed_over_in_a_rebalance_carry_their_applied_offsets() -> None:
    """What was applied and not yet committed is committed for the partitions a rebalance takes away, and only
    for those; the rest waits for the interval, the worker falling idle, or its stop."""

    async def scenario() -> None:
        async with _broker() as kafka, _subscribed(kafka, Recorder(), 60.0) as (consumer, worker):
            for status_id in range(20):
                await kafka.produce(status_id)
            taken = await _apply_by_hand(consumer, worker, 20)
            assert await kafka.committed() == 0, "applied, but the interval has not passed"
            assert len(taken) == PARTITIONS, "the statuses' keys cover both partitions"
            handed_over = min(taken, key=lambda tp: tp.partition)
            await worker.listener.on_partitions_revoked([handed_over])
            assert await kafka.committed() == taken[handed_over]
            await worker.commit_pending()
            assert await kafka.committed() == 20

    asyncio.run(scenario())


def test_a_batch_applied_across_a_rebalance_is_left_to_the_partitions_owners() -> None:
    """A batch fetched before a rebalance and applied after it is not committed by this worker, not even for a
    partition the rebalance gives back: that partition's owner starts from the last commit and applies the
    batch again (idempotent). Committed later, it could move the group's commit back behind another member's,
    and the partition would sit behind its log's end with nobody to read it (the fault suite's stalled worker,
    tests/faults/test_fanout_crash.py)."""

    async def scenario() -> None:
        async with _broker() as kafka:
            applied = asyncio.Event()

            class HeldUntilRebalanced(Recorder):
                async def apply(self, events: Sequence[Event]) -> None:
                    await applied.wait()
                    await super().apply(events)

            async with _subscribed(kafka, HeldUntilRebalanced(), 60.0) as (consumer, worker):
                for status_id in range(20):
                    await kafka.produce(status_id)
                batch: dict[TopicPartition, list[Any]] = {}
                async with asyncio.timeout(30):
                    while len(batch) < PARTITIONS:
                        batch.update(await consumer.getmany(timeout_ms=1000))
                applying = asyncio.create_task(worker._process(batch))
                # A second member joins: the group takes both partitions from the first and deals them out again,
                # one each, while the first is still applying its batch.
                async with _subscribed(kafka, Recorder(), 60.0) as (other, _):
                    await _until(lambda: _true(len(other.assignment()) == 1 and len(consumer.assignment()) == 1))
                    applied.set()
                    await applying
                    await worker.commit_pending()
                    assert await kafka.committed() == 0, "a batch of an earlier assignment was committed"

    asyncio.run(scenario())


async def _true(value: bool) -> bool:
    return value


def test_a_commit_kafka_refuses_is_kept_for_the_next_chance() -> None:
    """Kafka failing a commit (here: the consumer's commit raising as when the broker is unreachable) leaves
    the applied offsets pending instead of ending the worker; the next chance commits them."""

    async def scenario() -> None:
        async with _broker() as kafka, _subscribed(kafka, Recorder(), 60.0) as (consumer, worker):
            for status_id in range(10):
                await kafka.produce(status_id)
            await _apply_by_hand(consumer, worker, 10)
            real_commit = consumer.commit

            async def unreachable(*_: object, **__: object) -> None:
                raise KafkaConnectionError("broker unreachable")

            consumer.commit = unreachable
            await worker.commit_pending()
            assert await kafka.committed() == 0
            consumer.commit = real_commit
            await worker.commit_pending()
            assert await kafka.committed() == 10

    asyncio.run(scenario())


class Members:
    """Consumers of one scratch topic's group: the first (``make``) and the replacements a worker asks for
    (``renew``, subscribed with the worker's ``listener``), kept in ``started`` for the test to stop."""

    def __init__(self, kafka: Broker) -> None:
        self.kafka = kafka
        self.settings = CommonSettings(kafka_bootstrap=_bootstrap())
        self.listener: Any = None
        self.started: list[AIOKafkaConsumer] = []

    def make(self) -> AIOKafkaConsumer:
        return clients.kafka_consumer(self.settings, group_id=self.kafka.group, fetch_max_wait_ms=100)

    async def renew(self) -> AIOKafkaConsumer:
        consumer = self.make()
        consumer.subscribe([self.kafka.topic], listener=self.listener)
        await consumer.start()
        self.started.append(consumer)
        return consumer

    async def end(self, task: asyncio.Task[None], first: AIOKafkaConsumer) -> None:
        """Stop the worker's ``task`` and every consumer of the group, the first included."""
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for consumer in (first, *self.started):
            with contextlib.suppress(Exception):
                await consumer.stop()


class WedgedWorker(CountingWorker):
    """A worker whose commits time out while ``wedged``, as they did for good after a broker restart (the
    consumer's coordinator stuck: services/fanout/worker.py, ``RENEW_AFTER_SECONDS``)."""

    wedged = True

    async def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if self.wedged:
            raise TimeoutError
        await super()._commit(offsets)


def test_a_consumer_whose_commits_all_fail_is_replaced_and_the_new_one_consumes(monkeypatch: Any) -> None:
    """Once every commit has failed for ``RENEW_AFTER_SECONDS`` (here a second), the worker stops its consumer and
    a new member of the group takes the partitions: what was applied and never committed is applied again
    (idempotent), and what comes next is consumed and committed."""
    monkeypatch.setattr(worker_module, "RENEW_AFTER_SECONDS", 1.0)

    async def scenario() -> None:
        async with _broker() as kafka:
            fanout = Recorder()
            members = Members(kafka)
            first = members.make()
            worker = WedgedWorker(first, fanout, 500, 0.0, renew=members.renew)  # type: ignore[arg-type]
            members.listener = worker.listener
            first.subscribe([kafka.topic], listener=worker.listener)
            await first.start()
            task = asyncio.create_task(worker.run())
            try:
                await kafka.produce(1)
                await _until(lambda: _true(worker.renewals >= 1))
                assert worker.consumer in members.started and worker.consumer is not first
                assert await kafka.committed() == 0  # nothing could be committed before the change
                worker.wedged = False
                await kafka.produce(2)
                await _until(lambda: kafka.committed_is(2))
                assert set(fanout.applied) == {1, 2} and fanout.applied.count(1) >= 1
            finally:
                await members.end(task, first)

    asyncio.run(scenario())


class DeafConsumer:
    """A real consumer whose polls all come back empty, as a wedged fetcher's did: nothing applied, so no commit
    to fail. Everything else (assignment, positions, the log's ends) is the real consumer's."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, Any]:
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.consumer, name)


def test_a_consumer_that_fetches_nothing_while_records_wait_is_replaced(monkeypatch: Any) -> None:
    """Polls that come back empty while the partitions hold records beyond the consumer's position, for
    ``RENEW_AFTER_SECONDS`` (here a second), replace the consumer; polls that come back empty because nothing
    waits do not."""
    monkeypatch.setattr(worker_module, "RENEW_AFTER_SECONDS", 1.0)
    monkeypatch.setattr(worker_module, "STALL_CHECK_SECONDS", 0.2)
    renewed = FANOUT_CONSUMER_RENEWALS.labels("not_fetching")

    async def scenario() -> None:
        async with _broker() as kafka:
            fanout = Recorder()
            members = Members(kafka)
            first = members.make()
            worker = FanoutWorker(DeafConsumer(first), fanout, 500, 0.0,  # type: ignore[arg-type]
                                  renew=members.renew)
            members.listener = worker.listener
            first.subscribe([kafka.topic], listener=worker.listener)
            await first.start()
            task = asyncio.create_task(worker.run())
            try:
                await _until(lambda: _true(len(first.assignment()) == PARTITIONS))
                await asyncio.sleep(2.5)  # idle with nothing waiting: ten checks, no replacement
                assert worker.renewals == 0 and fanout.applied == []
                before = renewed._value.get()
                await kafka.produce(1)
                await _until(lambda: _true(worker.renewals >= 1))
                assert worker.consumer in members.started and renewed._value.get() == before + 1
                await _until(lambda: kafka.committed_is(1))
                assert fanout.applied == [1]
                await kafka.produce(2)
                await _until(lambda: kafka.committed_is(2))
                assert fanout.applied == [1, 2] and worker.renewals == 1
            finally:
                await members.end(task, first)

    asyncio.run(scenario())

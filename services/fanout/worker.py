"""The consume loop: fetch a batch, apply it, then commit its offsets (at-least-once, made exact by
idempotent writes).

Offsets are committed once applied, but at most every ``commit_interval`` seconds: a commit is a write to
Kafka's offsets log, and one per batch cost Kafka more than the statuses themselves. What is applied and not yet
committed is committed as soon as the fanout falls idle, before it stops, and before a rebalance hands its
partitions to another worker, so only a crash replays it (up to one interval more than before).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, RebalanceInProgressError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from kicau.events import Event, decode_event
from kicau.metrics import (
    CONSUMER_LAG,
    FANOUT_CONSUMER_RENEWALS,
    FANOUT_EVENTS,
    FANOUT_LINGER_SECONDS,
    FANOUT_LINGERS,
)
from kicau.workers import until_done
from services.fanout.service import Fanout

log = logging.getLogger(__name__)

LAG_INTERVAL_SECONDS = 0.5
# How long a commit may wait. aiokafka retries a commit until the group coordinator answers; after a broker
# restart the fanout once sat in such a commit for good (a fresh-clone CI run, 2026-12-02: no fetch, no log, for 18
# minutes after Kafka was back). A commit that gives up loses nothing: its offsets are kept for the next one, and
# at worst a batch is applied again, which changes nothing.
COMMIT_SECONDS = 10.0
LAG_READ_SECONDS = 0.5
# A consumer stuck this long is replaced by a new one (``_renew_if_stuck``): every commit failing, or records
# waiting in its partitions while its polls come back empty. After a broker restart a consumer was once left
# fetching nothing, every commit timing out, long after Kafka was back (a fresh-clone CI run, 2026-12-03: from the
# Kafka crash test on, 7 minutes, until the suite ended); a new member joins the group, is assigned the partitions
# and resumes from the last commit (what is replayed changes nothing).
RENEW_AFTER_SECONDS = 30.0
# While idle, how often the worker asks Kafka whether its partitions hold records it has not fetched. The
# consumer's own high-water marks come from its fetches, so a fetcher that stopped cannot tell: the log's end
# offsets are asked of the partition leaders (one ListOffsets request), and a wedged consumer whose commits
# have nothing to fail is caught too.
STALL_CHECK_SECONDS = 5.0
STALL_CHECK_TIMEOUT_SECONDS = 2.0


class BatchPacer:
    """When the worker takes its next batch: at once, unless events have been arriving faster than
    ``above_per_second`` and the last batch held more than one but less than ``full`` (a full batch means a
    backlog: the next one is waiting already); then no sooner than ``linger`` after the previous was taken.

    Meanwhile the consumer's fetcher keeps what arrived (it fetches no partition that still holds unread
    records), so a busy fanout applies fewer, larger batches: the work per batch (the fetch, the follower-list
    versions, a pipeline's round trip, the offsets) is paid once for more statuses. The rate is the last
    batches' events over the time between them, smoothed, and forgotten after an empty poll: a status that
    ends a quiet spell is taken the moment it arrives, and two statuses that happen to land close together in
    a slow stream (batches of one) do not make the next one wait."""

    SMOOTHING = 0.5  # weight of the newest batch in the rate

    def __init__(self, linger: float, above_per_second: float, full: int) -> None:
        self.linger = linger
        self.above_per_second = above_per_second
        self.full = full
        self.rate = 0.0  # events per second, smoothed over batches
        self._taken_at: float | None = None
        self._last_events = 0

    def wait(self, now: float) -> float:
        """Seconds to wait before taking the next batch."""
        if (self._taken_at is None or not 2 <= self._last_events < self.full
                or self.rate < self.above_per_second):
            return 0.0
        return max(0.0, self._taken_at + self.linger - now)

    def taken(self, events: int, now: float) -> None:
        """A batch of ``events`` was taken at ``now``."""
        if self._taken_at is not None:
            current = events / max(now - self._taken_at, 1e-3)
            self.rate = self.SMOOTHING * current + (1 - self.SMOOTHING) * self.rate
        self._taken_at, self._last_events = now, events

    def idle(self) -> None:
        """A poll found nothing: the stream is not busy."""
        self.rate, self._taken_at, self._last_events = 0.0, None, 0


class FanoutWorker:
    def __init__(self, consumer: AIOKafkaConsumer, fanout: Fanout, max_batch: int,
                 commit_interval: float = 0.0, pacer: BatchPacer | None = None,
                 renew: Callable[[], Awaitable[AIOKafkaConsumer]] | None = None) -> None:
        self.consumer = consumer
        # Makes, subscribes and starts a replacement consumer (``RENEW_AFTER_SECONDS``); None: never replaced.
        self._make_consumer = renew
        self._failing_since: float | None = None  # when the commits began to fail, while they all do
        # Since when idle polls have come back empty while the partitions held unfetched records (or their ends
        # could not be read); None once a batch arrives or nothing waits.
        self._stalled_since: float | None = None
        self._stall_checked_at = time.monotonic()
        self.renewals = 0
        self.fanout = fanout
        self.max_batch = max_batch
        self.commit_interval = commit_interval
        self.pacer = pacer or BatchPacer(0.0, 1.0, max_batch)
        self.batches = 0
        # Offsets of batches applied but not yet committed, and when the last commit was sent.
        self._pending: dict[TopicPartition, OffsetAndMetadata] = {}
        self._committed_at = time.monotonic()
        # Rebalances seen so far: a batch applied across one is never committed by this worker (``_process``).
        self._rebalances = 0
        self._lag_recorded_at = 0.0
        self.listener = _CommitBeforeRevoke(self)

    async def run(self) -> None:
        while True:
            wait = self.pacer.wait(time.monotonic())
            if wait > 0:
                FANOUT_LINGERS.inc()
                FANOUT_LINGER_SECONDS.inc(wait)
                await asyncio.sleep(wait)
            batch = await self.consumer.getmany(timeout_ms=200, max_records=self.max_batch)
            if not batch:
                self.pacer.idle()
                await self.commit_pending()  # idle: leave nothing applied and uncommitted
                await self._record_lag()
                await self._check_stalled()
                await self._renew_if_stuck()
                continue
            self._stalled_since = None
            self.pacer.taken(sum(len(records) for records in batch.values()), time.monotonic())
            await self._process(batch)
            self.batches += 1

    async def commit_pending(self, only: set[TopicPartition] | None = None) -> None:
        """Commit the applied offsets not yet committed (of the partitions in ``only``, if given)."""
        if only is None:
            offsets, self._pending = self._pending, {}
        else:
            offsets = {tp: offset for tp, offset in self._pending.items() if tp in only}
            for tp in offsets:
                del self._pending[tp]
        if not offsets:
            return
        self._committed_at = time.monotonic()
        try:
            async with asyncio.timeout(COMMIT_SECONDS):
                await self._commit(offsets)
            self._failing_since = None
        except (KafkaError, TimeoutError) as exc:
            if self._failing_since is None:
                self._failing_since = time.monotonic()
            # Kafka unreachable (it restarts, the coordinator moved): keep the offsets for the next chance instead
            # of ending the worker; a newer offset of a partition, added meanwhile, wins.
            log.warning("could not commit applied offsets (%r); trying again later", exc)
            for tp, offset in offsets.items():
                self._pending.setdefault(tp, offset)

    async def _check_stalled(self) -> None:
        """Every ``STALL_CHECK_SECONDS`` while idle: do the assigned partitions hold records beyond the consumer's
        position? Then the consumer is not fetching them (an idle poll came back empty). A check that cannot be
        answered in time counts as a stall too: a consumer that cannot read its own positions consumes nothing."""
        now = time.monotonic()
        if now - self._stall_checked_at < STALL_CHECK_SECONDS:
            return
        self._stall_checked_at = now
        assigned = list(self.consumer.assignment())
        waiting = False
        try:
            async with asyncio.timeout(STALL_CHECK_TIMEOUT_SECONDS):
                ends = await self.consumer.end_offsets(assigned) if assigned else {}
                for tp in assigned:
                    if ends.get(tp, 0) > await self.consumer.position(tp):
                        waiting = True
                        break
        except IllegalStateError:
            waiting = False  # a rebalance took a partition since assignment() was read: ask again next time
        except (KafkaError, TimeoutError) as exc:
            log.info("could not read the partitions' ends and positions (%r)", exc)
            waiting = True
        if not waiting:
            self._stalled_since = None
        elif self._stalled_since is None:
            self._stalled_since = now

    async def _renew_if_stuck(self) -> None:
        """Replace the consumer once its commits have all failed, or its polls have come back empty while records
        waited, for ``RENEW_AFTER_SECONDS``: the old one is stopped (bounded), what it applied and could not commit
        is left to be replayed (a batch applied across the change is not committed either), and a new one joins the
        group. A replacement that cannot start yet (Kafka still away) is tried again until one does."""
        if self._make_consumer is None:
            return
        now = time.monotonic()
        failing, stalled = self._failing_since, self._stalled_since
        if failing is not None and now - failing >= RENEW_AFTER_SECONDS:
            reason = "commits_failing"
            log.warning("fanout consumer: every commit failed for %.0f s; replacing it", now - failing)
        elif stalled is not None and now - stalled >= RENEW_AFTER_SECONDS:
            reason = "not_fetching"
            log.warning("fanout consumer: records waited unfetched for %.0f s; replacing it", now - stalled)
        else:
            return
        old = self.consumer
        try:
            async with asyncio.timeout(COMMIT_SECONDS):
                await old.stop()
        except Exception as exc:  # a wedged consumer may not stop cleanly: it is dropped all the same
            log.warning("the old consumer did not stop cleanly (%r)", exc)
        self._pending.clear()
        self._rebalances += 1
        while True:
            try:
                self.consumer = await self._make_consumer()
                break
            except Exception as exc:  # Kafka still away: nothing to consume meanwhile
                log.warning("could not start a new consumer yet (%r); trying again", exc)
                await asyncio.sleep(1.0)
        self._failing_since = self._stalled_since = None
        self._stall_checked_at = time.monotonic()
        self.renewals += 1
        FANOUT_CONSUMER_RENEWALS.labels(reason).inc()

    async def hand_over(self, revoked: list[TopicPartition]) -> None:
        """A rebalance takes ``revoked`` away: commit what was applied of them, once, and keep nothing of theirs.

        Offsets of a partition kept past its revocation could be committed after a later rebalance gives it back,
        moving the group's commit back behind what another member committed meanwhile: the partition would
        then sit behind its log's end with nobody to read it again (seen with a worker stalled past the session
        timeout while the other was killed, tests/faults/test_fanout_crash.py)."""
        self._rebalances += 1
        await self.commit_pending(only=set(revoked))
        for tp in revoked:
            self._pending.pop(tp, None)  # a failed commit put them back for a retry that must not happen

    async def _process(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        rebalances = self._rebalances
        events: list[Event] = []
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, records in batch.items():
            for record in records:
                try:
                    events.append(decode_event(record.value or b""))
                except (msgspec.DecodeError, msgspec.ValidationError):
                    # A malformed event can never be applied; skipping it keeps the partition moving.
                    FANOUT_EVENTS.labels("malformed").inc()
                    log.error("skipping malformed event at %s:%s offset %s", tp.topic, tp.partition, record.offset)
            offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "")
        # Events of one partition keep their order; different partitions never need ordering between them.
        await self._apply_with_retry(events)
        if rebalances != self._rebalances:
            # The batch was fetched before a rebalance that took its partitions (and may have given some back):
            # their owner starts from the last commit and applies it again, which changes nothing.
            log.info("a rebalance came during a batch: its offsets are left to the partitions' owners")
            return
        self._pending.update(offsets)
        now = time.monotonic()
        if now - self._committed_at >= self.commit_interval:
            await self.commit_pending()
        # The lag gauge at most every LAG_INTERVAL_SECONDS while busy (and whenever idle, in ``run``): reading
        # every partition's position after each batch of a few events was ~5% of the fanout's CPU per post.
        if now - self._lag_recorded_at >= LAG_INTERVAL_SECONDS:
            await self._record_lag()

    async def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Commit what this member still owns. A rebalance during the batch (another worker joined or left)
        may have moved some partitions away: their new owner replays from the last commit, which changes
        nothing because every write is idempotent, so losing those commits is safe and crashing is not."""
        owned = {tp: offset for tp, offset in offsets.items() if tp in self.consumer.assignment()}
        if len(owned) < len(offsets):
            log.info("partitions moved during a batch; committing the %d still assigned", len(owned))
        if not owned:
            return
        try:
            await self.consumer.commit(owned)
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as exc:
            log.warning("commit skipped after a rebalance (%s); the batch will be replayed idempotently", exc)

    async def _apply_with_retry(self, events: list[Event]) -> None:
        # Redis or Cassandra unavailable: hold the batch (uncommitted) and retry, never skip it.
        await until_done(lambda: self.fanout.apply(events), f"applying a batch of {len(events)} events")

    async def _record_lag(self) -> None:
        self._lag_recorded_at = time.monotonic()
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                # A partition just assigned has no position until its committed offset is fetched, and
                # position() waits for that as long as the coordinator is away: the gauge is not worth a stall.
                async with asyncio.timeout(LAG_READ_SECONDS):
                    position = await self.consumer.position(tp)
            except (IllegalStateError, TimeoutError):
                continue  # revoked by a rebalance since assignment() was read, or no position yet
            CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))


class _CommitBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what was applied of the partitions a rebalance takes away before it does, so that their next owner
    starts where this worker stopped instead of replaying (online followers would get those events twice)."""

    def __init__(self, worker: FanoutWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._worker.hand_over(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        pass

"""Group commit for Cassandra writes: concurrent executions of one prepared write leave as one batch. A write may
be several statements that its caller makes together (a status's row and its place in the author's list): they
leave in the same batch, with no order between them.

Most of a small write's cost is the request around it (framing, the native-transport queue, a system call each
way, the driver's thread hand-offs), and a batch pays it once. Measured on the 2-core bench machine, when a post
made three writes (its row, its place in the author's list, and a counter since dropped, kicau/status_counts.py):

* the writes alone, 5,000 posts: batches of 8 cost Cassandra 0.4-0.6 ms of CPU a post and the client 0.3 ms,
  against 1.0-1.4 ms and 0.8-1.3 ms one statement at a time;
* the whole post path under ``wrk -c32``, groups of ~4.6 on average: Cassandra 1.2-1.6 ms a post against
  1.9-2.0 ms, the post service 1.5-1.7 ms against 1.9-2.3 ms, and 336-377 posts/s against 264-311.

Nothing waits to fill a group: a write goes out at once when no batch of its statement is in flight
(``max_in_flight``, one by default), so alone it costs what it did, one round trip. Only writes that arrive
while a batch is in flight queue up, and they leave together as soon as it returns (what Kafka's producer does
with its batches; "natural batching"). With two in flight the groups held ~3 writes and saved Cassandra about
half as much.

Every caller still gets its own outcome:

* a value that cannot be bound fails at once, for that caller only;
* a batch Cassandra refuses as invalid (nothing of it applied) is sent again one write at a time, so only the
  write at fault fails;
* a batch that fails otherwise (a timeout, an unavailable replica) fails each of its writes, and each caller
  handles that as it handled a failed statement (a write that timed out may have been applied, batch or not).

An UNLOGGED batch gives no atomicity across partitions, and none is asked of it: a caller that needs one write
to land before another awaits the first before it starts the second, grouped or not.

Cassandra warns about (and at ``batch_size_fail_threshold``, default 50 KiB, refuses) large batches, and warns
when an unlogged batch spans more partitions than ``unlogged_batch_across_partitions_warn_threshold`` (10). A
group stays under the refusal by default: at most 30 writes and 40 KiB of values (a larger write still goes,
alone). The size warning comes at 5 KiB, though, and thirty writes of two statements span up to 60 partitions:
the stack's node and the compose file raise both warn limits (64 KiB, 1,000 partitions).

Why 30 (it was 10): under ``wrk -c32`` posts the groups of 10 were mostly full, and posts queued behind them.
Side by side on the 2-core bench machine, two alternations of the post service at 10 and 30: 1,060 / 1,064
against 1,206 / 1,367 posts/s, and 1,447 / 1,491 against 1,203 / 1,008 µs of CPU a post over every process
(Cassandra's share 430 / 546 against 351 / 254), with groups of ~10.5 writes. Larger groups only paid once the
driver's sockets had TCP_NODELAY (kicau/clients.py): before, a batch of 15 posts or more waited ~40 ms on Nagle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from cassandra import InvalidRequest
from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType, BoundStatement, PreparedStatement

from kicau.clients import execute
from kicau.metrics import CASSANDRA_WRITE_GROUP_SIZE

MAX_GROUP = 30
MAX_GROUP_BYTES = 40 * 1024

Params = Sequence[Any]


def _value_bytes(params: Params) -> int:
    """Roughly what the values weigh in a batch (Cassandra counts the mutation's size, about the same)."""
    size = 0
    for value in params:
        size += len(value.encode()) if isinstance(value, str) else len(value) if isinstance(value, bytes) else 8
    return size


class GroupedWrite:
    """One prepared write statement, or several that each caller makes together; ``await write(params, ...)``
    (one set of values for each statement) as with :func:`kicau.clients.execute`.

    Several statements make one write of a caller's: they leave in the same batch, and ``max_group`` counts
    callers. They land with no order between them, and a failure or a crash of Cassandra may leave some of them
    applied and not the others (as for an unlogged batch); a caller that needs an order makes two writes.
    """

    def __init__(self, session: Session, statement: PreparedStatement | Sequence[PreparedStatement], *, name: str,
                 max_group: int = MAX_GROUP, max_group_bytes: int = MAX_GROUP_BYTES, max_in_flight: int = 1) -> None:
        if max_group < 1 or max_in_flight < 1:
            raise ValueError("a group holds at least one write, and at least one group is in flight")
        self._session = session
        self._statements = (statement,) if isinstance(statement, PreparedStatement) else tuple(statement)
        if not self._statements:
            raise ValueError("a write makes at least one statement")
        self._consistency = self._statements[0].consistency_level
        self._max_group = max_group
        self._max_group_bytes = max_group_bytes
        self._max_in_flight = max_in_flight
        self._sizes = CASSANDRA_WRITE_GROUP_SIZE.labels(name)
        self._queued: list[_Queued] = []
        self._in_flight = 0

    async def write(self, *params: Params) -> None:
        if len(params) != len(self._statements):
            raise ValueError(f"{len(self._statements)} sets of values expected, one for each statement")
        # Bound here, so that a value of the wrong type fails this caller alone and never the batch it would join.
        bound = [statement.bind(values) for statement, values in zip(self._statements, params, strict=True)]
        if self._max_group == 1:  # grouping turned off: each write is its own request, as many in flight as asked
            await self._execute_alone(bound)
            return
        size = sum(map(_value_bytes, params))
        queued = _Queued(bound, size, asyncio.get_running_loop().create_future())
        self._queued.append(queued)
        if self._in_flight < self._max_in_flight:
            self._send_next()
        await queued.done

    def _send_next(self) -> None:
        group: list[_Queued] = []
        size = 0
        for queued in self._queued:
            if group and (len(group) == self._max_group or size + queued.size > self._max_group_bytes):
                break
            group.append(queued)
            size += queued.size
        del self._queued[:len(group)]
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._send(group))
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight -= 1
        if self._queued and self._in_flight < self._max_in_flight:
            self._send_next()

    async def _send(self, group: list[_Queued]) -> None:
        try:
            self._sizes.observe(len(group))
            if len(group) == 1:
                await self._execute_alone(group[0].bound)
            else:
                batch = self._batch()
                for queued in group:
                    for bound in queued.bound:
                        batch.add(bound)
                try:
                    await execute(self._session, batch)
                except InvalidRequest:
                    # Cassandra refused the batch before applying any of it, for the values of one write (a null
                    # key, say) or for its size: each write goes alone, so only the write at fault fails.
                    await self._send_alone(group)
                    return
        except Exception as exc:
            for queued in group:
                if not queued.done.done():
                    queued.done.set_exception(exc)
        except BaseException:  # the send itself was cancelled (the process is stopping): so are its writes
            for queued in group:
                queued.done.cancel()
            raise
        else:
            for queued in group:
                if not queued.done.done():
                    queued.done.set_result(None)

    def _batch(self) -> BatchStatement:
        return BatchStatement(batch_type=BatchType.UNLOGGED, consistency_level=self._consistency)

    async def _execute_alone(self, bound: list[BoundStatement]) -> None:
        """One caller's write: its statement, or its statements in one batch."""
        if len(bound) == 1:
            await execute(self._session, bound[0])
            return
        batch = self._batch()
        for statement in bound:
            batch.add(statement)
        await execute(self._session, batch)

    async def _send_alone(self, group: list[_Queued]) -> None:
        outcomes = await asyncio.gather(*[self._execute_alone(queued.bound) for queued in group],
                                        return_exceptions=True)
        for queued, outcome in zip(group, outcomes, strict=True):
            if queued.done.done():
                continue
            if isinstance(outcome, BaseException):
                queued.done.set_exception(outcome)
            else:
                queued.done.set_result(None)


class _Queued:
    __slots__ = ("bound", "done", "size")

    def __init__(self, bound: list[BoundStatement], size: int, done: asyncio.Future[None]) -> None:
        self.bound = bound
        self.size = size
        self.done = done


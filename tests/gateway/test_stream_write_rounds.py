"""Write rounds of directly written streams (services/gateway/streaming.py): the events dispatched in one turn of
the loop reach each connection in one write, in order, at the start of the next turn; a lone event is not held
longer than that; every delivery is timed once. The hub's Redis is never used here (no connection is opened): the
streams end to end are tested in test_streaming.py and test_streaming_bounds.py, and measured by the delivery
bench."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from kicau.metrics import DELIVERY_LATENCY
from kicau.stream_events import StreamDelivery
from services.gateway.streaming import TIMING_BLOCK, Connection, DeliveryTally, StreamEvent, StreamHub, TransportSink


class Transport:
    """What a sink needs of a transport, recording each write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing


def _hub_with(*account_ids: int) -> tuple[StreamHub, dict[int, Transport]]:
    hub = StreamHub(Redis(), queue_size=8, per_account=4)
    transports: dict[int, Transport] = {}
    for account_id in account_ids:
        connection = Connection(account_id=account_id, transport="sse", limit=8)
        transports[account_id] = Transport()
        connection.write_directly(TransportSink(transports[account_id], limit_bytes=1 << 20))  # type: ignore[arg-type]
        hub._connections[account_id].add(connection)  # as StreamHub.open registers it, without Redis
    return hub, transports


def _delivery(status_id: int, recipients: list[int]) -> StreamDelivery:
    return StreamDelivery(event="update", status_id=status_id, accepted_at=0.0, payload=f'{{"id":"{status_id}"}}',
                          recipients=recipients)


def _frame(status_id: int) -> bytes:
    return StreamEvent("update", str(status_id), f'{{"id":"{status_id}"}}').sse_chunk()


async def _next_turn() -> None:
    await asyncio.sleep(0)


async def test_events_of_one_turn_leave_in_one_write_per_connection_in_order() -> None:
    hub, transports = _hub_with(1, 2)
    hub.dispatch(_delivery(10, [1, 2]))
    hub.dispatch(_delivery(11, [2]))
    hub.dispatch(_delivery(12, [1, 2]))
    assert transports[1].writes == [] and transports[2].writes == [], "held until the turn ends"
    await _next_turn()
    assert transports[1].writes == [_frame(10) + _frame(12)]
    assert transports[2].writes == [_frame(10) + _frame(11) + _frame(12)]


async def test_a_lone_event_leaves_at_the_next_turn_and_rounds_do_not_mix() -> None:
    hub, transports = _hub_with(1)
    hub.dispatch(_delivery(10, [1]))
    await _next_turn()
    assert transports[1].writes == [_frame(10)]
    hub.dispatch(_delivery(11, [1]))
    await _next_turn()
    assert transports[1].writes == [_frame(10), _frame(11)]


async def test_a_connection_cut_off_before_its_round_gets_nothing_more() -> None:
    hub, transports = _hub_with(1, 2)
    hub.dispatch(_delivery(10, [1, 2]))
    (connection,) = hub._connections[1]
    connection._cut_off()  # as a reader past its bound is, between the dispatch and the round
    await _next_turn()
    assert transports[1].writes == []
    assert transports[2].writes == [_frame(10)]
    hub.dispatch(_delivery(11, [1, 2]))
    await _next_turn()
    assert transports[1].writes == [] and transports[2].writes == [_frame(10), _frame(11)]


async def test_a_closed_transport_is_not_written() -> None:
    hub, transports = _hub_with(1)
    hub.dispatch(_delivery(10, [1]))
    transports[1].closing = True
    await _next_turn()
    assert transports[1].writes == []


def _latencies() -> tuple[float, float, float]:
    """The delivery histogram's count, sum, and count at or under 100 ms."""
    (family,) = DELIVERY_LATENCY.collect()
    by_name = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    return (by_name[("kicau_stream_delivery_latency_seconds_count", None)],
            by_name[("kicau_stream_delivery_latency_seconds_sum", None)],
            by_name[("kicau_stream_delivery_latency_seconds_bucket", "0.1")])


async def test_every_delivery_of_a_round_is_timed_once_and_never_earlier_than_written() -> None:
    """Rounds time their writes in blocks (``DeliveryTally``): 70 streams are three blocks, the last partial."""
    readers = list(range(1, 71))
    hub, transports = _hub_with(*readers)
    count, total, _ = _latencies()
    accepted = time.time() * 1000.0 - 200.0  # accepted 200 ms ago
    hub.dispatch(StreamDelivery(event="update", status_id=10, accepted_at=accepted, payload='{"id":"10"}',
                                recipients=readers))
    hub.dispatch(StreamDelivery(event="update", status_id=11, accepted_at=accepted, payload='{"id":"11"}',
                                recipients=readers[:5]))
    await _next_turn()
    written_by = time.time()
    assert all(len(transports[r].writes) == 1 for r in readers)
    after, after_total, fast = _latencies()
    assert after - count == 75  # one observation per stream and event, none twice, none lost
    mean = (after_total - total) / 75
    assert 0.2 <= mean <= written_by - accepted / 1000.0
    assert fast == _latencies()[2]  # and none of them under 100 ms


def test_a_tally_observes_each_block_at_its_end() -> None:
    tally = DeliveryTally()
    event = StreamEvent("update", "1", "{}", accepted_at=time.time() * 1000.0 - 50.0)
    count, _, _ = _latencies()
    for _ in range(TIMING_BLOCK - 1):
        tally.add([event])
    assert _latencies()[0] == count, "a block is observed once complete"
    tally.add([event])
    assert _latencies()[0] == count + TIMING_BLOCK
    tally.add([event, StreamEvent("update", "2", "{}")])  # an event without an acceptance time is not timed
    tally.observe()
    tally.observe()  # nothing left: observes nothing
    assert _latencies()[0] == count + TIMING_BLOCK + 1

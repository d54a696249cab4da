"""Write rounds of directly written streams (services/gateway/streaming.py): the events dispatched in one turn of
the loop reach each connection in one write, in order, at the start of the next turn; a lone event is not held
longer than that. The hub's Redis is never used here (no connection is opened): the streams end to end are
tested in test_streaming.py and test_streaming_bounds.py, and measured by the delivery bench."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from kicau.stream_events import StreamDelivery
from services.gateway.streaming import Connection, StreamEvent, StreamHub, TransportSink


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

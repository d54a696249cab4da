"""A large author's deliveries (``StreamHub._deliver_large_in_order``) are resolved concurrently, each with reads of
the graph service (which connected accounts follow the author; for a reply, the lists' replies policies), yet reach
streams in the order they arrived: a reply whose reads are slow is not overtaken by the author's next status, nor a
status by its own deletion. Another author's deliveries do not wait for it. The hub's Redis is never used here;
end to end: tests/timeline/test_large_accounts.py."""

from __future__ import annotations

import asyncio
from typing import Literal

from redis.asyncio import Redis

from kicau.follow_options import DEFAULT, FollowOptions
from kicau.lists import Membership
from kicau.stream_events import StreamDelivery
from services.gateway.streaming import Connection, StreamEvent, StreamHub, TransportSink
from tests.gateway.test_stream_write_rounds import Transport

READER = 1
SLOW, OTHER = 5, 6  # authors


class Graph:
    """Which connected accounts follow an author: every one asked about; the answer for ``SLOW``'s first delivery
    is held until the test releases it."""

    def __init__(self) -> None:
        self.held: asyncio.Future[None] | None = None
        self.asked: list[int] = []

    async def followers_among(self, author: int, candidates: list[int]) -> dict[int, FollowOptions]:
        self.asked.append(author)
        if author == SLOW and self.held is None:
            self.held = asyncio.get_running_loop().create_future()
            await self.held
        return dict.fromkeys(candidates, DEFAULT)

    async def memberships_of(self, author: int) -> list[Membership]:
        return []


def _large(event: Literal["update", "delete"], status_id: int, author: int) -> StreamDelivery:
    payload = str(status_id) if event == "delete" else f'{{"id":"{status_id}"}}'
    return StreamDelivery(event=event, status_id=status_id, accepted_at=0.0, payload=payload, recipients=[],
                          author_id=author, followers_of_author=True)


def _frame(event: Literal["update", "delete"], status_id: int) -> bytes:
    if event == "delete":
        return StreamEvent("delete", None, str(status_id)).sse_chunk()
    return StreamEvent("update", str(status_id), f'{{"id":"{status_id}"}}').sse_chunk()


def _hub_reading(graph: Graph) -> tuple[StreamHub, Transport]:
    """A hub asking ``graph``, and the transport of ``READER``'s one stream on it, written directly."""
    hub = StreamHub(Redis(), queue_size=8, per_account=4, followers_among=graph.followers_among,
                    memberships_of=graph.memberships_of)
    connection = Connection(account_id=READER, transport="sse", limit=8)
    transport = Transport()
    connection.write_directly(TransportSink(transport, limit_bytes=1 << 20))  # type: ignore[arg-type]
    hub._connections[READER].add(connection)  # as StreamHub.open registers it, without Redis
    return hub, transport


async def _turns(count: int = 20) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_large_authors_deliveries_reach_streams_in_order_whatever_their_reads_take() -> None:
    graph = Graph()
    hub, transport = _hub_reading(graph)

    hub._deliver_large_in_order(_large("update", 10, SLOW))  # its reads wait
    hub._deliver_large_in_order(_large("update", 11, SLOW))
    hub._deliver_large_in_order(_large("delete", 10, SLOW))
    hub._deliver_large_in_order(_large("update", 20, OTHER))
    await _turns()
    assert graph.asked == [SLOW, SLOW, SLOW, OTHER], "every delivery's reads are made at once"
    sent = b"".join(transport.writes)
    assert sent == _frame("update", 20), "the other author's status does not wait; the slow author's all do"

    assert graph.held is not None
    graph.held.set_result(None)
    await asyncio.wait(hub._inflight)
    await _turns()  # the write round
    assert b"".join(transport.writes) == (_frame("update", 20) + _frame("update", 10) + _frame("update", 11)
                                          + _frame("delete", 10))
    assert not hub._large_pending, "nothing is kept once every delivery is out"


async def test_a_delivery_whose_reads_fail_does_not_hold_back_the_next() -> None:
    class Failing(Graph):
        async def followers_among(self, author: int, candidates: list[int]) -> dict[int, FollowOptions]:
            self.asked.append(author)
            if len(self.asked) == 1:
                raise ConnectionError("the graph service is away")
            return dict.fromkeys(candidates, DEFAULT)

    graph = Failing()
    hub, transport = _hub_reading(graph)

    hub._deliver_large_in_order(_large("update", 10, SLOW))  # lost: its followers could not be read
    hub._deliver_large_in_order(_large("update", 11, SLOW))
    await asyncio.wait(hub._inflight)
    await _turns()
    assert b"".join(transport.writes) == _frame("update", 11)

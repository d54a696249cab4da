"""What a gateway's public and hashtag streams leave out (services/gateway/streaming.py, kicau/blocks_and_mutes.py):
the statuses of authors an account blocks or mutes or that block it, as the graph service's announcements change
them, at once and then read again. The hub's Redis is never used here; the streams end to end are tested in
tests/graph/test_blocks_and_mutes.py."""

from __future__ import annotations

import asyncio

from kicau.stream_events import StreamDelivery
from services.gateway.streaming import StreamEvent
from tests.gateway.test_stream_write_rounds import _hub_with

AUTHOR = 7


def _public(status_id: int, author: int = AUTHOR) -> StreamDelivery:
    return StreamDelivery(event="update", status_id=status_id, accepted_at=0.0, payload=f'{{"id":"{status_id}"}}',
                          recipients=[0], author_id=author, public=True)


def _frame(status_id: int) -> bytes:
    return StreamEvent("update", None, f'{{"id":"{status_id}"}}', public=True).sse_chunk()


async def test_public_events_skip_listeners_that_leave_their_author_out() -> None:
    hub, transports = _hub_with(1, 2)
    for held in hub._connections.values():
        hub._public.update(held)  # as StreamHub.listen adds them, without Redis
    hub._unwanted = {1: frozenset({AUTHOR}), 2: frozenset()}
    hub.dispatch(_public(10))
    hub.dispatch(_public(11, author=8))
    await asyncio.sleep(0)
    assert transports[1].writes == [_frame(11)]
    assert transports[2].writes == [_frame(10) + _frame(11)]

    # Announced changes apply at once: 2 now mutes the author, 1 no longer leaves it out.
    hub._hides_changed(f"2:{AUTHOR}:1:0".encode())
    hub._hides_changed(f"1:{AUTHOR}:0:0".encode())
    hub._hides_changed(b"not:a:change")  # dropped, logged
    assert hub._unwanted == {1: frozenset(), 2: frozenset({AUTHOR})}
    hub.dispatch(_public(12))
    await asyncio.sleep(0)
    assert transports[1].writes == [_frame(11), _frame(12)]
    assert transports[2].writes == [_frame(10) + _frame(11)]
    # The other side of a block: an account blocked by a listener leaves the listener out of its own streams.
    hub._hides_changed(f"{AUTHOR}:1:1:1".encode())
    assert hub._unwanted[1] == frozenset({AUTHOR})


async def test_a_list_read_while_a_change_arrives_is_read_again() -> None:
    hub, _ = _hub_with(1)
    answers = [[AUTHOR], [AUTHOR, 8]]
    reads = 0

    async def unwanted_of(account_id: int) -> list[int]:
        nonlocal reads
        reads += 1
        if reads == 1:
            hub._hides_changed(b"1:8:1:0")  # announced while the first read is under way
        return answers[reads - 1]

    hub.unwanted_of = unwanted_of
    await hub._load_unwanted(1)
    assert (reads, hub._unwanted[1]) == (2, frozenset({AUTHOR, 8}))

    async def unavailable(account_id: int) -> list[int]:
        raise OSError("the timeline service is away")

    hub.unwanted_of = unavailable
    await hub._load_unwanted(1)  # logged; the list stays as it was
    assert hub._unwanted[1] == frozenset({AUTHOR, 8})

"""Timeline members (kicau/feeds.py): byte order is newest first, the sentinel sorts before every member, and
the encoding round-trips every 63-bit id, one member at a time or a whole range reply at once."""

from __future__ import annotations

import random

import pytest

from kicau import keys
from kicau.feeds import feed_member, status_of, statuses_of

EDGES = [0, 1, 2, (1 << 16) - 1, 1 << 32, (1 << 63) - 2, (1 << 63) - 1]


def test_members_round_trip() -> None:
    rng = random.Random(6)
    for status_id in [*EDGES, *(rng.randrange(1 << 63) for _ in range(1000))]:
        member = feed_member(status_id)
        assert len(member) == 8
        assert status_of(member) == status_id


def test_byte_order_is_newest_first_after_the_sentinel() -> None:
    rng = random.Random(7)
    ids = sorted({*EDGES, *(rng.randrange(1 << 63) for _ in range(1000))}, reverse=True)
    members = [feed_member(i) for i in ids]
    assert members == sorted(members), "a newer status must sort before an older one"
    assert all(m > keys.FEED_SENTINEL for m in members), "the sentinel must stay at the head"


def test_a_range_reply_decodes_at_once_as_member_by_member() -> None:
    rng = random.Random(8)
    ids = [*EDGES, *(rng.randrange(1 << 63) for _ in range(200))]
    members = [feed_member(i) for i in ids]
    assert statuses_of(members) == [status_of(m) for m in members] == ids
    assert statuses_of([]) == []
    with pytest.raises(ValueError):
        statuses_of([feed_member(1), b"short"])

"""The public timeline as pure logic (kicau/public_timeline.py, services/fanout/service.py): which statuses a
batch adds to its record and removes, and the hour partitions. Writing, reading, rebuilding and streaming it run
against the real system in tests/timeline/test_public_timeline.py and tests/gateway/test_public_stream.py."""

from __future__ import annotations

from kicau.events import Event, FollowCreated, StatusCreated, StatusDeleted
from kicau.ids import id_from_ms
from kicau.public_timeline import HOUR_MS, hour_of
from services.fanout.service import public_changes


def created(status_id: int, visibility: str = "public") -> StatusCreated:
    return StatusCreated(status_id=status_id, account_id=1, status_json="{}", visibility=visibility)


def deleted(status_id: int, visibility: str = "public") -> StatusDeleted:
    return StatusDeleted(status_id=status_id, account_id=1, visibility=visibility)


def test_a_batch_adds_its_public_statuses_and_removes_its_deleted_public_ones() -> None:
    events: list[Event] = [
        created(10), created(11, "unlisted"), created(12, "private"), created(13, "direct"),
        FollowCreated(follower_id=2, followee_id=1),
        created(14),  # posted and deleted in the batch: neither (the two writes would race)
        deleted(14),
        deleted(5),  # posted in an earlier batch
        deleted(6, "unlisted"),  # never in the public timeline
        created(15),
    ]
    assert public_changes(events) == ([10, 15], [5])


def test_statuses_fall_in_the_partition_of_their_hour() -> None:
    start = 1_800_000_000_000 // HOUR_MS * HOUR_MS
    assert hour_of(id_from_ms(start)) == hour_of(id_from_ms(start + HOUR_MS - 1)) == start // HOUR_MS
    assert hour_of(id_from_ms(start + HOUR_MS)) == start // HOUR_MS + 1

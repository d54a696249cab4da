"""The log of deletions and edits (kicau/retractions.py): what an entry keeps, which entries concern a reader,
when a read covers its span, and the commands against the stack's real Redis."""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

from kicau import resp, retractions
from kicau.events import StatusDeleted, StatusEdited
from kicau.retractions import DELETE, UPDATE, Retraction
from stack.services import service_env

READER = 7
HOUR_MS = 3_600_000


def _entry(kind: Any, status_id: int, author: int, *, direct: bool = False, mentions: tuple[int, ...] = (),
           tags: tuple[str, ...] = ()) -> Retraction:
    return Retraction(kind, status_id, author, direct, list(mentions), list(tags))


def test_an_entry_keeps_what_decides_who_is_told() -> None:
    deleted = retractions.of_event(StatusDeleted(status_id=5, account_id=2, visibility="direct", mentions=[7],
                                                 tags=["a"]))
    assert deleted == Retraction(DELETE, 5, 2, True, [7], ["a"])
    edited = retractions.of_event(StatusEdited(status_id=6, account_id=2, version_id=9, status_json="{}",
                                               visibility="private", tags=["new"], tags_before=["old", "new"]))
    assert edited == Retraction(UPDATE, 6, 2, False, [], ["new", "old"])  # the hashtags it left and joined


def test_the_public_streams_are_told_of_public_statuses_not_reblogs_and_a_hashtags_of_those_that_carried_it() -> None:
    public = retractions.of_event(StatusDeleted(status_id=5, account_id=2, visibility="public", tags=["a"]))
    reblog = retractions.of_event(StatusDeleted(status_id=6, account_id=2, visibility="public", reblog_of=5))
    unlisted = retractions.of_event(StatusDeleted(status_id=7, account_id=2, visibility="unlisted", tags=["a"]))
    edited = retractions.of_event(StatusEdited(status_id=8, account_id=2, version_id=9, status_json="{}",
                                               visibility="public", tags=["b"], tags_before=["a"]))
    assert [r.public for r in (public, reblog, unlisted, edited)] == [True, False, False, True]
    logged = [public, reblog, unlisted, edited]
    assert retractions.of_public(logged) == [public, edited]
    assert retractions.of_public(logged, "a") == [public, edited], "the edit left the hashtag: its streams had it"
    assert retractions.of_public(logged, "c") == []
    # An entry logged before the flag was recorded (six fields) reads as not public.
    assert retractions._decode(b'["delete",5,2,false,[],["a"]]').public is False


def test_the_reader_is_told_of_its_own_its_mentions_and_what_it_follows_but_direct_statuses_only_if_addressed(
) -> None:
    logged = [
        _entry(DELETE, 1, READER),  # its own
        _entry(DELETE, 2, 50, mentions=(READER,)),  # mentions it
        _entry(DELETE, 3, 51),  # an author it follows
        _entry(DELETE, 4, 52),  # an author it does not follow
        _entry(UPDATE, 5, 52, tags=("kicau",)),  # a hashtag it follows
        _entry(DELETE, 6, 51, direct=True),  # direct, from a followed author, not to it
        _entry(DELETE, 7, 53, direct=True, mentions=(READER,)),  # direct, to it
        _entry(DELETE, 8, 53, direct=True, tags=("kicau",)),  # direct with a followed hashtag, not to it
    ]
    assert retractions.deciding_authors(logged, READER) == {51, 52}
    assert retractions.deciding_tags(logged, READER, {51}) == {"kicau"}
    told = retractions.concerning(logged, READER, {51}, {"kicau"})
    assert [r.status_id for r in told] == [1, 2, 3, 5, 7]


def test_a_status_is_told_once_and_a_deleted_one_only_as_deleted() -> None:
    logged = [_entry(UPDATE, 1, 2), _entry(UPDATE, 2, 2), _entry(UPDATE, 1, 2), _entry(DELETE, 2, 2),
              _entry(DELETE, 3, 2), _entry(DELETE, 3, 2)]
    collapsed = retractions.collapse(logged)
    assert collapsed.edited == [1] and collapsed.deleted == [2, 3]


def _replies(entries: list[Retraction], since: int | None) -> list[Any]:
    """What ``read_commands`` gets back: the entries and the marker."""
    fields = [(b"%d-0" % n, [b"r", retractions._encode(entry)]) for n, entry in enumerate(entries)]
    return [fields, None if since is None else b"%d" % since]


def test_a_read_covers_its_span_only_when_the_log_began_before_it_keeps_it_and_holds_no_more_than_a_read() -> None:
    now = 1_000 * HOUR_MS
    keep = 48 * HOUR_MS
    after = now - HOUR_MS
    start = after - retractions.CLOCK_SLACK_MS
    found = retractions.window(_replies([_entry(DELETE, 1, 2)], since=start - 1), after, now, keep)
    assert found.covered and [r.status_id for r in found.retractions] == [1]
    assert retractions.window(_replies([], since=start), after, now, keep).covered
    # The log began (again: Redis lost it, and the fanout marked it since) after the span began: deletions
    # before may be missing.
    assert not retractions.window(_replies([], since=start + 1), after, now, keep).covered
    assert not retractions.window(_replies([], since=None), after, now, keep).covered
    # Older than the log keeps.
    long_ago = now - keep - HOUR_MS
    assert not retractions.window(_replies([], since=0), long_ago, now, keep).covered
    # More than a read takes.
    crowded = [_entry(DELETE, n, 2) for n in range(retractions.READ_AT_MOST + 1)]
    too_many = retractions.window(_replies(crowded, since=0), after, now, keep)
    assert not too_many.covered and len(too_many.retractions) == retractions.READ_AT_MOST


async def test_appended_entries_are_read_back_from_the_stacks_redis() -> None:
    """The commands as the fanout and the timeline service send them, on the stack's Redis (its real log: the
    entries are of ids no status has and authors no account is, so no reader is told of them)."""
    redis = Redis.from_url(service_env()["KICAU_REDIS_URL"])
    try:
        await _append_and_read(redis)
    finally:
        await redis.aclose()


async def _append_and_read(redis: Redis) -> None:
    now = int(time.time() * 1000)
    before = now - 1
    logged = [_entry(DELETE, 9_100_000_000_000_000_001, 9_100_000_000_000_000_002),
              _entry(UPDATE, 9_100_000_000_000_000_003, 9_100_000_000_000_000_002, tags=("x",))]
    await resp.round_trip(redis, retractions.append_commands(logged, now, 48 * HOUR_MS))
    replies = await resp.round_trip(redis, retractions.read_commands(before))
    found = retractions.window(replies, before, now, 48 * HOUR_MS)
    assert found.retractions[-2:] == logged
    assert await redis.exists(retractions.SINCE)

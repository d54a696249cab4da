"""Favourites' pieces (kicau/favourites.py, kicau/status_cards.py): the count and the reader's flag spliced into a
cached fragment, and the script that moves a cached count, run on the stack's Redis. End to end through the API:
tests/timeline/test_favourites.py."""

from __future__ import annotations

import msgspec
import redis

from kicau import keys
from kicau.entities import status_fragment
from kicau.status_cards import STATUS_CACHE_SECONDS, cache_value, shown_fragment
from kicau.status_tallies import MOVE, Tally

ROW = {"id": 5, "created_at": None, "text": 'say "favourites_count":0, "replies_count":0 and "favourited":false',
       "visibility": "public"}


def fragment() -> bytes:
    from datetime import UTC, datetime

    return status_fragment({**ROW, "created_at": datetime(2026, 12, 2, tzinfo=UTC)}, username="a",
                           public_url="http://k")


def test_the_usual_status_is_its_cached_bytes_and_the_others_are_spliced() -> None:
    value = cache_value(7, fragment())
    plain = shown_fragment(value, favourited=False)
    assert isinstance(plain, memoryview) and plain.obj is value  # no copy
    liked = msgspec.json.decode(bytes(shown_fragment(cache_value(7, fragment(), favourites=12), favourited=True)))
    assert (liked["favourites_count"], liked["favourited"], liked["replies_count"]) == (12, True, 0)
    answered = msgspec.json.decode(bytes(shown_fragment(cache_value(7, fragment(), replies=3), favourited=False)))
    assert (answered["favourites_count"], answered["favourited"], answered["replies_count"]) == (0, False, 3)
    both = msgspec.json.decode(bytes(shown_fragment(cache_value(7, fragment(), 4, 5), favourited=True)))
    assert (both["favourites_count"], both["favourited"], both["replies_count"]) == (4, True, 5)
    assert both["content"] == answered["content"]
    # Every count and flag, and a reblog's reblogged status spliced in last (its own flags stay its own).
    reblogged = b'{"id":"9","favourited":false,"reblogged":false,"bookmarked":false}'
    shared = msgspec.json.decode(bytes(shown_fragment(cache_value(7, fragment(), 1, 2, 3, reblog_of=9), True, True,
                                                      True, reblog=reblogged)))
    assert (shared["favourites_count"], shared["replies_count"], shared["reblogs_count"]) == (1, 2, 3)
    assert (shared["favourited"], shared["reblogged"], shared["bookmarked"]) == (True, True, True)
    assert shared["reblog"] == {"id": "9", "favourited": False, "reblogged": False, "bookmarked": False}
    # The text says the same words, quoted: the splice leaves it alone.
    assert liked["content"] == msgspec.json.decode(fragment())["content"]
    assert msgspec.json.decode(bytes(shown_fragment(value, favourited=True)))["favourites_count"] == 0


def test_the_counts_move_in_place_keeping_the_expiry_and_never_below_zero(stack_redis: redis.Redis) -> None:
    status_id = 1 << 40 | 12345
    key = keys.status_cache(status_id)
    stack_redis.set(key, cache_value(7, fragment()), ex=STATUS_CACHE_SECONDS)
    stack_redis.expire(key, 1000)

    def move(delta: int, tally: Tally = Tally.FAVOURITES) -> object:
        return stack_redis.eval(MOVE, 1, key, delta, int(tally))

    assert move(+1) == 1 and move(+1) == 2 and move(-1) == 1
    assert move(+1, Tally.REPLIES) == 1 and move(+1, Tally.REPLIES) == 2
    assert stack_redis.get(key) == cache_value(7, fragment(), favourites=1, replies=2)
    assert move(-1, Tally.REPLIES) == 1 and move(-1, Tally.REPLIES) == 0 and move(-1, Tally.REPLIES) == 0
    assert move(-1) == 0 and move(-1) == 0
    assert 990 < stack_redis.ttl(key) <= 1000
    assert stack_redis.get(key) == cache_value(7, fragment())
    stack_redis.set(key, b"")  # a tombstone: nothing to move
    assert move(+1) is None and stack_redis.get(key) == b""
    stack_redis.delete(key)
    assert move(+1) is None and not stack_redis.exists(key)


"""The fanout's packed timeline keys (``kicau.feeds.FramedKeys``), pure logic: each is exactly the key
``kicau.keys`` names, framed as a RESP bulk string, with its bucket; the map never holds more than its bound."""

from __future__ import annotations

from kicau import keys
from kicau.feeds import FramedKeys, TimelineWrites
from kicau.resp import bulk


def test_a_framed_key_is_the_timeline_key_with_its_bucket() -> None:
    framed = FramedKeys()
    for account_id in (1, 12345, 117712598907432960, 8_000_000_000_000_000_005):
        expected = (keys.home_bucket(account_id), bulk(keys.home_feed(account_id).encode()))
        assert framed.of(account_id) == expected
        assert framed.of(account_id) is framed.of(account_id)  # composed once


def test_the_map_starts_over_at_its_bound() -> None:
    framed = FramedKeys(max_entries=3)
    for account_id in range(10):
        framed.of(account_id)
        assert len(framed) <= 3
    assert framed.of(4) == (keys.home_bucket(4), bulk(keys.home_feed(4).encode()))


def test_writes_packed_with_kept_keys_are_the_same_bytes() -> None:
    followers = list(range(5000, 5600))
    for one_slot in (True, False):
        kept = FramedKeys()
        first = TimelineWrites(cap=800, threshold=851, one_slot_per_call=one_slot, framed_keys=kept)
        first.push(followers, [11, 12])
        again = TimelineWrites(cap=800, threshold=851, one_slot_per_call=one_slot, framed_keys=kept)
        again.push(followers, [11, 12])
        fresh = TimelineWrites(cap=800, threshold=851, one_slot_per_call=one_slot)
        fresh.push(followers, [11, 12])
        assert first.take() == again.take() == fresh.take()

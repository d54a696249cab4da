"""Snowflake ids: time-ordered, unique, Mastodon-compatible layout."""

from __future__ import annotations

import threading
import time

from kicau.ids import SnowflakeGenerator, id_from_ms, is_digits, ms_from_id, pack_id, parse_id, unpack_id


def test_ids_are_strictly_increasing_and_unique_across_threads() -> None:
    generator = SnowflakeGenerator(worker=5)
    results: list[list[int]] = [[] for _ in range(4)]

    def make(slot: list[int]) -> None:
        slot.extend(generator.next_id() for _ in range(5000))

    threads = [threading.Thread(target=make, args=(slot,)) for slot in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for slot in results for i in slot]
    assert len(set(every)) == len(every)
    for slot in results:
        assert slot == sorted(slot)


def test_two_workers_never_collide() -> None:
    a, b = SnowflakeGenerator(worker=1), SnowflakeGenerator(worker=2)
    ids_a = {a.next_id() for _ in range(3000)}
    ids_b = {b.next_id() for _ in range(3000)}
    assert not ids_a & ids_b


def test_layout_matches_mastodon() -> None:
    before = int(time.time() * 1000)
    snowflake = SnowflakeGenerator(worker=0).next_id()
    assert before <= ms_from_id(snowflake) <= before + 1000
    assert id_from_ms(ms_from_id(snowflake)) <= snowflake < id_from_ms(ms_from_id(snowflake) + 1)


def test_packing_preserves_order() -> None:
    values = [0, 1, 255, 256, 1 << 40, (1 << 63) - 1]
    packed = [pack_id(v) for v in values]
    assert packed == sorted(packed)
    assert [unpack_id(p) for p in packed] == values


def test_parse_id_rejects_what_is_not_an_id() -> None:
    assert parse_id("123") == parse_id(123) == parse_id("0123") == 123
    assert parse_id(str((1 << 63) - 1)) == (1 << 63) - 1
    assert parse_id("0" * 30 + "7") == 7
    for bad in ("", None, "abc", "-1", "1e9", str(1 << 63), "12.5", " 7", "+7", "7_0", "\u0667", "9" * 5000, -1,
                1 << 63, True):
        assert parse_id(bad) is None, bad


def test_is_digits_is_the_shape_of_an_id() -> None:
    for shaped in ("0", "123", "9" * 30, 0, 1 << 70):
        assert is_digits(shaped), shaped
    for not_shaped in ("", " 1", "+1", "-1", "1.5", "\u0667", -1, 1.0, True, None, ["1"]):
        assert not is_digits(not_shaped), not_shaped

"""``kicau.identity_memo.IdentityMemo``: derived once per object, by identity, bounded (pure logic: no engine
involved; its users' tests are tests/kicau/test_parsed_ids.py, tests/gateway/test_call_headers.py and
tests/gateway/test_rate_limit_buckets.py)."""

from __future__ import annotations

import pytest

from kicau.identity_memo import IdentityMemo


def test_derived_once_per_object_and_again_for_an_equal_new_one() -> None:
    memo: IdentityMemo[list[int], int] = IdentityMemo(4)
    derived: list[list[int]] = []

    def total(values: list[int]) -> int:
        derived.append(values)
        return sum(values)

    first = [1, 2, 3]
    assert memo.get(first, total) == memo.get(first, total) == 6
    assert len(derived) == 1
    equal = [1, 2, 3]  # equal, but another object (a key changed and read again): derived again
    assert memo.get(equal, total) == 6 and len(derived) == 2


def test_an_error_is_raised_every_time_and_never_kept() -> None:
    memo: IdentityMemo[str, int] = IdentityMemo(4)
    for _ in range(2):
        with pytest.raises(ValueError):
            memo.get("not a number", int)
    assert len(memo) == 0


def test_the_oldest_go_first_past_the_bound() -> None:
    memo: IdentityMemo[tuple[int], int] = IdentityMemo(2)
    sources = [(n,) for n in range(4)]
    for source in sources:
        memo.get(source, len)
    assert memo.sources() == sources[2:]
    with pytest.raises(ValueError):
        IdentityMemo(0)

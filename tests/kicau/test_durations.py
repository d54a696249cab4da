"""Numbers of seconds as clients send them (kicau/durations.py)."""

from __future__ import annotations

import pytest

from kicau.durations import whole_seconds


@pytest.mark.parametrize(("value", "seconds"), [
    (3600, 3600), (0, 0), (-5, -5), (3600.0, 3600), (-0.0, 0), ("3600", 3600), ("0", 0),
    ("9" * 18, 10**18 - 1),
])
def test_whole_numbers_of_seconds(value: object, seconds: int) -> None:
    assert whole_seconds(value) == seconds


@pytest.mark.parametrize("value", [
    True, False, 3600.5, float("nan"), float("inf"), "", " 60", "60 ", "-5", "+5", "1e3", "3600.0", "٣", "9" * 19,
    None, [60], {"seconds": 60},
])
def test_what_is_no_number_of_seconds(value: object) -> None:
    assert whole_seconds(value) is None

"""The load test's estimate of the server's clock (loadtests/clock.py), on made-up samples."""

from __future__ import annotations

import random

import pytest

from loadtests import clock

T0 = 1_796_000_000.0  # 2026-11-30, seconds since the epoch


def test_the_shortest_round_trip_wins_and_bounds_the_error() -> None:
    # The server is 250 ms behind; each answer stamped at a different point of its round trip.
    samples = [
        clock.Sample(sent=T0, received=T0 + 0.080, server=T0 - 0.250 + 0.070),
        clock.Sample(sent=T0 + 1, received=T0 + 1.010, server=T0 + 1 - 0.250 + 0.002),
        clock.Sample(sent=T0 + 2, received=T0 + 2.040, server=T0 + 2 - 0.250 + 0.039),
    ]
    offset = clock.estimate(samples)
    assert offset.samples == 3
    assert offset.uncertainty == pytest.approx(0.005 + clock.CREATED_AT_RESOLUTION_S)
    assert offset.seconds == pytest.approx(-0.250 - 0.003)  # stamped 3 ms before the middle of the second
    assert abs(offset.seconds - -0.250) <= offset.uncertainty


def test_the_true_offset_is_always_within_the_stated_uncertainty() -> None:
    rng = random.Random(7)
    for _ in range(1000):
        true_offset = rng.uniform(-30, 30)
        samples = []
        for i in range(rng.randint(1, 6)):
            sent = T0 + i + rng.random()
            trip = rng.uniform(0.0005, 0.3)
            stamped = sent + rng.uniform(0, trip) + true_offset
            server = int(stamped * 1000) / 1000  # created_at keeps milliseconds, truncated
            samples.append(clock.Sample(sent, sent + trip, server))
        offset = clock.estimate(samples)
        assert abs(offset.seconds - true_offset) <= offset.uncertainty + 1e-9


def test_latency_is_taken_on_the_servers_clock() -> None:
    # The load machine is 2 s ahead: a status created at T0 (server) arrives at T0 + 2.035 (local).
    offset = clock.ClockOffset(seconds=-2.0, uncertainty=0.004, samples=5)
    assert offset.latency_ms(T0 + 2.035, T0) == pytest.approx(35.0, abs=0.001)
    assert clock.SAME_CLOCK.latency_ms(T0 + 0.035, T0) == pytest.approx(35.0, abs=0.001)


def test_descriptions_say_which_way() -> None:
    behind = clock.ClockOffset(-2.0, 0.004, 5)
    assert behind.describe() == "2000.0 ms behind this process's (± 4.0 ms, best of 5 posts)"
    ahead = clock.ClockOffset(0.0123, 0.001, 3)
    assert ahead.describe() == "12.3 ms ahead of this process's (± 1.0 ms, best of 3 posts)"
    assert clock.SAME_CLOCK.describe().startswith("not measured")


def test_bad_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="no samples"):
        clock.estimate([])
    with pytest.raises(ValueError, match="answered before it was sent"):
        clock.estimate([clock.Sample(sent=T0 + 1, received=T0, server=T0)])


def test_created_at_reads_mastodon_timestamps() -> None:
    assert clock.created_at({"created_at": "2026-12-01T23:40:00.123Z"}) == pytest.approx(1_796_168_400.123)
    with pytest.raises(ValueError, match="without a created_at"):
        clock.created_at({"id": "1"})

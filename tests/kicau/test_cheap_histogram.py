"""``kicau.metrics.CheapHistogram`` is exposed exactly as prometheus_client's Histogram with the same buckets, so
dashboards, alerts and the bench's quantiles read it unchanged (pure logic: no engine involved)."""

from __future__ import annotations

import random
import threading

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from kicau.metrics import CheapHistogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


def _exposition(registry: CollectorRegistry, name: str) -> list[str]:
    lines = generate_latest(registry).decode().splitlines()
    return [line.replace(name, "h", 1) for line in lines
            if line.startswith(name) and not line.startswith(f"{name}_created")]


def test_exposed_as_prometheus_client_exposes_a_histogram() -> None:
    registry = CollectorRegistry()
    cheap = CheapHistogram("cheap_seconds", "doc", BUCKETS, registry=registry)
    reference = Histogram("reference_seconds", "doc", buckets=BUCKETS, registry=registry)
    rng = random.Random(7)
    # Every bound exactly (a value on a bound counts in that bucket), values between, and beyond the last.
    values = [*BUCKETS, 0.0, 7.5, *(rng.expovariate(20.0) for _ in range(5_000))]
    for value in values:
        cheap.observe(value)
        reference.observe(value)
    assert _exposition(registry, "cheap_seconds") == _exposition(registry, "reference_seconds")
    assert any('le="+Inf"} 5017.0' in line for line in _exposition(registry, "cheap_seconds"))


def test_many_observations_of_one_value_count_as_that_many() -> None:
    registry = CollectorRegistry()
    many = CheapHistogram("many_seconds", "doc", BUCKETS, registry=registry)
    single = CheapHistogram("single_seconds", "doc", BUCKETS, registry=registry)
    for value, count in ((0.25, 3), (0.001, 2), (7.5, 1), (0.0625, 40)):  # sums exact in binary
        many.observe_many(value, count)
        for _ in range(count):
            single.observe(value)
    assert _exposition(registry, "many_seconds") == _exposition(registry, "single_seconds")


def test_observations_from_several_threads_are_all_counted() -> None:
    registry = CollectorRegistry()
    cheap = CheapHistogram("threads_seconds", "doc", BUCKETS, registry=registry)

    def observe() -> None:
        for _ in range(20_000):
            cheap.observe(0.003)

    threads = [threading.Thread(target=observe) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 'h_count 80000.0' in _exposition(registry, "threads_seconds")

"""``kicau.metrics.CheapHistogram`` and ``CheapCounter`` are exposed exactly as prometheus_client's Histogram and
Counter, so dashboards, alerts and the bench's quantiles read them unchanged (pure logic: no engine involved)."""

from __future__ import annotations

import random
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from kicau.metrics import CheapCounter, CheapHistogram

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


def test_labelled_histograms_are_exposed_as_prometheus_client_exposes_them() -> None:
    registry = CollectorRegistry()
    cheap = CheapHistogram("cheap_seconds", "doc", BUCKETS, registry=registry, labelnames=("route", "method"))
    reference = Histogram("reference_seconds", "doc", ["route", "method"], buckets=BUCKETS, registry=registry)
    rng = random.Random(11)
    for route, method in (("/a", "GET"), ("/b", "GET"), ("/a", "POST")):
        for _ in range(500):
            value = rng.expovariate(30.0)
            cheap.labels(route, method).observe(value)
            reference.labels(route, method).observe(value)
    assert cheap.labels("/a", "GET") is cheap.labels("/a", "GET")
    assert sorted(_exposition(registry, "cheap_seconds")) == sorted(_exposition(registry, "reference_seconds"))
    assert registry.get_sample_value("cheap_seconds_count", {"route": "/b", "method": "GET"}) == 500


def test_counters_are_exposed_as_prometheus_client_exposes_them() -> None:
    registry = CollectorRegistry()
    cheap = CheapCounter("cheap_total", "doc", ["result"], registry=registry)
    reference = Counter("reference_total", "doc", ["result"], registry=registry)
    for result, amount in (("hit", 3), ("miss", 1), ("hit", 1), ("hit", 7)):
        cheap.labels(result).inc(amount)
        reference.labels(result).inc(amount)
    assert sorted(_exposition(registry, "cheap")) == sorted(_exposition(registry, "reference"))
    assert registry.get_sample_value("cheap_total", {"result": "hit"}) == 11
    assert cheap.labels("hit").value == 11
    exposed = generate_latest(registry).decode().splitlines()
    assert any(line.startswith('cheap_created{result="miss"}') for line in exposed)


def test_counts_from_several_threads_are_all_counted() -> None:
    registry = CollectorRegistry()
    series = CheapCounter("threads_total", "doc", ["kind"], registry=registry).labels("x")

    def count() -> None:
        for _ in range(20_000):
            series.inc()

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert registry.get_sample_value("threads_total", {"kind": "x"}) == 80_000

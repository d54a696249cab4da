"""The fanout's batch pacing (services/fanout/worker.py, ``BatchPacer``): pure logic, on a simulated clock.
Its effect on the real fanout (fewer, larger batches under a stream of posts, the same timelines) is measured by
`make bench` and covered by the fanout's end-to-end tests, which run with the default pacing."""

from __future__ import annotations

from services.fanout.worker import BatchPacer


def test_a_first_batch_and_a_slow_stream_are_taken_at_once() -> None:
    pacer = BatchPacer(linger=0.05, above_per_second=100, full=500)
    assert pacer.wait(0.0) == 0.0
    now = 0.0
    for _ in range(50):  # 25 statuses a second, one a batch
        pacer.taken(1, now)
        now += 0.04
        assert pacer.wait(now) == 0.0


def test_two_statuses_landing_close_together_in_a_slow_stream_do_not_make_the_next_wait() -> None:
    pacer = BatchPacer(linger=0.05, above_per_second=100, full=500)
    pacer.taken(1, 0.0)
    pacer.taken(1, 0.002)  # 500/s for an instant, but batches of one
    assert pacer.rate > 100
    assert pacer.wait(0.003) == 0.0


def test_a_busy_stream_waits_out_the_linger_after_each_batch() -> None:
    pacer = BatchPacer(linger=0.05, above_per_second=100, full=500)
    now = 0.0
    for _ in range(5):  # 500 statuses a second arriving in batches of ~5
        pacer.taken(5, now)
        now += 0.01
    assert pacer.rate > 100
    taken_at = now - 0.01
    assert abs(pacer.wait(now) - (taken_at + 0.05 - now)) < 1e-9
    # While it lingers, batches grow and the rate it sees stays the stream's own.
    for _ in range(10):
        now += pacer.wait(now)
        pacer.taken(25, now)
        now += 0.005  # the batch's own work
    assert 400 < pacer.rate < 600
    assert pacer.wait(now) > 0.04
    # Never longer than the linger, however late the clock reads.
    assert pacer.wait(now + 1.0) == 0.0


def test_an_empty_poll_ends_the_lingering() -> None:
    pacer = BatchPacer(linger=0.05, above_per_second=100, full=500)
    pacer.taken(10, 0.0)
    pacer.taken(10, 0.01)
    assert pacer.wait(0.02) > 0
    pacer.idle()
    assert pacer.rate == 0.0
    assert pacer.wait(0.02) == 0.0
    pacer.taken(1, 5.0)  # the status that ends the quiet spell, and the next one
    assert pacer.wait(5.001) == 0.0


def test_zero_linger_never_waits() -> None:
    pacer = BatchPacer(linger=0.0, above_per_second=100, full=500)
    for i in range(20):
        pacer.taken(50, i * 0.001)
        assert pacer.wait(i * 0.001) == 0.0


def test_a_backlog_is_not_held_back() -> None:
    """Full batches mean the fanout is behind (catching up after a restart, say): the next batch is waiting
    already, so waiting would only slow the catch-up."""
    pacer = BatchPacer(linger=0.05, above_per_second=100, full=500)
    now = 0.0
    for _ in range(5):
        pacer.taken(500, now)
        now += 0.01
        assert pacer.wait(now) == 0.0
    assert pacer.rate > 100
    pacer.taken(120, now)  # the backlog's tail: caught up, and still busy
    assert pacer.wait(now + 0.001) > 0

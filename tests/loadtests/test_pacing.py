"""The open loop of the Locust API users (loadtests/pacing.py): the schedule sets the offered load, however slow
the answers are; past the bound on requests in flight, what could not be sent is counted, not silently dropped."""

from __future__ import annotations

import gevent
import pytest

from loadtests.pacing import OpenLoop


def run_for(loop: OpenLoop, seconds: float, answer_seconds: float) -> tuple[int, list[float]]:
    """Run ``loop`` for ``seconds`` against answers that take ``answer_seconds``; the most requests that were
    out at once, and the lateness of each request that could not be sent."""
    most = 0
    late: list[float] = []

    def send() -> None:
        nonlocal most
        most = max(most, len(loop.in_flight))
        gevent.sleep(answer_seconds)

    runner = gevent.spawn(loop.run, send, late.append, loop._clock() + seconds)
    runner.join()
    loop.in_flight.join()
    return most, late


def test_slow_answers_do_not_lower_the_offered_load() -> None:
    # 50 requests due in a second, each answered in 0.3 s: a closed loop would send ~4 (one user, one at a time).
    loop = OpenLoop(rate=50, max_in_flight=100)
    most, late = run_for(loop, 1.0, 0.3)
    assert loop.sent == 50 and loop.behind == 0 and late == []
    assert 10 <= most <= 20  # ~0.3 s of requests out at once (15), whatever the timer's jitter


def test_past_the_bound_requests_are_counted_behind_schedule_not_sent() -> None:
    loop = OpenLoop(rate=50, max_in_flight=5)
    most, late = run_for(loop, 1.0, 0.3)
    assert most == 5
    assert loop.sent + loop.behind == 50  # every due request is accounted for
    assert loop.behind == len(late) > 0 and all(lateness >= 0 for lateness in late)


def test_a_loop_that_wakes_late_catches_up_with_its_schedule() -> None:
    now = [0.0]
    loop = OpenLoop(rate=10, max_in_flight=100, clock=lambda: now[0])
    sent: list[float] = []

    def send() -> None:
        sent.append(now[0])
        now[0] += 0.35  # the process is busy: the loop's next turn comes 0.35 s later

    loop.run(lambda: gevent.spawn(send).join(), lambda _: None, until=1.0)  # sent in turn, to move the clock
    assert loop.sent == 10  # the 10 due in the first second, some of them at once after a late wake-up


def test_a_rate_or_bound_that_cannot_run_is_refused() -> None:
    with pytest.raises(ValueError):
        OpenLoop(rate=0, max_in_flight=1)
    with pytest.raises(ValueError):
        OpenLoop(rate=1, max_in_flight=0)

"""The push service's memory of push services that failed (services/push/sender.py ``Unreachable``): paused after
a failure, for twice as long after each further one, up to the longest; forgotten once one answers."""

from __future__ import annotations

from services.push.sender import Unreachable, origin_of


def test_a_failing_origin_is_paused_longer_each_time_until_it_answers() -> None:
    now = [1000.0]
    down = Unreachable(first_pause=30, longest=100, clock=lambda: now[0])
    origin = origin_of("https://Push.Example:8443/wpush/v2/abc?x=1")
    assert origin == "https://push.example:8443" and not down.skips(origin)
    down.failed(origin)
    assert down.skips(origin) and not down.skips("https://other.example")
    assert (down.remaining(origin), down.remaining("https://other.example")) == (30, 0)
    now[0] += 29.9
    assert down.skips(origin) and round(down.remaining(origin), 6) == 0.1
    now[0] += 0.2
    assert not down.skips(origin) and down.remaining(origin) == 0  # tried again; it fails again: twice the pause
    down.failed(origin)
    now[0] += 59.9
    assert down.skips(origin)
    now[0] += 0.2
    down.failed(origin)  # 120 would be past the longest
    now[0] += 99.9
    assert down.skips(origin)
    now[0] += 0.2
    assert not down.skips(origin)
    down.answered(origin)
    down.failed(origin)  # answered in between: the first pause again
    now[0] += 30.1
    assert not down.skips(origin) and len(down) == 1

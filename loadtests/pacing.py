"""Open-loop pacing for the Locust API users: requests leave on a fixed schedule, not when the last one returned.

Locust's ``constant_throughput(R)`` only paces a closed loop: a user waits for each answer, and once answers take
longer than 1/R the user sends less than R a second. The offered load then falls exactly when the server slows
down, and the slow answers that would have piled up are never timed (coordinated omission). Here the i-th request
of a user is due at t0 + i/R whatever happened to the others: each is sent in a greenlet of its own, so a slow
answer holds up nothing. A user keeps at most ``max_in_flight`` requests open; a request due while that many are
still out is not sent and is reported as behind schedule (the offered load was not met, and the run says so).
If the loop itself wakes late (a busy load-generating process), the requests due meanwhile leave at once: the
schedule, not the loop, sets the offered load.

Only gevent here, no Locust: importing Locust monkey-patches the process, which the tests of this module must not do.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import gevent
import gevent.pool


class OpenLoop:
    def __init__(self, rate: float, max_in_flight: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or max_in_flight < 1:
            raise ValueError("an open loop needs a rate above 0 and room for at least one request in flight")
        self.interval = 1.0 / rate
        self.max_in_flight = max_in_flight
        self._clock = clock
        self.in_flight = gevent.pool.Group()
        self.sent = 0
        self.behind = 0

    def run(self, send: Callable[[], object], behind: Callable[[float], object], until: float | None = None) -> None:
        """Call ``send`` (in a greenlet of its own) at each due time, or ``behind(lateness_seconds)`` when
        ``max_in_flight`` requests are still out; until ``until`` (on this loop's clock) or for good. Requests still
        out when it ends are left to finish; ``stop`` ends them."""
        start = self._clock()
        for slot in itertools.count():
            due = start + slot * self.interval  # from the start each time: summed intervals would drift
            if until is not None and due >= until:
                return
            wait = due - self._clock()
            if wait > 0:
                gevent.sleep(wait)
            if len(self.in_flight) >= self.max_in_flight:
                self.behind += 1
                behind(max(0.0, self._clock() - due))
            else:
                self.sent += 1
                self.in_flight.spawn(send)

    def stop(self) -> None:
        self.in_flight.kill()

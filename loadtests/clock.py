"""How far the server's clock is from a load-generating process's, so that delivery latencies stay true when
Locust runs on other machines than Kicau.

A delivery's latency is its arrival, on the load machine's clock, minus the status's ``created_at``, on the
server's. On one machine both are the same clock. Across machines any skew between them is added to every
delivery, and a load machine behind the server by more than the latency turns every delivery into a negative
figure (reported as 0 ms). So each Locust process first asks the server the time the only way the Mastodon API
gives it to the millisecond: it posts a few statuses and reads their ``created_at``. As NTP does, a sample sent
at ``sent`` and answered at ``received`` (this process's clock) says the server's clock read ``server`` at some
moment in between, taken as the middle: the estimate is off by at most half the round trip (plus the
millisecond ``created_at`` truncates), so the sample with the shortest round trip is kept.

Pure logic, no Locust: the tests import it without monkey-patching the process.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

CREATED_AT_RESOLUTION_S = 0.001  # Mastodon's created_at carries milliseconds


@dataclass(frozen=True)
class Sample:
    sent: float  # this process's clock when the request left, seconds since the epoch
    received: float  # ...and when its answer arrived
    server: float  # the server's clock at some moment in between (a created_at), seconds since the epoch

    @property
    def round_trip(self) -> float:
        return self.received - self.sent


@dataclass(frozen=True)
class ClockOffset:
    """The server's clock minus this process's: add it to a local reading to compare it with a server time."""

    seconds: float
    uncertainty: float  # the true offset lies within seconds ± uncertainty
    samples: int

    def latency_ms(self, received_locally: float, created_on_server: float) -> float:
        """Milliseconds from a server time to a local reading, both on the server's clock."""
        return (received_locally + self.seconds - created_on_server) * 1000

    def describe(self) -> str:
        ms, within = self.seconds * 1000, self.uncertainty * 1000
        if self.samples == 0:
            return "not measured: deliveries are timed with the two clocks as they are"
        side = "ahead of" if ms >= 0 else "behind"
        return f"{abs(ms):.1f} ms {side} this process's (± {within:.1f} ms, best of {self.samples} posts)"


SAME_CLOCK = ClockOffset(0.0, 0.0, 0)


def estimate(samples: Iterable[Sample]) -> ClockOffset:
    """The offset from the sample with the shortest round trip (its midpoint is the tightest bound)."""
    taken = list(samples)
    if not taken:
        raise ValueError("no samples to estimate the server's clock from")
    if any(s.round_trip < 0 for s in taken):
        raise ValueError("a sample was answered before it was sent")
    best = min(taken, key=lambda s: s.round_trip)
    middle = best.sent + best.round_trip / 2
    return ClockOffset(best.server - middle, best.round_trip / 2 + CREATED_AT_RESOLUTION_S, len(taken))


def created_at(status: dict[str, object]) -> float:
    """A status's ``created_at`` (``2026-12-01T23:40:00.123Z``) in seconds since the epoch."""
    stamp = status.get("created_at")
    if not isinstance(stamp, str):
        raise ValueError(f"a status without a created_at: {status.get('id')!r}")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

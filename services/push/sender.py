"""One push's exchange with an endpoint, and what its answer means for the subscription.

* 2xx: delivered (push services answer 201).
* 404 or 410: the subscription is gone (the browser or app unsubscribed): the caller removes it.
* 429, 5xx, or no answer in time: tried again after a growing pause (``Retry-After`` honoured up to the pause
  cap), ``attempts`` times in all, then given up (``failed``).
* Another 4xx: refused (a malformed push or a rejected VAPID signature); trying again would not help.
* Unreachable: a push service (an endpoint's origin, scheme, host and port) whose last push failed every attempt
  is not called again for a while (``Unreachable``: 30 s, doubled each time it fails again, at most 5 minutes;
  answered once, forgotten). A batch waits for its slowest push, so without this a dead push service would cost
  every batch that notifies one of its subscribers its whole series of attempts (seconds with a refused
  connection, half a minute with none), and every other subscriber would wait behind it. Those pushes are
  counted ``unreachable`` and are not tried later: as a failed push, the notification stays in the list.

Before anything is sent, the endpoint's host is resolved: a name that resolves to a private address is not
called (``unsafe``) unless insecure endpoints are allowed (development), as the gateway refuses such addresses
when a subscription is made and a name may be pointed elsewhere later; and the connection itself is made only to
global addresses its own resolution returned (``kicau.outbound.PublicResolver``), so a name that changes its
answer between the two (DNS rebinding) fails to connect.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp

from kicau.outbound import PublicResolver, resolves_to_public
from kicau.web_push import PushRequest

log = logging.getLogger(__name__)

MAX_PAUSE_SECONDS = 10.0


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    GONE = "gone"
    REFUSED = "refused"
    FAILED = "failed"
    UNSAFE = "unsafe"
    UNREACHABLE = "unreachable"


def origin_of(endpoint: str) -> str:
    """The push service an endpoint belongs to: its scheme, host and port."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}".lower()


class Unreachable:
    """The push services given up on for now (module doc): each with when it may be tried again and the pause it
    was given. Kept in memory: a restart tries them all again."""

    def __init__(self, first_pause: float = 30.0, longest: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._first_pause = first_pause
        self._longest = longest
        self._clock = clock
        self._down: dict[str, tuple[float, float]] = {}  # origin -> (tried again from, the pause given)

    def skips(self, origin: str) -> bool:
        down = self._down.get(origin)
        return down is not None and self._clock() < down[0]

    def failed(self, origin: str) -> None:
        """Every attempt of a push to ``origin`` failed: not called again for a pause twice the last (if any)."""
        last = self._down.get(origin)
        pause = self._first_pause if last is None else min(self._longest, last[1] * 2)
        self._down[origin] = (self._clock() + pause, pause)

    def answered(self, origin: str) -> None:
        self._down.pop(origin, None)

    def remaining(self, origin: str) -> float:
        """Seconds until ``origin`` may be tried again (0 if it is not given up on)."""
        down = self._down.get(origin)
        return max(0.0, down[0] - self._clock()) if down is not None else 0.0

    def __len__(self) -> int:
        return len(self._down)


class PushSender:
    def __init__(self, *, timeout: float, attempts: int, allow_insecure: bool, first_pause: float = 0.5,
                 unreachable: Unreachable | None = None) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = attempts
        self._allow_insecure = allow_insecure
        self._first_pause = first_pause
        self._unreachable = unreachable if unreachable is not None else Unreachable()
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop (aiohttp binds a session to it). Connections are kept per
        # push service host (a few hosts serve nearly every subscriber); DNS answers are kept a minute.
        if self._session is None:
            # Outside development, names resolve to global addresses only and connections go to exactly those
            # (kicau/outbound.py): a name that answered a public address to ``send``'s check and a private one
            # to the connection's lookup (DNS rebinding) fails to connect instead.
            resolver = None if self._allow_insecure else PublicResolver()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=60, resolver=resolver),
                timeout=self._timeout, headers={"User-Agent": "Kicau web push"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def paused_for(self, endpoint: str) -> float:
        """Seconds until the endpoint's push service, given up on, is called again (0 if it is not)."""
        return self._unreachable.remaining(origin_of(endpoint))

    async def send(self, endpoint: str, request: PushRequest) -> Outcome:
        origin = origin_of(endpoint)
        if self._unreachable.skips(origin):
            return Outcome.UNREACHABLE
        if not self._allow_insecure and not await resolves_to_public(endpoint):
            return Outcome.UNSAFE
        outcome = await self._attempted(endpoint, request)
        if outcome is Outcome.FAILED:
            # Once for the pushes that failed side by side: the first to end pauses it, the others find it paused.
            if not self._unreachable.skips(origin):
                self._unreachable.failed(origin)
                log.warning("push service %s failed every attempt: not called again for a while", origin)
        else:
            self._unreachable.answered(origin)
        return outcome

    async def _attempted(self, endpoint: str, request: PushRequest) -> Outcome:
        pause = self._first_pause
        for attempt in range(1, self._attempts + 1):
            retry_after = None
            try:
                # No redirects: a push service never redirects, and following one would leave the checked host.
                async with self._client().post(endpoint, data=request.body, headers=request.headers,
                                               allow_redirects=False) as answer:
                    status = answer.status
                    if 200 <= status < 300:
                        return Outcome.DELIVERED
                    if status in (404, 410):
                        return Outcome.GONE
                    if status != 429 and status < 500:
                        log.info("push to %s refused: %d %s", urlsplit(endpoint).netloc, status,
                                 (await answer.text(errors="replace"))[:200])
                        return Outcome.REFUSED
                    retry_after = _seconds(answer.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("push to %s failed (attempt %d): %s", urlsplit(endpoint).netloc, attempt, type(exc).__name__)
            if attempt < self._attempts:
                await asyncio.sleep(min(MAX_PAUSE_SECONDS, max(pause, retry_after or 0.0)))
                pause *= 2
        return Outcome.FAILED


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the growing pause decides

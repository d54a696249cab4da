"""One push's exchange with an endpoint, and what its answer means for the subscription.

* 2xx: delivered (push services answer 201).
* 404 or 410: the subscription is gone (the browser or app unsubscribed): the caller removes it.
* 429, 5xx, or no answer in time: tried again after a growing pause (``Retry-After`` honoured up to the pause
  cap), ``attempts`` times in all, then given up (``failed``).
* Another 4xx: refused (a malformed push or a rejected VAPID signature); trying again would not help.

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


class PushSender:
    def __init__(self, *, timeout: float, attempts: int, allow_insecure: bool, first_pause: float = 0.5) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = attempts
        self._allow_insecure = allow_insecure
        self._first_pause = first_pause
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

    async def send(self, endpoint: str, request: PushRequest) -> Outcome:
        if not self._allow_insecure and not await resolves_to_public(endpoint):
            return Outcome.UNSAFE
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

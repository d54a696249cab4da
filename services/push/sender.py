"""One push's exchange with an endpoint, and what its answer means for the subscription.

* 2xx: delivered (push services answer 201).
* 404 or 410: the subscription is gone (the browser or app unsubscribed): the caller removes it.
* 429, 5xx, or no answer in time: tried again after a growing pause (``Retry-After`` honoured up to the pause
  cap), ``attempts`` times in all, then given up (``failed``).
* Another 4xx: refused (a malformed push or a rejected VAPID signature); trying again would not help.

Before anything is sent, the endpoint's host is resolved: a name that resolves to a private address is not
called (``unsafe``) unless insecure endpoints are allowed (development), as the gateway refuses such addresses
when a subscription is made and a name may be pointed elsewhere later.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import socket
from urllib.parse import urlsplit

import httpx

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
        # No redirects: a push service never redirects, and following one would leave the checked host.
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                                         limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
                                         headers={"User-Agent": "Kicau web push"})
        self._attempts = attempts
        self._allow_insecure = allow_insecure
        self._first_pause = first_pause

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, endpoint: str, request: PushRequest) -> Outcome:
        if not self._allow_insecure and not await _public_host(endpoint):
            return Outcome.UNSAFE
        pause = self._first_pause
        for attempt in range(1, self._attempts + 1):
            try:
                answer = await self._client.post(endpoint, content=request.body, headers=request.headers)
            except httpx.HTTPError as exc:
                log.info("push to %s failed (attempt %d): %s", urlsplit(endpoint).netloc, attempt, type(exc).__name__)
                retry_after = None
            else:
                if answer.is_success:
                    return Outcome.DELIVERED
                if answer.status_code in (404, 410):
                    return Outcome.GONE
                if answer.status_code != 429 and answer.status_code < 500:
                    log.info("push to %s refused: %d %s", urlsplit(endpoint).netloc, answer.status_code,
                             answer.text[:200])
                    return Outcome.REFUSED
                retry_after = _seconds(answer.headers.get("retry-after"))
            if attempt < self._attempts:
                await asyncio.sleep(min(MAX_PAUSE_SECONDS, max(pause, retry_after or 0.0)))
                pause *= 2
        return Outcome.FAILED


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the growing pause decides


async def _public_host(endpoint: str) -> bool:
    host = urlsplit(endpoint).hostname or ""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return True  # unresolvable: the request fails as any other, and is retried
    return all(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]).is_global for info in found)

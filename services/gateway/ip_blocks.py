"""The IP blocks this gateway process applies (kicau/ip_blocks.py): kept in memory, loaded from the graph service at
start and again whenever ``keys.IP_BLOCKS_VERSION`` moves (read each second), and at least each minute.

A process that cannot load them (the graph service or Redis down) keeps applying those it has, and starts with
none (its first load is in the background, not in its start): an outage of either must not take the whole API
down with it, as the rate limiter's does not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

import msgspec
from redis.asyncio import Redis
from starlette.types import Receive, Scope, Send

from kicau import keys
from kicau.account_ips import CLIENT_IP_HEADER
from kicau.ip_blocks import NO_ACCESS, Blocklist
from kicau.metrics import IP_BLOCK_REFUSALS
from services.gateway.ratelimit import client_ip
from services.gateway.settings import GatewaySettings
from services.gateway.upstreams import Caller

log = logging.getLogger(__name__)

BLOCKED: Final = msgspec.json.encode({"error": "Blocked"})
# The operator's routes (kicau/web.py), answered whoever asks.
OPERATOR_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})
# How often the version is read, and the longest a process goes without loading the blocks again.
POLL_SECONDS: Final = 1.0
RELOAD_SECONDS: Final = 60.0


def denied(blocklist: Blocklist, scope: Scope, settings: GatewaySettings) -> bool:
    """Whether the request comes from an address a ``no_access`` block names (the operator's health, readiness and
    metrics routes are always answered)."""
    return blocklist.denying and scope["path"] not in OPERATOR_PATHS \
        and blocklist.denies(client_ip(scope, settings.trusted_proxies))


def client_address_header(scope: Scope, settings: GatewaySettings) -> dict[str, str]:
    """The client's address for the graph service, which records where accounts sign in and up from
    (kicau/account_ips.py): the same address the blocks and the rate limits go by."""
    return {CLIENT_IP_HEADER: client_ip(scope, settings.trusted_proxies)}


async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
    """403 ``{"error": "Blocked"}``; a WebSocket is closed before it opens (its client sees the server's 403)."""
    IP_BLOCK_REFUSALS.labels(NO_ACCESS).inc()
    if scope["type"] == "websocket":
        await receive()  # the connection's opening
        await send({"type": "websocket.close", "code": 1008, "reason": "Blocked"})
        return
    await send({"type": "http.response.start", "status": 403, "headers": [
        (b"content-type", b"application/json"), (b"content-length", b"%d" % len(BLOCKED))]})
    await send({"type": "http.response.body", "body": BLOCKED})


class IpBlocksFollower:
    """Keeps ``blocklist`` as the graph service lists the blocks in force."""

    def __init__(self, redis: Redis, graph: Caller) -> None:
        self._redis = redis
        self._graph = graph
        self.blocklist = Blocklist()
        self._version: bytes | str | None = None
        self._loaded_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._last_warning = 0.0

    async def start(self) -> None:
        # The first load is the task's, not the start's: a gateway starting while the graph service is down is up
        # at once (applying no block until it can load them), not held for the call's timeout.
        self._task = asyncio.create_task(self._follow(), name="ip-blocks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _follow(self) -> None:
        await self._refresh(force=True)
        while True:
            await asyncio.sleep(POLL_SECONDS)
            # Forced each minute, and after a failed load (nothing loaded since: ``_loaded_at`` did not move).
            await self._refresh(force=self._loaded_at == 0.0 or time.monotonic() - self._loaded_at >= RELOAD_SECONDS)

    async def _refresh(self, force: bool) -> None:
        try:
            version = await self._redis.get(keys.IP_BLOCKS_VERSION)
            if not force and version == self._version:
                return
            answer = await self._graph.call("GET", "/internal/ip_blocks")
            answer.raise_for_status()
            self.blocklist = Blocklist.of(answer.json()["blocks"])
            self._version, self._loaded_at = version, time.monotonic()
        except Exception:
            if time.monotonic() - self._last_warning > 60:
                self._last_warning = time.monotonic()
                log.warning("could not load the IP blocks; applying the %d held", len(self.blocklist), exc_info=True)

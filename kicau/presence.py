"""Who is streaming where: the contract between gateways (which hold the streams) and the fanout (which
publishes to them).

Each gateway process has an id and a hash ``online:{g:<id>}`` of account id -> open stream count, plus a
heartbeat key. Every change is also announced on one pub/sub channel with the *new absolute count*, so the
fanout keeps an in-memory mirror and decides whom to publish to without a Redis lookup per follower; absolute
counts make replaying a message after loading a snapshot harmless.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable

from redis.asyncio import Redis

from kicau import keys

log = logging.getLogger(__name__)

GATEWAYS = "online:gateways"
HEARTBEAT_SECONDS = 5
HEARTBEAT_TTL = 20


def _hash(gateway_id: str) -> str:
    return f"online:{{g:{gateway_id}}}"


def _alive(gateway_id: str) -> str:
    return f"online:{{g:{gateway_id}}}:alive"


class GatewayPresence:
    """Kept by one gateway process: announces the accounts it holds streams for."""

    def __init__(self, redis: Redis, gateway_id: str | None = None) -> None:
        self.redis = redis
        self.gateway_id = gateway_id or uuid.uuid4().hex[:12]
        self._task: asyncio.Task[None] | None = None

    @property
    def channel(self) -> str:
        return keys.stream_channel(self.gateway_id)

    async def start(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(_hash(self.gateway_id))
        pipe.sadd(GATEWAYS, self.gateway_id)
        pipe.set(_alive(self.gateway_id), b"1", ex=HEARTBEAT_TTL)
        await pipe.execute()
        self._task = asyncio.create_task(self._heartbeat())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(_hash(self.gateway_id), _alive(self.gateway_id))
        pipe.srem(GATEWAYS, self.gateway_id)
        pipe.publish(keys.PRESENCE_CHANNEL, f"{self.gateway_id} * 0")
        await pipe.execute()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self.redis.set(_alive(self.gateway_id), b"1", ex=HEARTBEAT_TTL)
            except Exception:
                log.warning("presence heartbeat failed", exc_info=True)

    async def change(self, account_id: int, delta: int) -> None:
        count = int(await self.redis.hincrby(_hash(self.gateway_id), str(account_id), delta))
        if count <= 0:
            await self.redis.hdel(_hash(self.gateway_id), str(account_id))
            count = 0
        await self.redis.publish(keys.PRESENCE_CHANNEL, f"{self.gateway_id} {account_id} {count}")


class OnlineMirror:
    """Kept by each fanout worker: account id -> gateways holding its streams, updated from pub/sub."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._where: dict[int, set[str]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._where)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._follow())
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    def gateways_of(self, account_ids: Iterable[int]) -> dict[str, list[int]]:
        """Group the online ones among ``account_ids`` by gateway; offline accounts cost a dict miss."""
        where = self._where
        grouped: dict[str, list[int]] = defaultdict(list)
        for account_id in account_ids:
            gateways = where.get(account_id)
            if gateways:
                for gateway in gateways:
                    grouped[gateway].append(account_id)
        return grouped

    def online_accounts(self) -> set[int]:
        return set(self._where)

    def _apply(self, message: str) -> None:
        gateway, account, count = message.split(" ")
        if account == "*":
            for gateways in self._where.values():
                gateways.discard(gateway)
            self._prune()
            return
        account_id = int(account)
        if int(count) > 0:
            self._where[account_id].add(gateway)
        else:
            held = self._where.get(account_id)
            if held is not None:
                held.discard(gateway)
                if not held:
                    del self._where[account_id]

    def _prune(self) -> None:
        for account_id in [a for a, g in self._where.items() if not g]:
            del self._where[account_id]

    async def _snapshot(self) -> None:
        gateways = [g.decode() if isinstance(g, bytes) else g for g in await self.redis.smembers(GATEWAYS)]
        fresh: dict[int, set[str]] = defaultdict(set)
        for gateway in gateways:
            if not await self.redis.exists(_alive(gateway)):
                # A gateway that died without saying so: its streams are gone with it.
                await self.redis.srem(GATEWAYS, gateway)
                await self.redis.delete(_hash(gateway))
                continue
            for account, count in (await self.redis.hgetall(_hash(gateway))).items():
                if int(count) > 0:
                    fresh[int(account)].add(gateway)
        self._where = fresh

    async def _follow(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(keys.PRESENCE_CHANNEL)
                await self._snapshot()
                self._ready.set()
                resync_at = asyncio.get_running_loop().time() + HEARTBEAT_TTL
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._apply(bytes(message["data"]).decode())
                    if asyncio.get_running_loop().time() > resync_at:
                        await self._snapshot()
                        resync_at = asyncio.get_running_loop().time() + HEARTBEAT_TTL
            except asyncio.CancelledError:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except Exception:
                log.warning("presence mirror lost its subscription; resubscribing", exc_info=True)
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(1)

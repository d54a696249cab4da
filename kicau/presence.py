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
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence

from redis.asyncio import Redis
from redis.exceptions import ConnectionError

from kicau import clients, keys, resp
from kicau.metrics import PUBSUB_RECONNECTIONS

log = logging.getLogger(__name__)

GATEWAYS = "online:gateways"
GATEWAY_KEYS_PREFIX = "online:{g:"  # every key of one gateway's presence starts so (its hash tag)
# Whose presence on a gateway says it holds streams of the public timeline (Mastodon's ``public`` stream): no
# account has this id (snowflake ids are never 0), and the fanout publishes each public status to the gateways
# where it is "online", as to an account's (kicau/public_timeline.py).
PUBLIC_LISTENERS = 0
HEARTBEAT_SECONDS = 5
HEARTBEAT_TTL = 30
# Tries of a presence change while the connection to Redis breaks (Redis restarting).
CHANGE_ATTEMPTS = 3
_PRESENCE_CHANNEL = keys.PRESENCE_CHANNEL.encode()


def _hash(gateway_id: str) -> str:
    return f"{GATEWAY_KEYS_PREFIX}{gateway_id}}}"


def _alive(gateway_id: str) -> str:
    return f"{_hash(gateway_id)}:alive"


class GatewayPresence:
    """Kept by one gateway process: announces the accounts it holds streams for."""

    def __init__(self, redis: Redis, gateway_id: str | None = None) -> None:
        self.redis = redis
        self.gateway_id = gateway_id or uuid.uuid4().hex[:12]
        # The truth about this gateway's streams; Redis holds a copy that expires if the gateway dies.
        self._local: dict[int, int] = {}
        self.last_beat = 0.0

    @property
    def channel(self) -> str:
        return keys.stream_channel(self.gateway_id)

    async def start(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(_hash(self.gateway_id))
        pipe.sadd(GATEWAYS, self.gateway_id)
        pipe.set(_alive(self.gateway_id), b"1", ex=HEARTBEAT_TTL)
        await pipe.execute()
        self.last_beat = time.monotonic()

    async def stop(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(_hash(self.gateway_id), _alive(self.gateway_id))
        pipe.srem(GATEWAYS, self.gateway_id)
        pipe.publish(keys.PRESENCE_CHANNEL, f"{self.gateway_id} * 0")
        await pipe.execute()

    def healthy(self) -> bool:
        return time.monotonic() - self.last_beat < HEARTBEAT_TTL

    async def beat(self) -> None:
        """Keep this gateway's presence alive. If it lapsed (a stall longer than the TTL, or Redis lost its
        data), write it again from local truth and ask every fanout to reload it."""
        previous = await self.redis.set(_alive(self.gateway_id), b"1", ex=HEARTBEAT_TTL, get=True)
        pipe = self.redis.pipeline(transaction=True)
        if previous is None:
            log.warning("presence of gateway %s had lapsed; announcing it again", self.gateway_id)
            pipe.delete(_hash(self.gateway_id))
            if self._local:
                pipe.hset(_hash(self.gateway_id), mapping={str(a): c for a, c in self._local.items()})
            pipe.sadd(GATEWAYS, self.gateway_id)
            pipe.publish(keys.PRESENCE_CHANNEL, f"{self.gateway_id} * resync")
        pipe.expire(_hash(self.gateway_id), HEARTBEAT_TTL)
        await pipe.execute()
        self.last_beat = time.monotonic()

    async def change(self, account_id: int, delta: int, *, also: Sequence[bytes] = ()) -> None:
        """Count a stream of the account opened (+1) or closed (-1): the hash's entry written and the new count
        announced, in one round trip with the packed commands ``also`` (kicau/resp.py).

        Hand-packed on the process's shared connection rather than a redis-py MULTI pipeline: that pipeline was
        ~10% of the gateway's CPU to open a stream. No transaction is needed: the entry and the announcement are
        both the absolute count, so a reader that sees one before the other, or a repeat, is told nothing false;
        and one connection keeps this process's changes in the order they were made. A repeat after the
        connection broke sends the count as it is then, never an older one."""
        count = self._local.get(account_id, 0) + delta
        if count > 0:
            self._local[account_id] = count
        else:
            self._local.pop(account_id, None)
        presence = _hash(self.gateway_id).encode()
        for attempt in range(CHANGE_ATTEMPTS):
            count = self._local.get(account_id, 0)
            account = b"%d" % account_id
            packed = [
                resp.command(b"HSET", presence, account, b"%d" % count) if count > 0
                else resp.command(b"HDEL", presence, account),
                resp.command(b"EXPIRE", presence, b"%d" % HEARTBEAT_TTL),
                resp.command(b"PUBLISH", _PRESENCE_CHANNEL, b"%b %b %d" % (self.gateway_id.encode(), account, count)),
                *also,
            ]
            try:
                await resp.round_trip(self.redis, packed, attempts=1)
                return
            except (ConnectionError, OSError):
                if attempt == CHANGE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.02 * (attempt + 1))


class OnlineMirror:
    """Kept by each fanout worker: account id -> gateways holding its streams, updated from pub/sub."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._where: dict[int, set[str]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._resync_now = False

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

    def any_online(self, account_ids: Iterable[int]) -> bool:
        """Whether any of ``account_ids`` is online: ``gateways_of`` without grouping, stopping at the first."""
        where = self._where
        return any(where.get(account_id) for account_id in account_ids)

    def online_accounts(self) -> set[int]:
        return set(self._where)

    def _apply(self, message: str) -> None:
        gateway, account, count = message.split(" ")
        if account == "*" and count == "resync":
            self._resync_now = True
            return
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
                # Silent for longer than the TTL: dead, or stalled. Its hash expires on its own; a stalled
                # gateway announces itself again (and asks for a resync) on its next heartbeat.
                await self.redis.srem(GATEWAYS, gateway)
                continue
            for account, count in (await self.redis.hgetall(_hash(gateway))).items():
                if int(count) > 0:
                    fresh[int(account)].add(gateway)
        self._where = fresh

    async def _follow(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                # Announcements missed while redis-py reconnected the channel: a snapshot at once, rather than at
                # the next periodic one (up to HEARTBEAT_TTL later, a reader's statuses not published to it till then).
                await clients.subscribe(pubsub, keys.PRESENCE_CHANNEL, reconnected=self._reconnected)
                await self._snapshot()
                self._ready.set()
                resync_at = asyncio.get_running_loop().time() + HEARTBEAT_TTL
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._apply(bytes(message["data"]).decode())
                    if self._resync_now or asyncio.get_running_loop().time() > resync_at:
                        self._resync_now = False
                        await self._snapshot()
                        resync_at = asyncio.get_running_loop().time() + HEARTBEAT_TTL
            except asyncio.CancelledError:
                await clients.unsubscribe(pubsub, self._reconnected)
                raise
            except Exception:
                log.warning("presence mirror lost its subscription; resubscribing", exc_info=True)
                await clients.unsubscribe(pubsub, self._reconnected)
                await asyncio.sleep(1)

    def _reconnected(self, _connection: object = None) -> None:
        PUBSUB_RECONNECTIONS.labels("presence_mirror").inc()
        self._resync_now = True

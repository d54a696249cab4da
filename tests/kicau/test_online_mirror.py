"""Who is online, as a fanout worker mirrors it (kicau/presence.py ``OnlineMirror``): pure logic over the
presence messages it reads from pub/sub (``any_online`` agrees with ``gateways_of`` on whether anyone is there to
deliver to), and, on the stack's Redis, a mirror whose channel was dropped and silently reconnected by redis-py
reads a snapshot at once rather than at its next periodic one."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from kicau import clients, presence
from kicau.presence import OnlineMirror
from kicau.settings import CommonSettings
from stack.services import service_env


def test_any_online_agrees_with_gateways_of() -> None:
    mirror = OnlineMirror(Redis())  # never started: fed its messages by hand
    rng = random.Random(3)
    for _ in range(2000):
        gateway, account = rng.choice(["g1", "g2", "g3"]), rng.randrange(1, 60)
        mirror._apply(f"{gateway} {account} {rng.choice([0, 0, 1, 2])}")
        if rng.random() < 0.01:
            mirror._apply(f"{rng.choice(['g1', 'g2', 'g3'])} * gone")  # a gateway dropping all it held
        asked = rng.sample(range(1, 80), rng.randrange(0, 12))
        assert mirror.any_online(asked) == bool(mirror.gateways_of(asked))


def test_an_account_whose_last_stream_closed_is_offline() -> None:
    mirror = OnlineMirror(Redis())
    mirror._apply("g1 7 1")
    mirror._apply("g2 7 2")
    assert mirror.any_online([5, 7]) and mirror.gateways_of([5, 7]) == {"g1": [7], "g2": [7]}
    mirror._apply("g1 7 0")
    mirror._apply("g2 7 0")
    assert not mirror.any_online([5, 7]) and not mirror.gateways_of([5, 7])
    assert not mirror.any_online([])


async def test_a_mirror_reads_what_it_missed_as_soon_as_its_channel_is_back() -> None:
    # The services' client: its retries reconnect the channel silently, where a bare client would raise.
    name = f"test-mirror-{uuid.uuid4().hex[:8]}"
    redis = clients.redis_client(CommonSettings(redis_url=service_env()["KICAU_REDIS_URL"]), name=name)
    name = f"kicau-{name}"
    mirror = OnlineMirror(redis)
    gateway, account = f"test-{uuid.uuid4().hex[:8]}", random.randrange(10**15, 10**16)
    hash_key = presence.GATEWAY_KEYS_PREFIX + gateway + "}"
    try:
        await mirror.start()
        # A gateway announced a stream while the mirror's channel was down: the state is in Redis, the message gone.
        await redis.sadd(presence.GATEWAYS, gateway)
        await redis.set(f"{hash_key}:alive", b"1", ex=presence.HEARTBEAT_TTL)
        await redis.hset(hash_key, str(account), b"1")
        await asyncio.sleep(1.5)
        assert not mirror.any_online([account])  # nothing told it
        subscribed = [c for c in await redis.client_list() if c.get("name") == name and c.get("sub") != "0"]
        assert len(subscribed) == 1, subscribed
        reconnections = _reconnections()
        assert await redis.client_kill_filter(_id=str(subscribed[0]["id"])) == 1
        deadline = time.monotonic() + 10  # its next periodic snapshot is up to HEARTBEAT_TTL (30 s) away
        while not mirror.any_online([account]):
            assert time.monotonic() < deadline, "the mirror did not read a snapshot when its channel came back"
            await asyncio.sleep(0.1)
        assert mirror.gateways_of([account]) == {gateway: [account]}
        assert _reconnections() == reconnections + 1  # counted for the operator
    finally:
        await mirror.stop()
        await asyncio.sleep(0.2)  # its task, cancelled, closes its channel
        await redis.srem(presence.GATEWAYS, gateway)
        await redis.delete(hash_key, f"{hash_key}:alive")
        await redis.aclose()


def _reconnections() -> float:
    counted = REGISTRY.get_sample_value("kicau_pubsub_reconnections_total", {"subscriber": "presence_mirror"})
    return counted or 0.0

"""Who is online, as a fanout worker mirrors it (kicau/presence.py ``OnlineMirror``), pure logic over the
presence messages it reads from pub/sub (the pub/sub itself is exercised by the streaming and fault tests):
``any_online`` agrees with ``gateways_of`` on whether anyone is there to deliver to."""

from __future__ import annotations

import random

from redis.asyncio import Redis

from kicau.presence import OnlineMirror


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

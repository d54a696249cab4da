"""Pushes tried again later: a push whose endpoint failed every attempt of its batch (5xx, 429, no answer), or
whose push service was being given up on (``Unreachable``), is not dropped but kept for another round, minutes
later, as Mastodon's push jobs are retried. A push service that is down for a while (a distributor restarting, a
relay's outage) then costs its subscribers a late push, not a lost one.

Rounds: the first ``first_seconds`` (60) after the failure, each next one four times as long after the last
(1, 4, 16, 64, 256 minutes for the default five rounds: under six hours, well inside the two days a push and its
``push:sent`` mark live, kicau/web_push.py). Only a real attempt spends a round: a round that finds its push
service still given up on (``Unreachable``, at most five minutes at a time) is tried again ``first_seconds`` later,
at no cost but a lookup. After the last round the push is given up (counted). A round finds the subscription and
the follows as they are then: one removed or changed since, a policy that no longer lets the sender through
(``followed``, ``follower``), a notice already pushed (its mark) or a status deleted meanwhile is not pushed.

Kept in Redis, one sorted set (``keys.PUSH_LATER``), each member a push (its notice as the notices topic carries
it, the subscription's id, the round), scored by when it is due. The same push kept twice (a batch of notices
replayed after a restart, before its first round) is one member. Every push process takes due members by *leasing*
them (their score moved ``LEASE_SECONDS`` ahead, atomically), tries them, then adds the next round of those that
failed again and removes the others (a round kept again while its push service is given up on is the same member,
its score moved to when the push service is tried again). A process that dies holding a lease leaves its members to
come due again after the lease; one that took a member another had leased cannot, since the lease moved its score
first. A push tried twice so (a crash between its delivery and its mark) is sent twice at worst, as a replayed batch
is.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import Final

import msgspec
from redis.asyncio import Redis

from kicau import keys, resp
from kicau.web_push import PushNotice

LEASE_SECONDS: Final = 120
TAKEN_AT_ONCE: Final = 200
_GROWTH: Final = 4

# Due members (score <= ARGV[1]), at most ARGV[2], each leased (score set to ARGV[3]) as it is taken.
_LEASE = b"""
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
    redis.call('ZADD', KEYS[1], 'XX', ARGV[3], member)
end
return due
"""


class LaterPush(msgspec.Struct, frozen=True, array_like=True):
    notice: PushNotice
    subscription_id: int
    round: int  # 1 for the first try after the batch's
    # Written 0 since 2026-12-08 (a push is one member however often it is kept); members kept before carry when.
    kept_ns: int = 0


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(LaterPush).decode


def due_after(round_: int, first_seconds: float) -> float:
    """Seconds from a failure to the round ``round_`` (1, 2, ...) that follows it."""
    return float(first_seconds * _GROWTH ** (round_ - 1))


class LaterPushes:
    def __init__(self, redis: Redis, *, rounds: int, first_seconds: float, key: str = keys.PUSH_LATER) -> None:
        self._redis = redis
        self.rounds = rounds
        self._first_seconds = first_seconds
        self._key = key.encode()

    def after_failure(self, notice: PushNotice, subscription_id: int, failed_round: int,
                      *, attempted: bool, paused: float = 0.0) -> tuple[LaterPush, float] | None:
        """What follows a push's round ``failed_round`` (0: the batch's own tries) that failed, and in how many
        seconds; None once no round is left. ``attempted``: the endpoint was called (else its push service was
        being given up on for ``paused`` seconds more, and a later round is tried again once it is not, or
        ``first_seconds`` later if that is later: module doc)."""
        if not attempted and failed_round > 0:
            return LaterPush(notice, subscription_id, failed_round), max(self._first_seconds, paused)
        if failed_round >= self.rounds:
            return None
        return LaterPush(notice, subscription_id, failed_round + 1), due_after(failed_round + 1, self._first_seconds)

    async def keep(self, pushes: Sequence[tuple[LaterPush, float]], now: float | None = None) -> set[bytes]:
        """Each push, due in its seconds (one round trip); the members written."""
        if not pushes:
            return set()
        start = time.time() if now is None else now
        members = [(b"%f" % (start + seconds), _encode(msgspec.structs.replace(push, kept_ns=0)))
                   for push, seconds in pushes]
        await resp.round_trip(self._redis, [resp.command(
            b"ZADD", self._key, *(part for pair in members for part in pair))])
        return {member for _, member in members}

    async def take_due(self, now: float | None = None) -> list[tuple[bytes, LaterPush | None]]:
        """The pushes due now, leased (module doc): each member with its push (None for a member that cannot be
        read, to be removed)."""
        start = time.time() if now is None else now
        [members] = await resp.round_trip(self._redis, [resp.command(
            b"EVAL", _LEASE, b"1", self._key, b"%f" % start, b"%d" % TAKEN_AT_ONCE,
            b"%f" % (start + LEASE_SECONDS))])
        taken: list[tuple[bytes, LaterPush | None]] = []
        for member in members or ():
            raw = member if isinstance(member, bytes) else str(member).encode()
            try:
                taken.append((raw, _decode(raw)))
            except (msgspec.DecodeError, msgspec.ValidationError):
                taken.append((raw, None))
        return taken

    async def done(self, members: Sequence[bytes], kept: AbstractSet[bytes] = frozenset()) -> None:
        """Remove the members taken but those ``kept`` again (the same push, due later)."""
        gone = [member for member in members if member not in kept]
        if gone:
            await resp.round_trip(self._redis, [resp.command(b"ZREM", self._key, *gone)])

    async def waiting(self) -> int:
        [count] = await resp.round_trip(self._redis, [resp.command(b"ZCARD", self._key)])
        return int(count or 0)

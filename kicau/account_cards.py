"""Rendered Account entities, cached in Redis as JSON bytes and loaded from Cassandra on a miss.

Several services embed accounts in what they return (statuses carry their author), so the read path lives
here once. Writers that change what a card shows drop the cached copy (follows), or replace it with their change
applied when nobody else changed it meanwhile (new and deleted statuses, see ``replace_if_unchanged_command``).

A load on a miss must not cache counts older than a writer's change. Each writer, after its change is in Cassandra,
moves the account's *epoch* (``keys.account_cache_epoch``) in the same script that drops or replaces the card; a
load reads the epoch before it reads Cassandra, and caches its card only if the epoch has not moved since (and no
card was put meanwhile). Either the writer's move came first, and the load read the change; or it came after the
load's read began, and then the load caches nothing, or cached before the writer's drop or replace, which then
corrects it. Until 2026-12-07 a load cached whatever it read: the fanout loading a followee's card for a follow's
notification while a second follow of it was written kept a followers count one short until the card expired.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Mapping
from typing import Any, TypeGuard

import msgspec
from cassandra.cluster import Session
from redis.asyncio import Redis

from kicau import keys, resp
from kicau.clients import execute
from kicau.entities import account_entity, dumps, is_suspended_card
from kicau.staff import EVERYONE, ROLE_OF, profile_roles, role_named
from kicau.status_counts import StatusCounts

CARD_TTL_SECONDS = 300
# Each card lives CARD_TTL_SECONDS less up to this much, at random. Cards loaded together (after a restart, or by
# the bench's 500 posters in their first second) would otherwise expire together and all be reloaded in the same
# second (a load is four Cassandra reads: the account, its stats, the count mark and the entries after it).
CARD_TTL_JITTER_SECONDS = 60


def card_ttl_seconds() -> int:
    """A fresh card's expiry: CARD_TTL_SECONDS less a random part of CARD_TTL_JITTER_SECONDS."""
    return CARD_TTL_SECONDS - random.randrange(CARD_TTL_JITTER_SECONDS)


def with_statuses_count_moved(card: bytes, delta: int) -> bytes:
    """The same card JSON with ``statuses_count`` moved by ``delta`` (encoded as a fresh card would be)."""
    entity = msgspec.json.decode(card)
    entity["statuses_count"] = max(0, int(entity.get("statuses_count") or 0) + delta)
    return dumps(entity)


# Replace a cached card only if it is still exactly the copy the writer started from, keeping its expiry (so a
# card bumped again and again still goes back to Cassandra within CARD_TTL_SECONDS); otherwise drop it, since
# someone else changed it meanwhile and the next reader must load the counts afresh.
# Both move the card's epoch (KEYS[2]), kept a little longer than any card.
_REPLACE_IF_UNCHANGED = """
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
    return 1
end
redis.call('DEL', KEYS[1])
return 0
"""
_FORGET = """
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
"""
# A load's card, cached only if the epoch is still the one read before the load (ARGV[2], '' for none) and no card
# was put meanwhile.
_CACHE_IF_CURRENT = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[2] then
    return 0
end
if redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3], 'NX') then
    return 1
end
return 0
"""
_REPLACE_IF_UNCHANGED_SOURCE = _REPLACE_IF_UNCHANGED.encode()
_FORGET_SOURCE = _FORGET.encode()
_CACHE_IF_CURRENT_SOURCE = _CACHE_IF_CURRENT.encode()
_EPOCH_TTL = b"%d" % (2 * CARD_TTL_SECONDS)


def _card_keys(account_id: int) -> tuple[bytes, bytes]:
    return keys.account_cache(account_id).encode(), keys.account_cache_epoch(account_id).encode()


def listed(entity: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    """Whether an Account entity (decoded, as ``AccountCards.entity`` gives it) shows in lists of accounts: it
    exists and is not suspended, as Mastodon lists no suspended account."""
    return entity is not None and not entity.get("suspended")


def discoverable(entity: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    """Whether it is shown to accounts looking for whom to follow (the directory, suggestions): ``listed``, and
    not limited by staff, as Mastodon's directory shows no silenced account."""
    return listed(entity) and not entity.get("limited")


def without_suspended(cards: Mapping[int, bytes]) -> dict[int, bytes]:
    """The cards of accounts not suspended (kicau/entities.py ``is_suspended_card``): a list of accounts, or of
    notifications from them, shows none of the others, as Mastodon leaves suspended accounts out of them."""
    return {account_id: card for account_id, card in cards.items() if not is_suspended_card(card)}


class AccountCards:
    def __init__(self, redis: Redis, session: Session, public_url: str) -> None:
        self._redis = redis
        self._session = session
        self._public_url = public_url
        self._select_account = session.prepare("SELECT * FROM accounts WHERE id = ?")
        self._select_stats = session.prepare(
            "SELECT followers_count, following_count FROM account_stats WHERE account_id = ?"
        )
        self._statuses = StatusCounts(session)
        self._select_role = session.prepare(ROLE_OF)
        # Card misses being loaded in this process, by account (``_load_once``).
        self._loading: dict[int, asyncio.Task[dict[str, Any] | None]] = {}

    async def load_rows(self, account_id: int) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        # All reads at once: one round trip of latency instead of three (the counts of an account that does not
        # exist are wasted, and rare).
        rows, stats, statuses = await asyncio.gather(
            execute(self._session, self._select_account, (account_id,)),
            execute(self._session, self._select_stats, (account_id,)),
            self._statuses.count(account_id),
        )
        if not rows:
            return None, {}
        return rows[0], {**(stats[0] if stats else {}), "statuses_count": statuses}

    async def entity(self, account_id: int, *, replace: bool = True,
                     for_others: bool = False) -> dict[str, Any] | None:
        """The Account entity from Cassandra (fresh counts), refreshing the cache. ``replace=False`` (a miss's
        load) caches it only if no writer moved the card's epoch since the load began and no card was put
        meanwhile (module doc). ``for_others``: None for an account whose sign-up still waits for staff's approval
        (services/graph/sign_ups.py), read from the same row."""
        card_key, epoch_key = _card_keys(account_id)
        epoch = None if replace else await self._redis.get(epoch_key)
        (row, stats), roles = await asyncio.gather(self.load_rows(account_id),
                                                   execute(self._session, self._select_role, (account_id,)))
        if row is None or (for_others and row.get("approval_pending")):
            return None
        entity = account_entity(
            row,
            public_url=self._public_url,
            roles=profile_roles(role_named(roles[0]["role"]) if roles else EVERYONE),
            statuses_count=int(stats.get("statuses_count") or 0),
            followers_count=int(stats.get("followers_count") or 0),
            following_count=int(stats.get("following_count") or 0),
        )
        if replace:
            await self._redis.set(card_key, dumps(entity), ex=card_ttl_seconds())
        else:
            await resp.round_trip(self._redis, [resp.command(
                b"EVAL", _CACHE_IF_CURRENT_SOURCE, b"2", card_key, epoch_key, dumps(entity),
                epoch.encode() if isinstance(epoch, str) else epoch or b"", b"%d" % card_ttl_seconds())])
        return entity

    async def cards(self, account_ids: set[int]) -> dict[int, bytes]:
        """Cached JSON of many accounts in one round trip; misses are loaded from Cassandra and cached."""
        ordered = sorted(account_ids)
        if not ordered:
            return {}
        # Pipelined GETs rather than MGET: one round trip either way, and no cross-slot command on Redis Cluster.
        cached = await resp.round_trip(self._redis, [resp.get(keys.account_cache(a)) for a in ordered])
        found: dict[int, bytes] = {}
        missing: list[int] = []
        for account_id, raw in zip(ordered, cached, strict=True):
            if raw is None:
                missing.append(account_id)
            else:
                found[account_id] = raw if isinstance(raw, bytes) else raw.encode()
        for account_id, entity in zip(missing, await asyncio.gather(*map(self._load_once, missing)), strict=True):
            if entity is not None:
                found[account_id] = dumps(entity)
        return found

    def _load_once(self, account_id: int) -> asyncio.Future[dict[str, Any] | None]:
        """A miss joins the load of the same card already under way in this process. When a popular card
        expires, every page rendered at that moment misses it at once, and each load counts the author's statuses
        (kicau/status_counts.py): a whole list after a delete. Joining a load begun a moment earlier gives what
        arriving a moment earlier would have; ``entity``, for writers that want counts read after their write,
        never joins one."""
        loading = self._loading.get(account_id)
        if loading is None:
            loading = asyncio.ensure_future(self.entity(account_id, replace=False))
            self._loading[account_id] = loading
            loading.add_done_callback(functools.partial(self._loaded, account_id))
        # A caller that gives up (its request was cancelled) leaves the load to the others.
        return asyncio.shield(loading)

    def _loaded(self, account_id: int, loading: asyncio.Task[dict[str, Any] | None]) -> None:
        if self._loading.get(account_id) is loading:
            del self._loading[account_id]
        if not loading.cancelled():
            loading.exception()  # retrieved here too: every caller may have given up before it failed

    async def card(self, account_id: int) -> bytes | None:
        """One account's cached JSON (loaded from Cassandra on a miss), or None if it does not exist."""
        return (await self.cards({account_id})).get(account_id)

    @staticmethod
    def replace_if_unchanged_command(account_id: int, old: bytes, new: bytes) -> bytes:
        """Cache ``new`` for the account if the cache still holds ``old`` (its expiry kept); otherwise drop the
        cached card: one packed command (``kicau.resp``), sent with the writer's other cache writes.

        A writer that has just changed a count in Cassandra uses this instead of dropping the card and loading it
        back (two Cassandra reads): the card it read before its write, plus its own change, is the new card,
        unless a concurrent writer changed the card meanwhile, and then the next reader loads it afresh. EVAL
        rather than EVALSHA: nothing to load again after Redis restarts, and Redis compiles the script once."""
        return resp.command(b"EVAL", _REPLACE_IF_UNCHANGED_SOURCE, b"2", *_card_keys(account_id), old, new,
                            _EPOCH_TTL)

    @staticmethod
    def forget_command(account_id: int) -> bytes:
        """Drop the account's cached card (and move its epoch, so that no load begun before caches it again)."""
        return resp.command(b"EVAL", _FORGET_SOURCE, b"2", *_card_keys(account_id), _EPOCH_TTL)

    async def forget(self, *account_ids: int) -> None:
        if account_ids:
            await resp.round_trip(self._redis, [self.forget_command(account_id) for account_id in account_ids])

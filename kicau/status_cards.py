"""Rendered statuses for reads: the Redis status cache, with Cassandra behind it.

A cached value is the author's id (8 bytes, big-endian) followed by the Status fragment JSON; an empty value
is a tombstone for a deleted status. Hydrating a page is one pipelined round trip for the statuses and the cards
of their authors when this process has seen those statuses before (a status's author never changes), else one
more for the cards; only misses go to Cassandra, concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from cassandra.cluster import Session
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from kicau import keys, resp
from kicau.account_cards import AccountCards
from kicau.clients import execute
from kicau.entities import compose_status, status_fragment
from kicau.ids import pack_id, unpack_id
from kicau.resp import command

STATUS_CACHE_SECONDS = 24 * 3600
TOMBSTONE = b""
MAX_REMEMBERED_AUTHORS = 200_000  # status id -> author id pairs kept in process (about 20 MB at most)


def cache_value(account_id: int, fragment: bytes) -> bytes:
    return pack_id(account_id) + fragment


def _cache_args(status_id: int, account_id: int, fragment: bytes) -> tuple[bytes, ...]:
    # Only where nothing is cached yet: a status's fragment never changes, so the one case this skips is a
    # tombstone, which must win over an event delivered late (a rolled-back post) or replayed after a delete.
    return (b"SET", keys.status_cache(status_id).encode(), cache_value(account_id, fragment),
            b"EX", b"%d" % STATUS_CACHE_SECONDS, b"NX")


def _tombstone_args(status_id: int) -> tuple[bytes, ...]:
    return b"SET", keys.status_cache(status_id).encode(), TOMBSTONE, b"EX", b"%d" % STATUS_CACHE_SECONDS


def queue_cache(pipe: Pipeline, status_id: int, account_id: int, fragment: bytes) -> None:
    pipe.execute_command(*_cache_args(status_id, account_id, fragment))


def queue_tombstone(pipe: Pipeline, status_id: int) -> None:
    pipe.execute_command(*_tombstone_args(status_id))


def cache_command(status_id: int, account_id: int, fragment: bytes) -> bytes:
    """``queue_cache`` as one packed command (``kicau.resp``), for writers that bypass redis-py's pipelines."""
    return command(*_cache_args(status_id, account_id, fragment))


def tombstone_command(status_id: int) -> bytes:
    return command(*_tombstone_args(status_id))


class StatusCards:
    def __init__(self, redis: Redis, session: Session, accounts: AccountCards, public_url: str) -> None:
        self._redis = redis
        self._session = session
        self._accounts = accounts
        self._public_url = public_url
        self._select = session.prepare("SELECT * FROM statuses WHERE id = ?")
        self._authors: dict[int, int] = {}

    async def fragments(
        self, status_ids: Sequence[int], with_cards_of: Sequence[int] = ()
    ) -> tuple[dict[int, tuple[int, bytes]], dict[int, bytes]]:
        """Author id and fragment of each live status (deleted and unknown ids are left out), and the cached cards
        of the accounts ``with_cards_of``, read in the same round trip (those not cached are left out)."""
        if not status_ids:
            return {}, {}
        replies = await resp.round_trip(self._redis, [
            *(resp.get(keys.status_cache(s)) for s in status_ids),
            *(resp.get(keys.account_cache(a)) for a in with_cards_of),
        ])
        cached, card_replies = replies[: len(status_ids)], replies[len(status_ids):]
        cards = {a: raw if isinstance(raw, bytes) else raw.encode()
                 for a, raw in zip(with_cards_of, card_replies, strict=True) if raw is not None}
        found: dict[int, tuple[int, bytes]] = {}
        missing: list[int] = []
        for status_id, raw in zip(status_ids, cached, strict=True):
            if raw is None:
                missing.append(status_id)
            elif raw != TOMBSTONE:
                found[status_id] = (unpack_id(raw[:8]), raw[8:])
        if missing:
            loaded = await asyncio.gather(*(self._load(s) for s in missing))
            fill = self._redis.pipeline(transaction=False)
            for status_id, item in zip(missing, loaded, strict=True):
                if item is None:
                    queue_tombstone(fill, status_id)
                else:
                    found[status_id] = item
                    queue_cache(fill, status_id, item[0], item[1])
            await fill.execute()
        for status_id, (author, _) in found.items():
            self._remember_author(status_id, author)
        return found, cards

    def _remember_author(self, status_id: int, author: int) -> None:
        if status_id not in self._authors and len(self._authors) >= MAX_REMEMBERED_AUTHORS:
            del self._authors[next(iter(self._authors))]  # the oldest entry (dicts keep insertion order)
        self._authors[status_id] = author

    async def _load(self, status_id: int) -> tuple[int, bytes] | None:
        rows = await execute(self._session, self._select, (status_id,))
        if not rows or rows[0].get("deleted_at") is not None:
            return None
        row: dict[str, Any] = rows[0]
        author, _ = await self._accounts.load_rows(int(row["account_id"]))
        if author is None:
            return None
        return int(row["account_id"]), status_fragment(row, username=author["username"], public_url=self._public_url)

    async def render(self, status_ids: Sequence[int]) -> list[bytes]:
        """Full Status JSON for each live id, in the order given."""
        # The author of a status never changes, so this process remembers it: the cards of the authors it knows
        # are read with the statuses, and only unknown (or uncached) authors take a second round trip.
        known_authors = sorted({a for a in map(self._authors.get, status_ids) if a is not None})
        fragments, authors = await self.fragments(status_ids, known_authors)
        unread = {author for author, _ in fragments.values()} - authors.keys()
        if unread:
            authors.update(await self._accounts.cards(unread))
        rendered = []
        for status_id in status_ids:
            item = fragments.get(status_id)
            if item is not None and item[0] in authors:
                rendered.append(compose_status(item[1], authors[item[0]]))
        return rendered

    async def render_one(self, status_id: int) -> bytes | None:
        rendered = await self.render([status_id])
        return rendered[0] if rendered else None

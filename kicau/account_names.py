"""Accounts found by the start of their username: ``GET /api/v1/accounts/search`` (a client's ``@`` completion)
and the accounts of ``GET /api/v2/search``.

The index is one Redis sorted set (``keys.account_names``, every score 0, so ordered by member and read by prefix
with ``ZRANGEBYLEX``) of ``<username in lower case>:<account id>``; its member ``""`` says it exists. ``:`` sorts
before every letter, digit and ``_`` (what a username is made of), so a name's own entry comes before the longer
names it begins. The graph service adds an account's entry before it writes the account, so the index never
misses a registered account; an entry whose registration then failed (or whose name was released) names no
account, and readers check every entry against the account it names. Lost with Redis, the index is rebuilt from
Cassandra's ``accounts_by_username``, whose partitions are the names (as hashtags' names are, kicau/tag_history.py).
"""

from __future__ import annotations

import asyncio
from typing import Final

from cassandra.cluster import Session
from redis.asyncio import Redis

from kicau import keys, resp
from kicau.clients import execute
from kicau.resp import command

_NAMES: Final = keys.account_names().encode()
_PRESENT: Final = b""  # sorts first; no entry is empty
_REBUILD_CHUNK: Final = 1000


def entry(username_key: str, account_id: int) -> bytes:
    return b"%s:%d" % (username_key.encode(), account_id)


def add_command(username_key: str, account_id: int) -> bytes:
    """The entry of a new account (safe to repeat)."""
    return command(b"ZADD", _NAMES, b"0", entry(username_key, account_id))


def _parsed(member: bytes) -> tuple[str, int]:
    name, _, account_id = member.decode().rpartition(":")
    return name, int(account_id)


class AccountNames:
    """The index, read by prefix; rebuilt from Cassandra when Redis has lost it."""

    def __init__(self, redis: Redis, session: Session) -> None:
        self._redis = redis
        self._every_name = session.prepare("SELECT username, account_id FROM accounts_by_username")
        self._session = session
        self._rebuilding: asyncio.Task[None] | None = None

    async def starting_with(self, prefix: str, limit: int, after: tuple[str, int] | None = None,
                            ) -> list[tuple[str, int]]:
        """Up to ``limit`` (username, account id) entries whose name begins with ``prefix`` (lower case), in
        order (a name before the longer ones it begins), from the one after ``after`` if given. Entries may name
        accounts that do not exist."""
        low = b"(" + entry(*after) if after is not None else b"[" + prefix.encode()
        high = b"[" + prefix.encode() + b"\xff"  # UTF-8 never holds 0xff
        read = [command(b"ZSCORE", _NAMES, _PRESENT),
                command(b"ZRANGEBYLEX", _NAMES, low, high, b"LIMIT", b"0", b"%d" % limit)]
        present, members = await resp.round_trip(self._redis, read)
        if present is None:
            await self._rebuild()
            present, members = await resp.round_trip(self._redis, read)
        return [_parsed(member) for member in members]

    async def _rebuild(self) -> None:
        """Every name Cassandra holds, into the index, then its marker; one rebuild at a time in this process
        (two processes rebuilding at once write the same members)."""
        if self._rebuilding is None:
            self._rebuilding = asyncio.create_task(self._rebuild_once())
            self._rebuilding.add_done_callback(lambda _: setattr(self, "_rebuilding", None))
        await asyncio.shield(self._rebuilding)

    async def _rebuild_once(self) -> None:
        members = [entry(str(row["username"]), int(row["account_id"]))
                   for row in await execute(self._session, self._every_name)]
        packed = [command(b"ZADD", _NAMES, *(part for member in members[start:start + _REBUILD_CHUNK]
                                             for part in (b"0", member)))
                  for start in range(0, len(members), _REBUILD_CHUNK)]
        # The marker last: a reader that finds it finds every name before it.
        await resp.round_trip(self._redis, [*packed, command(b"ZADD", _NAMES, b"0", _PRESENT)])

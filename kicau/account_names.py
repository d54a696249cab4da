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

from typing import Final

from cassandra.cluster import Session
from redis.asyncio import Redis

from kicau import keys
from kicau.clients import execute
from kicau.lex_index import LexIndex

_NAMES: Final = keys.account_names()


def entry(username_key: str, account_id: int) -> bytes:
    return b"%s:%d" % (username_key.encode(), account_id)


def _parsed(member: bytes) -> tuple[str, int]:
    name, _, account_id = member.decode().rpartition(":")
    return name, int(account_id)


class AccountNames:
    """The index, read by prefix (kicau/lex_index.py); rebuilt from Cassandra's ``accounts_by_username``."""

    def __init__(self, redis: Redis, session: Session) -> None:
        every_name = session.prepare("SELECT username, account_id FROM accounts_by_username")

        async def record() -> list[bytes]:
            return [entry(str(row["username"]), int(row["account_id"]))
                    for row in await execute(session, every_name)]

        self._index = LexIndex(redis, _NAMES, record)

    def add_command(self, username_key: str, account_id: int) -> bytes:
        """The entry of a new account (safe to repeat)."""
        return self._index.add_command(entry(username_key, account_id))

    async def starting_with(self, prefix: str, limit: int, after: tuple[str, int] | None = None,
                            ) -> list[tuple[str, int]]:
        """Up to ``limit`` (username, account id) entries whose name begins with ``prefix`` (lower case), in
        order (a name before the longer ones it begins), from the one after ``after`` if given. Entries may name
        accounts that do not exist."""
        members = await self._index.starting_with(prefix.encode(), limit,
                                                  None if after is None else entry(*after))
        return [_parsed(member) for member in members]

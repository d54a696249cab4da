"""The profile directory: Mastodon's ``GET /api/v1/directory``, the accounts of the server by their newest status
(``order=active``, the default) or newest first (``order=new``).

Two Redis sorted sets of account ids:

* ``keys.directory_new``: every account, scored with the time it registered (its id's), added by the
  graph service before the account's row is written, as its name is to the search index (kicau/account_names.py):
  an id a failed registration left names no account, and readers skip it. Its member ``""`` says the set exists;
  a reader that misses it rebuilds it from Cassandra's ``accounts`` (their ``created_at``: the accounts the
  seeding tools write have ids from no clock).
* ``keys.directory_active``: the accounts that posted, scored with the time of their newest status (``ZADD GT``
  in the round trip that caches the status, kicau/status_cards.py: one command more a post). Lost with Redis, it
  fills again as accounts post.

Mastodon lists only the accounts that chose to be discoverable; every Kicau account is (``discoverable`` true).
"""

from __future__ import annotations

from datetime import UTC
from typing import Final

from cassandra.cluster import Session
from redis.asyncio import Redis

from kicau import keys, resp
from kicau.clients import execute
from kicau.ids import ms_from_id
from kicau.resp import command
from kicau.single_flight import SingleFlight

ORDERS: Final = ("active", "new")
_PRESENT: Final = b""
_REBUILD_CHUNK: Final = 1000


def joined_command(account_id: int) -> bytes:
    """An account's place among the newest (safe to repeat)."""
    return command(b"ZADD", keys.directory_new().encode(), str(ms_from_id(account_id)).encode(),
                   str(account_id).encode())


def posted_command(account_id: int, status_id: int) -> bytes:
    """An account's place among the active, moved up to its status's time, never down."""
    return command(b"ZADD", keys.directory_active().encode(), b"GT", str(ms_from_id(status_id)).encode(),
                   str(account_id).encode())


class Directory:
    def __init__(self, redis: Redis, session: Session) -> None:
        self._redis = redis
        self._every_account = session.prepare("SELECT id, created_at FROM accounts")
        self._session = session
        self._rebuild = SingleFlight(self._rebuild_once)  # one rebuild at a time in this process

    async def page(self, order: str, offset: int, limit: int) -> list[int]:
        """Account ids, ``limit`` at most from ``offset``, newest (``new``) or most recently posting (``active``)
        first."""
        key = (keys.directory_new() if order == "new" else keys.directory_active()).encode()
        read = [command(b"ZSCORE", keys.directory_new().encode(), _PRESENT),
                command(b"ZRANGE", key, str(offset).encode(), str(offset + limit - 1).encode(), b"REV")]
        present, members = await resp.round_trip(self._redis, read)
        if present is None and order == "new":
            await self._rebuild()
            present, members = await resp.round_trip(self._redis, read)
        return [int(bytes(member)) for member in members if bytes(member) != _PRESENT]

    async def around(self, account_id: int) -> tuple[int, int]:
        """Where ``account_id`` stands among the accounts newest first: (how many are newer, the rank the older
        ones begin at); pages before and after it are read from there. For an id the set does not hold (a cursor a
        client made up), the accounts registered after the moment its id says are the newer ones. After
        ``ensure``."""
        key = keys.directory_new().encode()
        rank, newer = await resp.round_trip(self._redis, [
            command(b"ZREVRANK", key, str(account_id).encode()),
            command(b"ZCOUNT", key, b"(" + str(ms_from_id(account_id)).encode(), b"+inf")])
        return (int(rank), int(rank) + 1) if rank is not None else (int(newer), int(newer))

    async def ranked(self, start: int, stop: int) -> list[int]:
        """The account ids ranked ``start`` to ``stop`` (excluded) among the newest first. After ``ensure``."""
        if stop <= start:
            return []
        members = await resp.round_trip(self._redis, [command(
            b"ZRANGE", keys.directory_new().encode(), str(start).encode(), str(stop - 1).encode(), b"REV")])
        return [int(bytes(member)) for member in members[0] if bytes(member) != _PRESENT]

    async def ensure(self) -> None:
        """Rebuild the set of the newest if Redis lost it: once before a listing's ``around`` and ``ranked``."""
        present = await resp.round_trip(self._redis, [command(b"ZSCORE", keys.directory_new().encode(), _PRESENT)])
        if present[0] is None:
            await self._rebuild()

    async def _rebuild_once(self) -> None:
        # Registered when its row says (accounts the seeding tools wrote have ids from no clock), else when its id
        # does.
        rows = await execute(self._session, self._every_account)
        joined = [(int(row["id"]), ms_from_id(int(row["id"])) if row["created_at"] is None
                   else int(row["created_at"].replace(tzinfo=UTC).timestamp() * 1000)) for row in rows]
        key = keys.directory_new().encode()
        packed = [command(b"ZADD", key, *(part for account_id, ms in joined[start:start + _REBUILD_CHUNK]
                                          for part in (str(ms).encode(), str(account_id).encode())))
                  for start in range(0, len(joined), _REBUILD_CHUNK)]
        await resp.round_trip(self._redis, [*packed, command(b"ZADD", key, b"0", _PRESENT)])

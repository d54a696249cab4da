"""How much the server is used, for what ``/api/v1/instance`` (``stats``) and ``/api/v2/instance`` (``usage``) report:
its accounts, its statuses, and its accounts active in the last 30 days.

* **Accounts**: the profile directory's set of every account (kicau/directory.py), less its marker. An id left by
  a registration that failed after it was added is counted too (rare: readers of the directory skip it).
* **Statuses**, as Mastodon counts them (every local status but direct ones, reblogs included): a counter the fanout
  moves as it applies each status's events, in the batch's own Redis round trip. A batch applied again after a
  crash of the fanout (Kafka gives it again) counts its statuses again: a statistic that may drift by a crash's
  batch, never below zero. Redis's append-only file keeps it through a restart; lost with Redis, it starts again
  at zero.
* **Active in the last 30 days**: the accounts that posted since (the directory's ``active`` scores). Mastodon
  counts sign-ins; Kicau records no sign-in time, and a post is what the directory calls activity.
"""

from __future__ import annotations

import time
from typing import Final, NamedTuple

from redis.asyncio import Redis

from kicau import keys
from kicau.resp import command, round_trip

ACTIVE_DAYS: Final = 30
_STATUSES: Final = keys.statuses_count().encode()


class Usage(NamedTuple):
    accounts: int
    statuses: int
    active_month: int


def statuses_command(change: int) -> bytes:
    """The count of statuses moved by ``change`` (a batch's posted less its deleted)."""
    return command(b"INCRBY", _STATUSES, b"%d" % change)


async def usage(redis: Redis) -> Usage:
    """One round trip."""
    since_ms = int((time.time() - ACTIVE_DAYS * 86400) * 1000)
    registered, marker, statuses, active = await round_trip(redis, [
        command(b"ZCARD", keys.directory_new().encode()),
        command(b"ZSCORE", keys.directory_new().encode(), b""),
        command(b"GET", _STATUSES),
        command(b"ZCOUNT", keys.directory_active().encode(), b"%d" % since_ms, b"+inf"),
    ])
    return Usage(int(registered) - (marker is not None), max(0, int(statuses or 0)), int(active))

"""A hashtag's recent use, and the names of every hashtag used: Mastodon's Tag entity (``GET /api/v1/tags/:name``,
hashtag search results), whose ``history`` says, for each of the last seven days, how many statuses used the
hashtag and from how many accounts, and the hashtags a search suggests.

Use is counted in Redis as Mastodon counts it there: per hashtag and day, a HyperLogLog of the status ids and one
of the account ids (``keys.tag_uses``, ``keys.tag_accounts``), which the fanout adds to with the batch that lists
the statuses on their hashtag timelines. A HyperLogLog counts distinct members, so a batch replayed after a crash
adds nothing, and a deleted status stays counted (as in Mastodon's history). Exact for the small counts most
hashtags have (Redis keeps small HyperLogLogs sparse), within ~1% beyond. Kept ``HISTORY_DAYS`` + 1 days; lost
with Redis (the statuses stay on their timelines: this is a trend, not a record).

Names go into one sorted set (``keys.tag_names``, every score 0, so it is ordered by name and read by prefix
with ``ZRANGEBYLEX``), added to by the same round trip; its member ``""`` says it exists. Lost with Redis, it is
rebuilt from Cassandra's ``tag_days``, whose partitions are the hashtags (``TagNames``).

A hashtag *exists* once a public status has used it: Cassandra's ``tag_days`` lists a day for it
(kicau/tag_timeline.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

from cassandra.cluster import Session
from redis.asyncio import Redis

from kicau import hashtags, keys, resp
from kicau.clients import execute
from kicau.lex_index import LexIndex
from kicau.resp import command
from kicau.tag_timeline import DAY_MS, day_of

HISTORY_DAYS = 7
_KEPT_SECONDS = (HISTORY_DAYS + 1) * 86_400
_NAMES = keys.tag_names().encode()
# A prefix a search may look up: what a hashtag's name is made of (kicau/hashtags.py).
PREFIX: Final = re.compile(r"[\w\u00b7\u30fb\u200c]{1,100}")


def count_commands(used: Iterable[tuple[str, int, int]]) -> list[bytes]:
    """Packed commands counting (hashtag, status id, account id) uses: the status into its day's uses, the
    account into its day's accounts, each key kept ``HISTORY_DAYS`` + 1 days from its last use; and the
    hashtags into the index of names."""
    used = list(used)
    names = sorted({tag for tag, _, _ in used})
    packed: list[bytes] = [command(b"ZADD", _NAMES, *(part for name in names for part in (b"0", name.encode())))] \
        if names else []
    for tag, status_id, account_id in used:
        day = day_of(status_id)
        uses, accounts = keys.tag_uses(tag, day).encode(), keys.tag_accounts(tag, day).encode()
        ttl = str(_KEPT_SECONDS).encode()
        packed += (command(b"PFADD", uses, str(status_id).encode()), command(b"EXPIRE", uses, ttl),
                   command(b"PFADD", accounts, str(account_id).encode()), command(b"EXPIRE", accounts, ttl))
    return packed


def history_days(now_ms: float | None = None) -> list[int]:
    """The days a history covers, today first."""
    today = int((time.time() * 1000 if now_ms is None else now_ms) // DAY_MS)
    return [today - back for back in range(HISTORY_DAYS)]


def history_commands(tag: str, days: Sequence[int]) -> list[bytes]:
    """Packed PFCOUNTs of ``days``' uses and accounts, in that order for each day."""
    packed: list[bytes] = []
    for day in days:
        packed += (command(b"PFCOUNT", keys.tag_uses(tag, day).encode()),
                   command(b"PFCOUNT", keys.tag_accounts(tag, day).encode()))
    return packed


async def history_counts(redis: Redis, names: Sequence[str], days: Sequence[int]) -> list[list[int]]:
    """Each hashtag's counts over ``days`` (as ``entity`` takes them), in one round trip."""
    counts = await resp.round_trip(redis, [c for tag in names for c in history_commands(tag, days)])
    per_tag = 2 * len(days)
    return [[int(c) for c in counts[i * per_tag:(i + 1) * per_tag]] for i in range(len(names))]


def entity(tag: str, public_url: str, days: Sequence[int], counts: Sequence[int],
           following: bool | None = None, featuring: bool | None = None) -> dict[str, Any]:
    """Mastodon's Tag: the name in normal form, its page, and its history (``counts`` as ``history_commands``
    read them), today first, with Mastodon's strings (``day`` the day's start in seconds since the epoch).
    ``following`` and ``featuring`` (on the reader's profile) only for a reader with a user token, as Mastodon
    gives them."""
    body: dict[str, Any] = {
        "name": tag,
        "url": hashtags.url(tag, public_url),
        "history": [{"day": str(day * DAY_MS // 1000), "uses": str(counts[2 * i]), "accounts": str(counts[2 * i + 1])}
                    for i, day in enumerate(days)],
    }
    if following is not None:
        body["following"] = following
    if featuring is not None:
        body["featuring"] = featuring
    return body


class TagNames:
    """The index of hashtag names, read by prefix (kicau/lex_index.py); rebuilt from Cassandra's ``tag_days``."""

    def __init__(self, redis: Redis, session: Session) -> None:
        every_tag = session.prepare("SELECT DISTINCT tag FROM tag_days")

        async def record() -> list[bytes]:
            return [str(row["tag"]).encode() for row in await execute(session, every_tag)]

        self._index = LexIndex(redis, keys.tag_names(), record)

    async def starting_with(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` names that begin with ``prefix`` (in normal form), in order: the name itself first."""
        return [name.decode() for name in await self._index.starting_with(prefix.encode(), limit)]

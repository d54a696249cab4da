"""Trending hashtags: Mastodon's ``GET /api/v1/trends/tags``, the hashtags public statuses use more than usual.

*Counted* by the fanout with each batch's hashtag history (kicau/tag_history.py): after the day's HyperLogLogs take
the batch's statuses and accounts, the same round trip reads how many accounts used each hashtag that day, and a
second one raises the hashtag's score in that day's candidates (``keys.tag_trend_day``, a sorted set of hashtag names
scored by accounts) with ``ZADD GT``. A replayed batch counts no one twice (the HyperLogLog) and lowers nothing
(``GT``), so a crash between the two round trips leaves a score that the hashtag's next use sets right.

*Ranked* when read: the candidates are the ``CANDIDATES`` hashtags with the most accounts today and yesterday; each
one's last seven days are read (one round trip, as the Tag entity's history) and scored by how far its recent use
passes its usual use (what Mastodon's trends measure too, with a formula and decay of their own): recent = today's
accounts plus yesterday's times the share of the day still to come (a day that slides instead of starting at
midnight), usual = the mean of the five days before yesterday; a hashtag trends when ``TREND_MIN_ACCOUNTS``
(Mastodon's threshold, 5) used it recently and more than usually, ranked by the difference. A deleted status stays
counted, as in the history; all of it is lost with Redis (a trend, not a record), and built again as hashtags are
used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from kicau import keys, resp, tag_history
from kicau.resp import command
from kicau.tag_timeline import DAY_MS, day_of

# How many accounts must have used a hashtag recently for it to trend (Mastodon's default threshold).
TREND_MIN_ACCOUNTS: Final = 5
# Hashtags with the most accounts on each of the two days, scored when ranked.
CANDIDATES: Final = 200
# The ranking's length: Mastodon's trends page through ``offset``, 20 at a time.
MAX_TRENDS: Final = 100
# A day's candidates outlive it by a day (yesterday's are read until today ends).
_KEPT_SECONDS: Final = str(3 * 86_400).encode()


async def count_uses(redis: Redis, used: Iterable[tuple[str, int, int]]) -> None:
    """Count (hashtag, status id, account id) uses into the hashtags' history and their days' candidates."""
    used = list(used)
    packed = tag_history.count_commands(used)
    days = sorted({(tag, day_of(status_id)) for tag, status_id, _ in used})
    counts = await resp.round_trip(
        redis, [*packed, *(command(b"PFCOUNT", keys.tag_accounts(tag, day).encode()) for tag, day in days)])
    scored: dict[int, list[bytes]] = {}
    for (tag, day), accounts in zip(days, counts[len(packed):], strict=True):
        scored.setdefault(day, []).extend((str(int(accounts)).encode(), tag.encode()))
    raising: list[bytes] = []
    for day, members in scored.items():
        key = keys.tag_trend_day(day).encode()
        raising += (command(b"ZADD", key, b"GT", *members), command(b"EXPIRE", key, _KEPT_SECONDS))
    await resp.round_trip(redis, raising)


@dataclass(frozen=True)
class Trend:
    tag: str
    score: float
    recent: float


def scored(tag: str, counts: Sequence[int], elapsed: float) -> Trend:
    """A hashtag's trend from its history's counts (``tag_history.history_counts``: uses and accounts of each
    day, today first) at ``elapsed`` (the share of today gone, 0 to 1)."""
    accounts = counts[1::2]
    recent = accounts[0] + accounts[1] * (1.0 - elapsed)
    before = accounts[2:7]
    usual = sum(before) / len(before) if before else 0.0
    return Trend(tag, recent - usual, recent)


def ranked(trends: Iterable[Trend], limit: int = MAX_TRENDS) -> list[str]:
    """The hashtags that trend, most first (then by name), ``limit`` at most."""
    kept = [t for t in trends if t.recent >= TREND_MIN_ACCOUNTS and t.score > 0]
    kept.sort(key=lambda t: (-t.score, t.tag))
    return [t.tag for t in kept[:limit]]


async def trending(redis: Redis, now_ms: float) -> list[str]:
    """The hashtags that trend now, most first (``MAX_TRENDS`` at most): two reads of candidates, then one of
    their histories."""
    today = int(now_ms // DAY_MS)
    tops = await resp.round_trip(redis, [command(b"ZRANGE", keys.tag_trend_day(day).encode(), b"0",
                                                 str(CANDIDATES - 1).encode(), b"REV") for day in (today, today - 1)])
    names = sorted({bytes(name).decode() for top in tops for name in top})
    if not names:
        return []
    days = tag_history.history_days(now_ms)
    counts = await tag_history.history_counts(redis, names, days)
    elapsed = (now_ms - today * DAY_MS) / DAY_MS
    return ranked(scored(tag, c, elapsed) for tag, c in zip(names, counts, strict=True))

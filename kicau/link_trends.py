"""Trending links: Mastodon's ``GET /api/v1/trends/links``, the pages public statuses share more than usual, each
as its preview card with the history of its shares.

*Counted* by the post service as it shows a public status's card (services/post/link_previews.py): the status's id
and its author's go into the page's HyperLogLogs of the day (``keys.link_shares``, ``keys.link_sharers``: shares and
accounts, kept ``HISTORY_DAYS`` + 1 days), and the same round trip reads the day's accounts, which then raise the
page's score among the day's candidates (``keys.link_trend_day``, ``ZADD GT``), as hashtags are counted
(kicau/tag_trends.py): a status counted twice (a runner that died between the two) counts once, and nothing is
lowered.

*Ranked* when read, by the hashtags' rule (``tag_trends.scored`` and ``ranked``: recent accounts against the usual
ones, at least five recently): the candidates of today and yesterday, their seven days' history in one round trip;
each shown as its card (``keys.link_card``, kept a day since its page was last fetched: a link whose card has
expired is left out). Statuses that are not public, and deleted ones before their card was shown, are not counted;
a deleted one counted stays counted, as with hashtags. Lost with Redis, as every trend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec
from redis.asyncio import Redis

from kicau import keys, resp, tag_trends
from kicau.resp import command
from kicau.tag_history import HISTORY_DAYS, history_days
from kicau.tag_timeline import DAY_MS, day_of

_KEPT_SECONDS: Final = str((HISTORY_DAYS + 1) * 86_400).encode()
_CANDIDATES_KEPT_SECONDS: Final = str(3 * 86_400).encode()
_decode_card = msgspec.json.Decoder(dict[str, Any]).decode


async def count_share(redis: Redis, url: str, status_id: int, account_id: int) -> None:
    """Count a public status that shows ``url``'s card (module doc): two round trips."""
    day = day_of(status_id)
    shares, sharers = keys.link_shares(url, day).encode(), keys.link_sharers(url, day).encode()
    counted = await resp.round_trip(redis, [
        command(b"PFADD", shares, b"%d" % status_id), command(b"EXPIRE", shares, _KEPT_SECONDS),
        command(b"PFADD", sharers, b"%d" % account_id), command(b"EXPIRE", sharers, _KEPT_SECONDS),
        command(b"PFCOUNT", sharers)])
    candidates = keys.link_trend_day(day).encode()
    await resp.round_trip(redis, [command(b"ZADD", candidates, b"GT", b"%d" % int(counted[-1]), url.encode()),
                                  command(b"EXPIRE", candidates, _CANDIDATES_KEPT_SECONDS)])


async def histories(redis: Redis, urls: Sequence[str], days: Sequence[int]) -> list[list[int]]:
    """Each page's shares and accounts on each of ``days`` (interleaved, as ``tag_history.history_counts``)."""
    packed = [command(b"PFCOUNT", key(url, day).encode())
              for url in urls for day in days for key in (keys.link_shares, keys.link_sharers)]
    counts = [int(n) for n in await resp.round_trip(redis, packed)] if packed else []
    width = 2 * len(days)
    return [counts[i * width:(i + 1) * width] for i in range(len(urls))]


async def trending(redis: Redis, now_ms: float) -> list[str]:
    """The pages that trend now, most first (``tag_trends.MAX_TRENDS`` at most)."""
    today = int(now_ms // DAY_MS)
    tops = await resp.round_trip(redis, [
        command(b"ZRANGE", keys.link_trend_day(day).encode(), b"0", str(tag_trends.CANDIDATES - 1).encode(),
                b"REV") for day in (today, today - 1)])
    urls = sorted({bytes(url).decode() for top in tops for url in top})
    if not urls:
        return []
    counts = await histories(redis, urls, history_days(now_ms))
    elapsed = (now_ms - today * DAY_MS) / DAY_MS
    return tag_trends.ranked(tag_trends.scored(url, c, elapsed) for url, c in zip(urls, counts, strict=True))


async def entities(redis: Redis, urls: Sequence[str], now_ms: float) -> list[dict[str, Any]]:
    """The trending pages' cards, each with its history (Mastodon's TrendsLink: a PreviewCard and ``history``,
    today first, counts as strings); a page whose card is no longer kept is left out."""
    return [card for _, card in await cards_of(redis, urls, now_ms)]


async def cards_of(redis: Redis, urls: Sequence[str], now_ms: float) -> list[tuple[str, dict[str, Any]]]:
    """``entities``, each with the URL it was counted under (a card's own ``url`` may be the page's canonical
    one)."""
    if not urls:
        return []
    days = history_days(now_ms)
    found, counts = await resp.round_trip(redis, [resp.get(keys.link_card(url)) for url in urls]), \
        await histories(redis, urls, days)
    shown = []
    for url, raw, history in zip(urls, found, counts, strict=True):
        if not raw or bytes(raw) == b"-":
            continue
        card = _decode_card(bytes(raw))
        card["history"] = [{"day": str(day * DAY_MS // 1000), "uses": str(history[2 * i]),
                            "accounts": str(history[2 * i + 1])} for i, day in enumerate(days)]
        shown.append((url, card))
    return shown

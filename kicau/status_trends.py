"""Trending statuses: Mastodon's ``GET /api/v1/trends/statuses``, the public statuses favourited and reblogged most
of late.

*Counted* by the post service, in the round trip that marks the change: each favourite and reblog a claim makes
(kicau/claims.py: once per account and status) adds one to the status's engagements of the day
(``keys.status_trend_day``, a sorted set of status ids). A favourite or reblog given back is not taken off (as
Mastodon's trends count engagement, not the standing count); a crash between the claim and this count loses that
one engagement (a trend, not a record). Any status is counted; which may trend is decided when ranked.

*Ranked* when read: the ``CANDIDATES`` statuses with the most engagements today and yesterday; recent = today's
engagements plus yesterday's times the share of the day still to come; a status trends once ``TREND_MIN_ENGAGEMENTS``
(Mastodon's threshold, 5) came recently, scored by them halved every ``HALF_LIFE_HOURS`` of the status's age (so
a day-old status needs four times the engagements of a new one), if it is public, no reply, without a content
warning and not sensitive (what Mastodon lets trend). Each reader then sees those it may see (blocks, mutes,
filters: kicau/status_cards.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis

from kicau import keys, resp
from kicau.ids import ms_from_id
from kicau.resp import command
from kicau.tag_timeline import DAY_MS
from kicau.tag_trends import MAX_TRENDS as MAX_TRENDS  # the same length as the hashtags' ranking

TREND_MIN_ENGAGEMENTS: Final = 5
HALF_LIFE_HOURS: Final = 12.0
CANDIDATES: Final = 200
_KEPT_SECONDS: Final = str(3 * 86_400).encode()


def engagement_commands(status_id: int, now_ms: float) -> list[bytes]:
    """Packed commands counting one engagement of the status on the day of ``now_ms``."""
    key = keys.status_trend_day(int(now_ms // DAY_MS)).encode()
    return [command(b"ZINCRBY", key, b"1", str(status_id).encode()), command(b"EXPIRE", key, _KEPT_SECONDS)]


@dataclass(frozen=True)
class Candidate:
    status_id: int
    recent: float  # engagements in the last day (yesterday's weighted by the share of today still to come)


def recent_engagements(today: Sequence[Any], yesterday: Sequence[Any], elapsed: float) -> list[Candidate]:
    """The candidates of two days' ``ZRANGE ... WITHSCORES`` replies (flat: member, score, ...), ``elapsed``
    the share of today gone."""
    counted: dict[int, float] = {}
    for reply, weight in ((today, 1.0), (yesterday, 1.0 - elapsed)):
        for member, score in zip(reply[::2], reply[1::2], strict=True):
            status_id = int(bytes(member))
            counted[status_id] = counted.get(status_id, 0.0) + float(bytes(score)) * weight
    return [Candidate(status_id, recent) for status_id, recent in counted.items()]


def may_trend(status: dict[str, Any]) -> bool:
    """Whether a status (its Status entity, as no one in particular sees it) may trend."""
    return (status.get("visibility") == "public" and status.get("in_reply_to_id") is None
            and not status.get("spoiler_text") and not status.get("sensitive") and status.get("reblog") is None)


def ranked(candidates: Iterable[Candidate], now_ms: float, limit: int = MAX_TRENDS) -> list[int]:
    """The candidates that trend (eligibility aside), the highest score first (then the newest)."""
    scored = []
    for candidate in candidates:
        if candidate.recent < TREND_MIN_ENGAGEMENTS:
            continue
        age_hours = max(0.0, (now_ms - ms_from_id(candidate.status_id)) / 3_600_000)
        scored.append((candidate.recent * 0.5 ** (age_hours / HALF_LIFE_HOURS), candidate.status_id))
    scored.sort(key=lambda pair: (-pair[0], -pair[1]))
    return [status_id for _, status_id in scored[:limit]]


async def candidates(redis: Redis, now_ms: float) -> list[Candidate]:
    """The statuses with the most engagements today and yesterday (``CANDIDATES`` of each), one round trip."""
    today = int(now_ms // DAY_MS)
    top = str(CANDIDATES - 1).encode()
    replies = await resp.round_trip(redis, [
        command(b"ZRANGE", keys.status_trend_day(day).encode(), b"0", top, b"REV", b"WITHSCORES")
        for day in (today, today - 1)])
    return recent_engagements(replies[0], replies[1], (now_ms - today * DAY_MS) / DAY_MS)


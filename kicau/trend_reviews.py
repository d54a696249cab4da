"""Trends review: staff's say on what may trend (Mastodon's ``/api/v1/admin/trends/{tags,statuses,links}`` and
their ``approve`` and ``reject``).

Trends are ranked from use alone (kicau/tag_trends.py, kicau/status_trends.py, kicau/link_trends.py), so a spammer
who gets five accounts to use a hashtag, or to share a page, puts it on every reader's trends. An operator who
will not have that reviews them: a hashtag, status or page staff *reject* never trends again, one they *approve*
always may. What no one has reviewed trends as the setting ``trendable_by_default`` says (the timeline service's
``KICAU_TIMELINE_TRENDABLE_BY_DEFAULT``): true by default, so a small instance's trends need no staff; false for
Mastodon's own default, where nothing trends until staff approve it. Staff's listing shows the whole ranking,
reviewed or not, each item with ``requires_review`` (never reviewed) and ``trendable`` (whether it trends now).

Kept in Cassandra ``trend_reviews`` (migration 0063), a partition a kind, a row an item: the hashtag's name in normal
form, the status's id, the page's URL. Each timeline process holds them in memory: it reads ``keys
.TREND_REVIEWS_VERSION`` with each trends read (trends are read far less often than timelines) and reads the kind's
partition again when the version moved, which each review does, or when ``RELOAD_SECONDS`` passed (a review whose
version move was lost with Redis). A page's id in the admin API is its URL in URL-safe base64: Kicau keeps no card
ids, and this one names the page without a lookup, even once it no longer trends.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from cassandra.cluster import Session
from redis.asyncio import Redis

from kicau import keys
from kicau.clients import execute, write_preparer

Kind = Literal["tags", "statuses", "links"]
KINDS: Final[tuple[Kind, ...]] = ("tags", "statuses", "links")
# The role permission a review needs (Mastodon's ``manage_taxonomies``).
PERMISSION: Final = "manage_taxonomies"
# How long a process keeps the reviews it read when the version has not moved.
RELOAD_SECONDS: Final = 60.0
# The longest URL an id may name (an id is a third longer): a bound on what a request's path makes us decode.
MAX_URL: Final = 4096


@dataclass(frozen=True)
class Review:
    trendable: bool
    reviewed_at: datetime
    reviewed_by: int


def lets_trend(review: Review | None, by_default: bool) -> bool:
    """Whether an item trends: as staff said, or as the instance's default when no one has."""
    return by_default if review is None else review.trendable


def review_fields(review: Review | None, by_default: bool) -> dict[str, Any]:
    """What staff's listing adds to an item's entity."""
    return {"requires_review": review is None, "trendable": lets_trend(review, by_default)}


def link_id(url: str) -> str:
    """A page's id in the admin API: its URL in URL-safe base64, without padding."""
    return base64.urlsafe_b64encode(url.encode()).rstrip(b"=").decode()


def link_url(link: str) -> str | None:
    """The URL a page's id names, or None when it names none."""
    if not link or len(link) > MAX_URL * 2 or not link.isascii():
        return None
    try:
        url = base64.urlsafe_b64decode(link + "=" * (-len(link) % 4)).decode()
    except (binascii.Error, ValueError):
        return None
    if link_id(url) != link or not url.startswith(("http://", "https://")) or len(url) > MAX_URL:
        return None
    return url


@dataclass
class _Held:
    version: object  # the version key as last read (None: none in Redis)
    at: float
    reviews: dict[str, Review]


class TrendReviews:
    """Cassandra ``trend_reviews``, as this process last read each kind."""

    def __init__(self, session: Session, write_consistency: int, redis: Redis) -> None:
        self._session = session
        self._redis = redis
        write = write_preparer(session, write_consistency)
        self._read = session.prepare(
            "SELECT item, trendable, reviewed_at, reviewed_by FROM trend_reviews WHERE kind = ?")
        self._write = write("INSERT INTO trend_reviews (kind, item, trendable, reviewed_at, reviewed_by) "
                            "VALUES (?, ?, ?, ?, ?)")
        self._held: dict[str, _Held] = {}
        self._loading = asyncio.Lock()

    async def of_kind(self, kind: Kind) -> Mapping[str, Review]:
        """Every review of ``kind``, by item: read again when a review moved the version since, or after
        ``RELOAD_SECONDS``."""
        version = await self._redis.get(keys.TREND_REVIEWS_VERSION)
        held = self._held.get(kind)
        if held is not None and held.version == version and time.monotonic() - held.at < RELOAD_SECONDS:
            return held.reviews
        async with self._loading:  # one read a kind at a time, for every reader waiting on it
            held = self._held.get(kind)
            if held is None or held.version != version or time.monotonic() - held.at >= RELOAD_SECONDS:
                rows = await execute(self._session, self._read, (kind,))
                held = self._held[kind] = _Held(version, time.monotonic(), {
                    row["item"]: Review(bool(row["trendable"]), row["reviewed_at"].replace(tzinfo=UTC),
                                        int(row["reviewed_by"] or 0))
                    for row in rows})
            return held.reviews

    async def review(self, kind: Kind, item: str, trendable: bool, by: int) -> Review:
        """Record staff's verdict on an item (it replaces any before) and tell every timeline process."""
        made = Review(trendable, datetime.now(UTC).replace(microsecond=0), by)
        await execute(self._session, self._write, (kind, item, trendable, made.reviewed_at, by))
        await self._redis.incr(keys.TREND_REVIEWS_VERSION)
        return made

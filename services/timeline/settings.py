"""Settings only the timeline service reads (``KICAU_TIMELINE_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from kicau.settings import InternalListener


class TimelineSettings(InternalListener):
    model_config = SettingsConfigDict(env_prefix="KICAU_TIMELINE_", extra="ignore")

    port: int = 8082
    # Concurrent Cassandra reads one timeline rebuild may issue (one per followed account).
    rebuild_concurrency: int = Field(default=32, ge=1, le=512)
    rebuild_lock_seconds: int = Field(default=30, ge=1)
    # Statuses and account cards kept in this process, kept true by Redis (kicau/tracked_cache.py); 0: none.
    # A status is ~1.6 KB and a card ~1 KB, so 20,000 copies hold ~30 MB.
    local_cache_entries: int = Field(default=20_000, ge=0)
    # Keep home page reads (the timeline's range) among those copies too, until the fanout writes into that
    # timeline: a reread of an unchanged timeline then costs no Redis round trip (kicau/feeds.py).
    home_page_copies: bool = True
    # Follower ids kept in memory, at most, of the authors of edits and deletions resumed streams are told of
    # (kicau/retractions.py, under the fanout's follower list versions: kicau/follower_lists.py), 8 bytes each.
    retraction_follower_ids: int = Field(default=1_000_000, ge=0)
    # Keep the newest ids of accounts whose profiles are read (kicau/newest_ids.py), at most this many accounts
    # (~400 bytes each); 0: read every profile's ids from Cassandra.
    newest_ids_accounts: int = Field(default=50_000, ge=0)
    # How long a ranking of trending hashtags (kicau/tag_trends.py) is served before it is ranked again; each
    # ranking reads ~400 hashtags' seven-day histories in one Redis round trip.
    trend_rank_seconds: float = Field(default=15.0, ge=0)
    # Whether what staff have not reviewed trends (kicau/trend_reviews.py): false is Mastodon's default, where
    # nothing trends until staff approve it.
    trendable_by_default: bool = True

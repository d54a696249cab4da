"""Settings only the post service reads (``KICAU_POST_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from kicau.settings import InternalListener
from kicau.write_groups import MAX_GROUP


class PostSettings(InternalListener):
    model_config = SettingsConfigDict(env_prefix="KICAU_POST_", extra="ignore")

    port: int = 8081
    # A publish that has not been acknowledged by then is failed (503) and its status rolled back.
    publish_timeout_seconds: float = Field(default=5.0, gt=0)
    # Concurrent posts' writes leave for Cassandra together, one batch per statement (kicau/write_groups.py):
    # at most this many writes a batch (1: every write alone) and this many batches of a statement in flight.
    write_group_max: int = Field(default=MAX_GROUP, ge=1, le=100)
    write_groups_in_flight: int = Field(default=1, ge=1, le=64)
    # Scheduled statuses (services/post/scheduled.py): how far ahead one must be (Mastodon: five minutes), and how
    # often the due runners (scheduled statuses, polls' ends, uploads' expiries) look for what is due.
    scheduled_min_lead_seconds: float = Field(default=300.0, ge=0)
    scheduled_poll_seconds: float = Field(default=1.0, gt=0)
    # Uploads no status took are removed after this long (services/post/media.py; Mastodon: a day).
    unattached_media_seconds: float = Field(default=86_400.0, gt=0)
    # Link previews (services/post/link_previews.py): fetched at all; how long a page (and then its picture) may
    # take and how much of it is read (its head is all a card needs); how many pages are fetched at once.
    link_previews: bool = True
    link_preview_timeout_seconds: float = Field(default=5.0, gt=0)
    link_preview_max_bytes: int = Field(default=512 * 1024, ge=4096)
    # A page's picture, kept as this server's own copy for its card: at most this big (a larger one: no picture).
    link_preview_picture_max_bytes: int = Field(default=4 * 1024 * 1024, ge=4096, le=16 * 1024 * 1024)
    link_preview_concurrency: int = Field(default=8, ge=1, le=256)
    # Tracked copies of per-account values read on every post (its author's posting defaults): at most this many
    # (each ~100 bytes); 0: read them from Redis each time.
    local_cache_entries: int = Field(default=10_000, ge=0)

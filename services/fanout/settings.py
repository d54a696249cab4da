"""Settings only the fanout reads (``KICAU_FANOUT_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FanoutSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KICAU_FANOUT_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8083
    group_id: str = "kicau-fanout"
    max_batch: int = Field(default=500, ge=1, le=10_000)
    # Timeline writes (plus other commands) per round trip: large enough to amortise round trips, small
    # enough to bound the bytes buffered and to let the fanout pack the next run while Redis applies this one.
    pipeline_chunk: int = Field(default=20_000, ge=100)
    # Follower ids kept in memory for authors who post (kicau/follower_lists.py), 8 bytes each; 0 turns the
    # copies off (every batch reads its authors' followers from Cassandra).
    follower_cache_ids: int = Field(default=4_000_000, ge=0)
    # Applied offsets are committed at most this often (and whenever the fanout falls idle, stops or hands
    # partitions over). Each commit is a write to Kafka's offsets log: committing after every batch cost Kafka
    # ~40% of its CPU per post at ~300 posts/s. A crash replays at most this much more, which changes nothing
    # in timelines (writes are idempotent); 0 commits after every batch.
    commit_interval_seconds: float = Field(default=0.5, ge=0.0, le=60.0)
    # Under a stream of statuses faster than ``linger_above_per_second``, a batch is taken no sooner than
    # ``linger_seconds`` after the one before (services/fanout/worker.py, ``BatchPacer``): each batch costs
    # ~2.3 ms of the fanout's CPU whatever its size, and at 500 statuses/s batches held ~5.5 events. Slower
    # streams are taken as they come, so a status after a quiet spell waits for nothing, and so is a backlog
    # (full batches). 0 turns it off.
    linger_seconds: float = Field(default=0.05, ge=0.0, le=1.0)
    linger_above_per_second: float = Field(default=100.0, gt=0.0)

"""Settings only the push service reads (``KICAU_PUSH_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PushSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KICAU_PUSH_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8085
    group_id: str = "kicau-push"
    max_batch: int = Field(default=200, ge=1, le=10_000)
    # Pushes in flight at once: each waits on a remote push service (tens to hundreds of milliseconds).
    concurrency: int = Field(default=64, ge=1, le=1024)
    # One push's whole exchange with an endpoint; a slower one counts as failed and is retried.
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Tries of a push an endpoint answered 429 or 5xx or did not answer (a growing pause between them).
    attempts: int = Field(default=3, ge=1, le=10)
    # Later rounds of a push that failed every attempt (services/push/later.py): how many (0: none), and how long
    # after the failure the first comes (each next one four times as long after the last).
    later_rounds: int = Field(default=5, ge=0, le=6)
    later_first_seconds: float = Field(default=60.0, gt=0, le=3600)
    # The VAPID subject push services may contact about this instance (RFC 8292: mailto: or https:); empty:
    # mailto:admin@<KICAU_INSTANCE_DOMAIN>.
    contact: str = ""

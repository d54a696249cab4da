"""Settings only the gateway reads (``KICAU_GATEWAY_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KICAU_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    # Requests bigger than this are refused with 413 before they are read in full.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    upstream_timeout_seconds: float = Field(default=10.0, gt=0)
    upstream_connections: int = Field(default=200, ge=1)
    # Streaming bounds.
    stream_queue_size: int = Field(default=256, ge=1)
    streams_per_account: int = Field(default=8, ge=1)
    heartbeat_seconds: float = Field(default=15.0, gt=0, le=15.0)
    instance_title: str = "Kicau"

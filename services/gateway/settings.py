"""Settings only the gateway reads (``KICAU_GATEWAY_*``)."""

from __future__ import annotations

from datetime import date, datetime
from ipaddress import ip_network

from pydantic import BaseModel, Field, IPvAnyNetwork
from pydantic_settings import BaseSettings, SettingsConfigDict


class TermsVersion(BaseModel):
    """One version of the server's terms of service: the day it takes effect and its text (plain text, paragraphs
    apart by blank lines)."""

    effective_date: date
    text: str = Field(min_length=1)


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
    # The same bound for streams written straight onto their transport (SSE): bytes waiting in its buffer.
    stream_buffer_bytes: int = Field(default=1024 * 1024, ge=4096)
    streams_per_account: int = Field(default=8, ge=1)
    heartbeat_seconds: float = Field(default=15.0, gt=0, le=15.0)
    instance_title: str = "Kicau"
    instance_description: str = "Kicau speaks the Mastodon client API."
    # The server's rules, in order (JSON list in the environment), as sign-up and report screens show them; and
    # its longer "about" text (plain text: paragraphs apart by blank lines).
    instance_rules: list[str] = Field(default_factory=list)
    instance_extended_description: str = ""
    # The privacy policy (plain text as above; empty: Kicau's own, which says what it keeps) and when it changed.
    instance_privacy_policy: str = ""
    instance_privacy_policy_updated_at: datetime | None = None
    # The terms of service, every version with the day it takes effect (a JSON list of {"effective_date", "text"});
    # none: the server has none (a 404, as Mastodon's).
    instance_terms_of_service: list[TermsVersion] = Field(default_factory=list)
    # How long one reading of the server's use (the instance's stats, kicau/instance_usage.py) is reported.
    instance_usage_seconds: float = Field(default=60.0, ge=0)
    # The home timeline, an account's statuses, posting and the SSE streams answered as hot routes
    # (kicau/hot_routes.py, ``add_hot_routes`` in app.py), without FastAPI's layers; off, they go through the
    # ordinary routes (same answers; about twice the gateway's CPU per home page, and for a stream ~60% more memory).
    hot_routes: bool = True
    # Request rate limits (ratelimit.py), fixed windows counted in Redis. Mastodon's documented defaults:
    # 300 requests per 5 minutes per account (authenticated) and per IP (unauthenticated); load tests that
    # drive one account harder raise KICAU_GATEWAY_RATE_LIMIT_ACCOUNT_REQUESTS (see README.md).
    rate_limit_enabled: bool = True
    # Attachments' files kept in memory (services/gateway/media_files.py): at most this many bytes in all, files of
    # at most media_cache_file_bytes each, for media_cache_seconds; 0 bytes: none kept.
    media_cache_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    media_cache_file_bytes: int = Field(default=512 * 1024, ge=0)
    media_cache_seconds: float = Field(default=300.0, gt=0)
    # Tokens whose cache entry this process keeps a copy of (kicau/tracked_cache.py; ~150 bytes each); 0: none.
    token_copies: int = Field(default=100_000, ge=0)
    rate_limit_window_seconds: int = Field(default=300, ge=1)
    rate_limit_account_requests: int = Field(default=300, ge=1)
    rate_limit_ip_requests: int = Field(default=300, ge=1)
    # Stricter per-IP buckets: password logins (POST /oauth/token) and sign-ups (POST /api/v1/accounts).
    rate_limit_login_requests: int = Field(default=25, ge=1)
    rate_limit_login_window_seconds: int = Field(default=300, ge=1)
    rate_limit_registration_requests: int = Field(default=5, ge=1)
    rate_limit_registration_window_seconds: int = Field(default=1800, ge=1)
    # Peers that skip the per-IP buckets (per-account limits still apply): the host's own tests, load
    # generators and probes, as Mastodon safelists localhost. JSON list in the environment.
    rate_limit_exempt_networks: list[IPvAnyNetwork] = Field(
        default_factory=lambda: [ip_network("127.0.0.0/8"), ip_network("::1/128")]
    )
    # Reverse proxies whose X-Forwarded-For names the client; without them every client would share the
    # proxy's address (and, for a proxy on loopback, its exemption).
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)

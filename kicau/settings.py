"""Settings shared by every service: where the engines are and how to reach the other services.

Each service subclasses :class:`CommonSettings` with its own environment prefix for what only it uses; the
engine endpoints are read from ``KICAU_*`` everywhere so one environment configures the whole system.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class InternalListener(BaseSettings):
    """Where an internal service listens, read under the service's own prefix: HTTP on TCP always, HTTP on a Unix
    socket too when ``socket`` is a path, and internal calls as frames (kicau/internal_rpc.py) when
    ``call_socket`` is one (the stack sets it: the gateway on the same host calls the service there)."""

    host: str = "127.0.0.1"
    port: int
    socket: str = ""
    call_socket: str = ""


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KICAU_", extra="ignore")

    environment: str = "development"
    public_url: str = "http://127.0.0.1:8080"
    instance_domain: str = "kicau.local"
    # The longest status text (characters, as Mastodon counts them): the post service refuses longer ones and the
    # gateway's instance documents announce it to clients, so both read this one setting.
    max_characters: int = Field(default=500, ge=1, le=100_000)
    # Who may register (Mastodon's registrations mode): ``open`` to anyone, ``approved`` held until staff approve
    # each sign-up (kicau/sign_ups.py), ``none`` nobody. The graph service applies it and the gateway's instance
    # documents announce it, so both read this one setting.
    registrations_mode: Literal["open", "approved", "none"] = "open"
    # Mastodon's "require a reason to join": in the ``approved`` mode, a sign-up without a ``reason`` is a 422 (the
    # graph service refuses it, the instance document announces ``reason_required``).
    sign_up_reason_required: bool = False

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_statuses_topic: str = "kicau.statuses"
    kafka_follows_topic: str = "kicau.follows"
    # The fanout's accepted notifications, for the push service (kicau/web_push.py).
    kafka_notices_topic: str = "kicau.notices"
    # Web push endpoints over plain http and on private addresses (kicau/web_push.py, ``endpoint_problem``):
    # only for a development stack and tests, whose receivers listen on 127.0.0.1. Off, a user could aim the
    # instance's push requests at its own network.
    push_allow_insecure_endpoints: bool = False
    # Link previews (services/post/link_previews.py) of pages on private addresses (kicau/outbound.py): the same,
    # for a development stack and tests whose pages are served on 127.0.0.1.
    link_previews_allow_private_hosts: bool = False

    redis_url: str = "redis://127.0.0.1:6379/0"

    cassandra_hosts: str = "127.0.0.1"
    cassandra_port: int = 9042
    cassandra_keyspace: str = "kicau"
    # The data centre whose nodes coordinate requests; empty: the driver takes the first contact point's.
    cassandra_local_dc: str = ""
    # PasswordAuthenticator credentials (K8ssandra turns it on by default); both or neither.
    cassandra_username: str = ""
    cassandra_password: SecretStr = SecretStr("")
    # Consistency levels are configuration so a ring can run QUORUM while the local node runs ONE.
    cassandra_read_consistency: str = "LOCAL_ONE"
    cassandra_write_consistency: str = "LOCAL_ONE"

    # Internal services, as http://host:port or, on the same host, unix:///path/to/their/socket.
    graph_url: str = "http://127.0.0.1:8084"
    post_url: str = "http://127.0.0.1:8081"
    timeline_url: str = "http://127.0.0.1:8082"

    # Home timelines keep this many newest entries (Mastodon and Twitter both keep 800).
    home_timeline_cap: int = Field(default=800, ge=20, le=5000)
    # Deletions and edits are kept this long (kicau/retractions.py) for streams that resume, or whose gateway lost
    # its channel, to be told of those they missed; a stream away longer reloads its timeline instead.
    retraction_log_hours: int = Field(default=48, ge=1, le=24 * 30)
    # How many of a followee's statuses a new follow merges into the follower's home timeline.
    follow_backfill: int = Field(default=800, ge=0, le=5000)
    # Accounts with at least this many followers are not fanned out on write: their statuses are merged into
    # followers' home timelines at read time, so posting costs the same whatever the audience.
    large_account_threshold: int = Field(default=10_000, ge=1)
    # ...and stop being large only below threshold x ratio, so an account at the boundary does not flap.
    large_account_exit_ratio: float = Field(default=0.9, gt=0, le=1)
    # Home timelines not read for this many days expire; the fanout skips them and the next read rebuilds
    # the timeline from Cassandra (Twitter kept timelines for users active in the last 30 days).
    inactive_days: float = Field(default=30, gt=0)

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> CommonSettings:
        if self.environment == "production" and self.public_url.startswith("http://127."):
            raise ValueError("KICAU_PUBLIC_URL must be set to the public address in production")
        if self.environment == "production" and self.push_allow_insecure_endpoints:
            raise ValueError("KICAU_PUSH_ALLOW_INSECURE_ENDPOINTS is for development: refused in production")
        if self.environment == "production" and self.link_previews_allow_private_hosts:
            raise ValueError("KICAU_LINK_PREVIEWS_ALLOW_PRIVATE_HOSTS is for development: refused in production")
        if bool(self.cassandra_username) != bool(self.cassandra_password.get_secret_value()):
            raise ValueError("set both KICAU_CASSANDRA_USERNAME and KICAU_CASSANDRA_PASSWORD, or neither")
        return self

    @property
    def reason_required(self) -> bool:
        """Whether a sign-up must say why it wants in: asked for, and only in the ``approved`` mode (a sign-up an
        IP or e-mail domain block holds was never told to), as Mastodon's ``require_invite_text``."""
        return self.sign_up_reason_required and self.registrations_mode == "approved"

    @property
    def cassandra_host_list(self) -> list[str]:
        return [h.strip() for h in self.cassandra_hosts.split(",") if h.strip()]

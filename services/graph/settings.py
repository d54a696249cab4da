"""Settings only the graph service reads (``KICAU_GRAPH_*``); engine endpoints come from CommonSettings."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from kicau.settings import InternalListener


class GraphSettings(InternalListener):
    model_config = SettingsConfigDict(env_prefix="KICAU_GRAPH_", extra="ignore")

    port: int = 8084
    # RFC 9106's second recommended profile (64 MiB, t=3, p=4) by default; lower only for load-test rigs.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=8192)
    argon2_parallelism: int = Field(default=4, ge=1)
    argon2_concurrency: int = Field(default=2, ge=1)

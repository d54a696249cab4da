"""Dependency aliases the routes use: the upstream services and the gateway's settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from kicau.ids import parse_id
from kicau.settings import CommonSettings
from kicau.web import ApiError
from services.gateway.settings import GatewaySettings
from services.gateway.upstreams import Caller


@dataclass
class Upstreams:
    graph: Caller
    post: Caller
    timeline: Caller


# Dependencies are coroutines even though they only read app.state: FastAPI runs a plain ``def`` dependency in
# its thread pool, a thread hand-off per dependency per request (about 5% of the gateway's time under load).
async def _upstreams(request: Request) -> Upstreams:
    upstreams: Upstreams = request.app.state.upstreams
    return upstreams


async def _settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


async def _common(request: Request) -> CommonSettings:
    common: CommonSettings = request.app.state.common
    return common


Services = Annotated[Upstreams, Depends(_upstreams)]
Settings = Annotated[GatewaySettings, Depends(_settings)]
Common = Annotated[CommonSettings, Depends(_common)]


def record_id(value: str) -> int:
    """A path id; anything that is not a valid snowflake is simply a record that does not exist."""
    parsed = parse_id(value)
    if parsed is None:
        raise ApiError(404, "Record not found")
    return parsed


def listed_ids(request: Request, most: int) -> list[int]:
    """The ids of an ``id[]`` query (``id`` too), each once, in the order given; what is not an id is skipped (no
    record has it). More than ``most`` is Mastodon's 422."""
    raw = request.query_params.getlist("id[]") + request.query_params.getlist("id")
    ids = list(dict.fromkeys(i for i in map(parse_id, raw) if i is not None))
    if len(ids) > most:
        raise ApiError(422, f"Validation failed: at most {most} ids at once")
    return ids


def cursor(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    parsed = parse_id(value)
    if parsed is None:
        raise ApiError(400, f"{name} must be a status id")
    return parsed


def page_limit(value: str | None, default: int, maximum: int) -> int:
    if value is None or value == "":
        return default
    try:
        limit = int(value)
    except ValueError as exc:
        raise ApiError(400, "limit must be an integer") from exc
    return max(1, min(limit, maximum))

"""OAuth: registering apps, issuing and revoking tokens, registering accounts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.gateway.auth import AnyToken
from services.gateway.deps import Services, Settings
from services.gateway.params import read_params
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["oauth"])


def _strings(params: dict[str, Any]) -> dict[str, Any]:
    """Lists sent as ``x[]`` collapse to space-separated strings where OAuth expects a string."""
    return {k: " ".join(map(str, v)) if isinstance(v, list) and k in ("scopes", "redirect_uris", "scope") else v
            for k, v in params.items()}


@router.post("/api/v1/apps")
async def create_app(request: Request, services: Services, settings: Settings) -> Response:
    params = _strings(await read_params(request, settings.max_body_bytes))
    return passthrough(await services.graph.call("POST", "/internal/apps", json=params))


@router.post("/oauth/token")
async def token(request: Request, services: Services, settings: Settings) -> Response:
    params = _strings(await read_params(request, settings.max_body_bytes))
    return passthrough(await services.graph.call("POST", "/internal/oauth/token", json=params))


@router.post("/oauth/revoke")
async def revoke(request: Request, services: Services, settings: Settings) -> Response:
    params = await read_params(request, settings.max_body_bytes)
    return passthrough(await services.graph.call("POST", "/internal/oauth/revoke", json=params))


@router.post("/api/v1/accounts")
async def register(request: Request, token: AnyToken, services: Services, settings: Settings) -> Response:
    params = await read_params(request, settings.max_body_bytes)
    return passthrough(await services.graph.call("POST", "/internal/accounts", json=params, token=token))

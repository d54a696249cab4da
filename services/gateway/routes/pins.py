"""Pinned statuses (kicau/pins.py): pinning and unpinning one of the user's own statuses (the post service). The
pinned statuses themselves are a profile read: ``GET /api/v1/accounts/:id/statuses?pinned=true``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import Response

from kicau.tokens import TokenInfo
from services.gateway import openapi as doc
from services.gateway.auth import require
from services.gateway.deps import Services, record_id
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["pins"])

# As Mastodon: a pin changes what the account's profile shows.
AccountsWriter = Annotated[TokenInfo, require("write:accounts")]


@router.post("/api/v1/statuses/{status_id}/pin", openapi_extra=doc.BEARER,
             responses={**doc.ok(doc.Status), **doc.errors(401, 403, 404, 422)})
async def pin(status_id: str, token: AccountsWriter, services: Services) -> Response:
    """Pin one of the user's own statuses to its profile (not a boost, not a direct one, at most five; again:
    nothing changes); the status as the user now sees it, ``pinned`` true."""
    return passthrough(await services.post.call("POST", f"/internal/statuses/{record_id(status_id)}/pin",
                                                token=token))


@router.post("/api/v1/statuses/{status_id}/unpin", openapi_extra=doc.BEARER,
             responses={**doc.ok(doc.Status), **doc.errors(401, 403, 404)})
async def unpin(status_id: str, token: AccountsWriter, services: Services) -> Response:
    """Unpin a status (not pinned: nothing changes); the status as the user now sees it."""
    return passthrough(await services.post.call("POST", f"/internal/statuses/{record_id(status_id)}/unpin",
                                                token=token))

"""Announcements (kicau/announcements.py): the operator's, as each account reads them, dismisses them and reacts to
them, through the graph service."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.tokens import TokenInfo
from kicau.web import FALSE_WORDS, TRUE_WORDS, ApiError
from services.gateway import openapi as doc
from services.gateway.auth import require
from services.gateway.deps import Services, record_id
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["announcements"])

Reader = Annotated[TokenInfo, require("read")]
Dismisser = Annotated[TokenInfo, require("write:accounts")]
Reactor = Annotated[TokenInfo, require("write:favourites")]
WITH_DISMISSED = {"parameters": [doc.query("with_dismissed", {"type": "string",
                                                             "enum": ["", *TRUE_WORDS, *FALSE_WORDS]},
                                           "Also those the user dismissed (blank: no)")]}


@router.get("/api/v1/announcements", openapi_extra={**WITH_DISMISSED, **doc.BEARER},
            responses={**doc.ok(list[doc.Announcement]), **doc.errors(400, 401, 403)})
async def announcements(request: Request, token: Reader, services: Services) -> Response:
    """The operator's announcements shown now, oldest first, each with the user's ``read`` and reactions."""
    flag = request.query_params.get("with_dismissed", "").lower()
    if flag and flag not in TRUE_WORDS and flag not in FALSE_WORDS:
        raise ApiError(400, "with_dismissed must be true or false")
    return passthrough(await services.graph.call("GET", "/internal/announcements", token=token,
                                                 params={"with_dismissed": str(flag in TRUE_WORDS).lower()}))


@router.post("/api/v1/announcements/{announcement_id}/dismiss", openapi_extra=doc.BEARER,
             responses={**doc.ok(dict), **doc.errors(401, 403, 404)})
async def dismiss(announcement_id: str, token: Dismisser, services: Services) -> Response:
    """Mark an announcement read for the user."""
    return passthrough(await services.graph.call(
        "POST", f"/internal/announcements/{record_id(announcement_id)}/dismiss", token=token))


def _reaction_path(announcement_id: str, name: str) -> str:
    return f"/internal/announcements/{record_id(announcement_id)}/reactions/{quote(name, safe='')}"


@router.put("/api/v1/announcements/{announcement_id}/reactions/{name}", openapi_extra=doc.BEARER,
            responses={**doc.ok(dict), **doc.errors(401, 403, 404, 422)})
async def react(announcement_id: str, name: str, token: Reactor, services: Services) -> Response:
    """React to an announcement with an emoji (again: nothing changes); at most 8 different ones an announcement."""
    return passthrough(await services.graph.call("PUT", _reaction_path(announcement_id, name), token=token))


@router.delete("/api/v1/announcements/{announcement_id}/reactions/{name}", openapi_extra=doc.BEARER,
               responses={**doc.ok(dict), **doc.errors(401, 403, 404)})
async def take_back(announcement_id: str, name: str, token: Reactor, services: Services) -> Response:
    """Take the user's reaction back (none: nothing changes)."""
    return passthrough(await services.graph.call("DELETE", _reaction_path(announcement_id, name), token=token))

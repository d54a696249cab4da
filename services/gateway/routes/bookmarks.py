"""Bookmarks (kicau/bookmarks.py): bookmarking and unbookmarking a status (the post service), and the statuses an
account bookmarks (the timeline service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.tokens import TokenInfo
from services.gateway import openapi as doc
from services.gateway.auth import require
from services.gateway.deps import Common, Services, record_id
from services.gateway.routes.favourites import PAGE, marked_list
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["bookmarks"])

BookmarksReader = Annotated[TokenInfo, require("read:bookmarks")]
BookmarksWriter = Annotated[TokenInfo, require("write:bookmarks")]


@router.post("/api/v1/statuses/{status_id}/bookmark", openapi_extra=doc.BEARER,
             responses={**doc.ok(doc.Status), **doc.errors(401, 403, 404)})
async def bookmark(status_id: str, token: BookmarksWriter, services: Services) -> Response:
    """Bookmark a status the user may see (again: nothing changes); the status as the user now sees it."""
    return passthrough(await services.post.call("POST", f"/internal/statuses/{record_id(status_id)}/bookmark",
                                                token=token))


@router.post("/api/v1/statuses/{status_id}/unbookmark", openapi_extra=doc.BEARER,
             responses={**doc.ok(doc.Status), **doc.errors(401, 403, 404)})
async def unbookmark(status_id: str, token: BookmarksWriter, services: Services) -> Response:
    """Give a bookmark back (none: nothing changes); the status as the user now sees it."""
    return passthrough(await services.post.call("POST", f"/internal/statuses/{record_id(status_id)}/unbookmark",
                                                token=token))


@router.get("/api/v1/bookmarks", openapi_extra={**PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.Status]), **doc.errors(400, 401, 403)})
async def bookmarks(request: Request, token: BookmarksReader, services: Services, common: Common) -> Response:
    """The statuses the user bookmarks, most recently bookmarked first (20 a page by default, at most 40); the
    cursors are bookmark ids, as the Link header gives them."""
    return await marked_list(request, common, services, token, "/internal/bookmarks", 20, 40)

"""Favourites (kicau/favourites.py): favouriting and unfavouriting a status (the post service), the statuses an
account favourites and the accounts that favourite a status (the timeline service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.tokens import TokenInfo
from services.gateway import openapi as doc
from services.gateway.auth import OptionalToken, require
from services.gateway.deps import Common, Services, cursor, page_limit, record_id
from services.gateway.pagination import link_header
from services.gateway.upstreams import Caller, UpstreamResponse, passthrough, raise_for_error

router = APIRouter(tags=["favourites"])

FavouritesReader = Annotated[TokenInfo, require("read:favourites")]
FavouritesWriter = Annotated[TokenInfo, require("write:favourites")]
PAGE = {"parameters": doc.page_parameters("max_id", "since_id", "min_id")}


def marked_page(request: Request, default: int, most: int) -> dict[str, int]:
    """The upstream parameters of a list paged by mark ids (favourites, bookmarks: kicau/marked_lists.py)."""
    query = request.query_params
    params = {"limit": page_limit(query.get("limit"), default, most)}
    for name in ("max_id", "since_id", "min_id"):
        value = cursor(query.get(name), name)
        if value is not None:
            params[name] = value
    return params


async def marked_list(request: Request, common: Common, services: Services, token: TokenInfo, path: str,
                      default: int, most: int, upstream: Caller | None = None) -> Response:
    """A list paged by mark ids (``marked_page``), read at ``path`` from ``upstream`` (the timeline service unless
    given), with its Link header."""
    caller = upstream if upstream is not None else services.timeline
    answer = await caller.call("GET", path, params=marked_page(request, default, most), token=token)
    return paged(request, common, answer)


def paged(request: Request, common: Common, answer: UpstreamResponse) -> Response:
    """The upstream page, with Mastodon's Link header built from its cursors."""
    raise_for_error(answer)
    link = link_header(request, common.public_url, answer.headers.get("x-kicau-next"),
                       answer.headers.get("x-kicau-prev"))
    return passthrough(answer, {"Link": link} if link else None)


@router.post("/api/v1/statuses/{status_id}/favourite", openapi_extra=doc.BEARER,
             responses={**doc.ok(doc.Status), **doc.errors(401, 403, 404)})
async def favourite(status_id: str, token: FavouritesWriter, services: Services) -> Response:
    """Favourite a status the user may see (again: nothing changes); the status as the user now sees it."""
    return passthrough(await services.post.call("POST", f"/internal/statuses/{record_id(status_id)}/favourite",
                                                token=token))


@router.post("/api/v1/statuses/{status_id}/unfavourite", openapi_extra=doc.BEARER,
             responses={**doc.ok(doc.Status), **doc.errors(401, 403, 404)})
async def unfavourite(status_id: str, token: FavouritesWriter, services: Services) -> Response:
    """Give a favourite back (none: nothing changes); the status as the user now sees it."""
    return passthrough(await services.post.call("POST", f"/internal/statuses/{record_id(status_id)}/unfavourite",
                                                token=token))


@router.get("/api/v1/statuses/{status_id}/favourited_by", openapi_extra={**PAGE, **doc.OPTIONAL_BEARER},
            responses={**doc.ok(list[doc.Account]), **doc.errors(400, 401, 404)})
async def favourited_by(status_id: str, request: Request, services: Services, common: Common,
                        token: OptionalToken) -> Response:
    """The accounts that favourite a status, most recent first (40 a page by default, at most 80); the cursors
    are favourite ids, as the Link header gives them."""
    answer = await services.timeline.call("GET", f"/internal/statuses/{record_id(status_id)}/favourited_by",
                                          params=marked_page(request, 40, 80), token=token)
    return paged(request, common, answer)


@router.get("/api/v1/favourites", openapi_extra={**PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.Status]), **doc.errors(400, 401, 403)})
async def favourites(request: Request, token: FavouritesReader, services: Services, common: Common) -> Response:
    """The statuses the user favourites, most recently favourited first (20 a page by default, at most 40)."""
    return await marked_list(request, common, services, token, "/internal/favourites", 20, 40)

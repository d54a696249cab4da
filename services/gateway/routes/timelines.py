"""Timelines: the reader's home timeline, the public and hashtag timelines and an account's statuses, with Mastodon
pagination."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.types import Receive, Scope

from kicau.hot_routes import Answer, query_items
from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.gateway import openapi as doc
from services.gateway.auth import OptionalToken, require, token_of
from services.gateway.deps import Common, Services, cursor, page_limit, record_id
from services.gateway.hot import counted, counted_and_authorised
from services.gateway.pagination import link_header, page_links
from services.gateway.upstreams import passthrough, raise_for_error

router = APIRouter(tags=["timelines"])
HomeReader = Annotated[TokenInfo, require("read:statuses")]


def status_page_params(query: Mapping[str, str]) -> dict[str, int]:
    params = {"limit": page_limit(query.get("limit"), 20, 40)}
    for name in ("max_id", "since_id", "min_id"):
        value = cursor(query.get(name), name)
        if value is not None:
            params[name] = value
    return params


PAGE = {"parameters": doc.page_parameters("max_id", "since_id", "min_id")}

# Mastodon's profile parameters. Kicau has no media: asking for it gives an empty page.
PROFILE_FLAGS = ("exclude_replies", "exclude_reblogs", "pinned", "only_media")
_ANY: dict[str, str] = {"type": "string"}  # read as booleans (or a tag) and never stored: any value is taken
PROFILE_PAGE = {"parameters": [
    *PAGE["parameters"],
    doc.query("exclude_replies", _ANY, "Leave out replies to other accounts (a boolean)"),
    doc.query("exclude_reblogs", _ANY, "Leave out reblogs (a boolean)"),
    doc.query("pinned", _ANY, "Pinned statuses only, most recently pinned first (a boolean)"),
    doc.query("only_media", _ANY, "Statuses with attachments only (a boolean)"),
    doc.query("tagged", _ANY, "Statuses with this hashtag only (with or without #, in any case)"),
]}
# Rails' false values, which Mastodon's boolean parameters follow: any other value is true.
_FALSE = frozenset({"", "0", "f", "false", "off"})


# Mastodon's public timeline parameters. Every status here is local: ``remote`` gets an empty page, ``local`` changes
# nothing; ``only_media`` keeps the statuses with attachments.
PUBLIC_FLAGS = ("local", "remote", "only_media")
PUBLIC_PAGE = {"parameters": [
    *PAGE["parameters"],
    doc.query("local", _ANY, "Local statuses only (a boolean; every status here is local)"),
    doc.query("remote", _ANY, "Remote statuses only (a boolean; Kicau has none)"),
    doc.query("only_media", _ANY, "Statuses with attachments only (a boolean)"),
]}


def _flags(query: Mapping[str, str], names: tuple[str, ...]) -> dict[str, int]:
    """The boolean parameters among ``names`` that are set, as ``1`` for the timeline service."""
    return {name: 1 for name in names if (query.get(name) or "").strip().lower() not in _FALSE}


def _public_params(query: Mapping[str, str]) -> dict[str, int]:
    flags = _flags(query, PUBLIC_FLAGS)
    flags.pop("local", None)
    return flags


def _profile_params(query: Mapping[str, str]) -> dict[str, int | str]:
    """The profile parameters set: the booleans as ``1`` for the timeline service, ``tagged`` as given (the
    timeline service reads it as a hashtag, kicau/hashtags.py)."""
    params: dict[str, int | str] = {**_flags(query, PROFILE_FLAGS)}
    tagged = (query.get("tagged") or "").strip()
    if tagged:
        params["tagged"] = tagged
    return params


@router.get("/api/v1/timelines/home", openapi_extra={**PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.Status]), **doc.errors(400, 401, 403, 422)})
async def home(request: Request, token: HomeReader, services: Services, common: Common) -> Response:
    """The home timeline through the framework: documented here, and answered here when the gateway runs
    without hot routes (``KICAU_GATEWAY_HOT_ROUTES=false``); otherwise ``home_page`` answers it."""
    answer = await services.timeline.call("GET", "/internal/timelines/home",
                                          params=status_page_params(request.query_params), token=token)
    raise_for_error(answer)
    link = link_header(request, common.public_url, answer.headers.get("x-kicau-next"),
                       answer.headers.get("x-kicau-prev"))
    return passthrough(answer, {"Link": link} if link else None)


@router.get("/api/v1/timelines/public", openapi_extra={**PUBLIC_PAGE, **doc.OPTIONAL_BEARER},
            responses={**doc.ok(list[doc.Status]), **doc.errors(400, 401)})
async def public_timeline(request: Request, services: Services, common: Common, token: OptionalToken) -> Response:
    """Every public status on this server, newest first (kicau/public_timeline.py). Anyone may read it, as on
    a Mastodon server that has not restricted it."""
    query = request.query_params
    answer = await services.timeline.call("GET", "/internal/timelines/public",
                                          params={**status_page_params(query), **_public_params(query)}, token=token)
    raise_for_error(answer)
    link = link_header(request, common.public_url, answer.headers.get("x-kicau-next"),
                       answer.headers.get("x-kicau-prev"))
    return passthrough(answer, {"Link": link} if link else None)


TAG_MODES = ("any", "all", "none")
TAG_PAGE = {"parameters": [
    *PUBLIC_PAGE["parameters"],
    *(doc.query(f"{mode}[]", {"type": "array", "items": {"type": "string"}},
                f"Statuses with {mode} of these hashtags too (at most 4 are read)") for mode in TAG_MODES),
]}


@router.get("/api/v1/timelines/tag/{hashtag}", openapi_extra={**TAG_PAGE, **doc.OPTIONAL_BEARER},
            responses={**doc.ok(list[doc.Status]), **doc.errors(400, 401)})
async def tag_timeline(hashtag: str, request: Request, services: Services, common: Common,
                       token: OptionalToken) -> Response:
    """The public statuses carrying a hashtag, newest first (kicau/tag_timeline.py). Anyone may read it, as the
    public timeline. A name that is no hashtag's has an empty timeline, as on Mastodon."""
    query = request.query_params
    # Rails reads ``any[]=a&any[]=b``; a client that leaves the brackets out is read the same.
    modes = [(mode, value) for mode in TAG_MODES for value in (*query.getlist(f"{mode}[]"), *query.getlist(mode))]
    answer = await services.timeline.call(
        "GET", f"/internal/timelines/tag/{quote(hashtag, safe='')}",
        params=[*status_page_params(query).items(), *_public_params(query).items(), *modes], token=token,
    )
    raise_for_error(answer)
    link = link_header(request, common.public_url, answer.headers.get("x-kicau-next"),
                       answer.headers.get("x-kicau-prev"))
    return passthrough(answer, {"Link": link} if link else None)


LINK_PAGE = {"parameters": [
    {**doc.query("url", {"type": "string", "minLength": 1, "maxLength": 2000}, "The page's address"),
     "required": True},
    *PAGE["parameters"],
]}


@router.get("/api/v1/timelines/link", openapi_extra={**LINK_PAGE, **doc.OPTIONAL_BEARER},
            responses={**doc.ok(list[doc.Status]), **doc.errors(400, 401, 404)})
async def link_timeline(request: Request, services: Services, common: Common, token: OptionalToken) -> Response:
    """The public statuses that share a page (Mastodon 4.3's, behind a trending link), newest first: the statuses
    that show its preview card (kicau/linked_statuses.py). 404 for a page no public status shared; 400 without
    ``url``."""
    query = request.query_params
    url = query.get("url", "")
    if not url or len(url) > 2000:
        raise ApiError(400, "Missing or invalid parameter: url")
    answer = await services.timeline.call("GET", "/internal/timelines/link",
                                          params={"url": url, **status_page_params(query)}, token=token)
    raise_for_error(answer)
    link = link_header(request, common.public_url, answer.headers.get("x-kicau-next"),
                       answer.headers.get("x-kicau-prev"))
    return passthrough(answer, {"Link": link} if link else None)


@router.get("/api/v1/accounts/{account_id}/statuses", openapi_extra={**PROFILE_PAGE, **doc.OPTIONAL_BEARER},
            responses={**doc.ok(list[doc.Status]), **doc.errors(400, 401, 404)})
async def account_statuses(account_id: str, request: Request, services: Services, common: Common,
                           token: OptionalToken) -> Response:
    """An account's statuses through the framework: documented here, and answered here when the gateway runs
    without hot routes; otherwise ``account_statuses_page`` answers it. Anyone may read them; with a user's token
    the page also holds the followers-only statuses of an account the user follows (kicau/visibility.py)."""
    query = request.query_params
    answer = await services.timeline.call(
        "GET", f"/internal/accounts/{record_id(account_id)}/statuses",
        params={**status_page_params(query), **_profile_params(query)}, token=token,
    )
    raise_for_error(answer)
    link = link_header(request, common.public_url, answer.headers.get("x-kicau-next"),
                       answer.headers.get("x-kicau-prev"))
    return passthrough(answer, {"Link": link} if link else None)


READ = ("read:statuses",)  # or its parent, read (TokenInfo.allows), as HomeReader


async def _relayed_page(state: Any, scope: Scope, internal_path: str, token: TokenInfo | None = None,
                        profile: bool = False) -> Answer:
    """The timeline service's page at ``internal_path`` for the hot routes below, with its Link header
    (``profile``: with the profile parameters)."""
    items = query_items(scope)
    query = dict(items)
    params = {**status_page_params(query), **_profile_params(query)} if profile else status_page_params(query)
    answer = await state.upstreams.timeline.call("GET", internal_path, params=params, token=token)
    raise_for_error(answer)
    link = page_links(state.common.public_url, scope["path"], items, answer.headers.get("x-kicau-next"),
                      answer.headers.get("x-kicau-prev"))
    return Answer(answer.content, answer.status_code, [(b"link", link.encode("latin-1"))] if link else [],
                  answer.headers.get("content-type", "application/json").encode("latin-1"))


async def home_page(scope: Scope, _: Receive) -> Answer:
    """``GET /api/v1/timelines/home``, the request clients make most, as a hot route (kicau/hot_routes.py): the
    same rate limit, token check, page and Link header as the route above, without the framework's layers."""

    async def page(state: Any, token: TokenInfo) -> Answer:
        return await _relayed_page(state, scope, "/internal/timelines/home", token)

    return await counted_and_authorised(scope, READ, page)


async def account_statuses_page(scope: Scope, _: Receive) -> Answer:
    """``GET /api/v1/accounts/{account_id}/statuses`` as a hot route: a profile is the second read clients make
    most (30% of DeathStarBench's mix). Public, like the route above: counted by the rate limiter, a token
    optional (it says who reads)."""

    async def page(state: Any) -> Answer:
        account_id = record_id(scope["path_params"]["account_id"])
        token = await token_of(scope, state)
        return await _relayed_page(state, scope, f"/internal/accounts/{account_id}/statuses", token, profile=True)

    return await counted(scope, page)

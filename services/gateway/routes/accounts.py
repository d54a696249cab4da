"""Accounts: profiles, lookup, search, follows and relationships."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

import msgspec
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from kicau import media, posting_defaults
from kicau.account_notes import MAX_NOTE_LENGTH
from kicau.directory import ORDERS
from kicau.entities import PROFILE_FIELDS
from kicau.tag_trends import MAX_TRENDS
from kicau.tokens import TokenInfo
from kicau.web import FALSE_WORDS, NEXT_CURSOR_HEADER, NEXT_OFFSET_HEADER, TRUE_WORDS, ApiError
from services.gateway import openapi as doc
from services.gateway.auth import FollowUser, OptionalToken, require
from services.gateway.deps import Common, Services, Settings, Upstreams, cursor, listed_ids, page_limit, record_id
from services.gateway.pagination import link_header
from services.gateway.params import (
    indexed_objects,
    optional_flag,
    optional_str,
    read_params,
    read_params_and_files,
    reject_nul,
)
from services.gateway.routes.favourites import PAGE, marked_list
from services.gateway.routes.media import media_files
from services.gateway.settings import GatewaySettings
from services.gateway.upstreams import passthrough, raise_for_error

log = logging.getLogger(__name__)

router = APIRouter(tags=["accounts"])
# Mastodon's scopes for these: its own profile with read:accounts or, since 4.3, profile alone; relationships with
# read:follows (or the old follow). A parent scope (read) grants them too.
ProfileReader = Annotated[TokenInfo, require("read:accounts", "profile")]
RelationshipsReader = Annotated[TokenInfo, require("read:follows", "follow")]


@router.get("/api/v1/accounts/verify_credentials", openapi_extra=doc.BEARER,
            responses={**doc.ok(doc.Account), **doc.errors(401, 403, 422)})
async def verify_credentials(token: ProfileReader, services: Services) -> Response:
    return passthrough(await services.graph.call("GET", f"/internal/accounts/{token.account_id}/credentials"))


AccountsWriter = Annotated[TokenInfo, require("write:accounts")]
AccountsReader = Annotated[TokenInfo, require("read:accounts")]
FollowsReader = Annotated[TokenInfo, require("read:follows", "follow")]

# Profile fields Kicau has no place for: given with anything but the value every Kicau account has, they are a 422
# rather than taken and dropped (Mastodon's edit-profile screens send them all).
FIXED_FIELDS: dict[str, tuple[Any, ...]] = {
    "discoverable": (True, "true", "1", "t", "on", "yes", "y", 1),
}


@router.patch("/api/v1/accounts/update_credentials", openapi_extra={**doc.PROFILE_BODY, **doc.BEARER},
              responses={**doc.ok(doc.Account), **doc.errors(400, 401, 403, 413, 415, 422)})
async def update_credentials(request: Request, token: AccountsWriter, services: Services,
                             settings: Settings) -> Response:
    """Change the user's display name (30 characters), note (500), bot and locked flags (unlocking authorizes
    every follow request waiting), profile fields (``fields_attributes``: all of them at once, at most four) and
    pictures (``avatar``, ``header``: image files of 8 MB at most, cropped to 400 x 400 and 1500 x 500) and posting
    defaults (``source[privacy]``, ``source[sensitive]``, ``source[language]``, ``source[quote_policy]``,
    kicau/posting_defaults.py, checked by the graph service); the account as verify_credentials shows it."""
    given, pictures = await read_params_and_files(request, settings.max_body_bytes, media.MAX_PROFILE_PICTURE_BYTES,
                                                  tuple(media.PROFILE_PICTURES))
    source = given.get("source")
    if isinstance(source, dict):  # JSON nests what a form spells source[privacy]
        given.update({f"source[{key}]": value for key, value in source.items()})
    for name, allowed in FIXED_FIELDS.items():
        value = given.get(name)
        if value is not None and value not in allowed and not (isinstance(value, str) and value.lower() in allowed):
            raise ApiError(422, f"Validation failed: Kicau does not support changing {name}")
    for name, value in given.items():
        if name.split("[", 1)[0] in media.PROFILE_PICTURES and not _blank(value):
            raise ApiError(422, f"Validation failed: {name.split('[', 1)[0]} must be an image file")
    changes: dict[str, Any] = {name: given[name] for name in PROFILE_FIELDS
                               if name != "fields" and given.get(name) is not None}
    fields = _profile_fields(given)
    if fields is not None:
        changes["fields"] = fields
    defaults = {name: given[f"source[{name}]"] for name in posting_defaults.COLUMNS
                if given.get(f"source[{name}]") is not None}
    if defaults:
        changes["source"] = defaults
    # Each picture is kept first (the post service reads and crops it), then named with the other changes.
    named = await _pictures_named(services, token) if pictures else {}
    kept_now: list[str] = []
    try:
        for kind, data in pictures.items():
            kept = await services.post.call("POST", "/internal/profile_pictures", token=token,
                                            params={"kind": kind}, content=data,
                                            headers={"Content-Type": "application/octet-stream"})
            raise_for_error(kept)
            changes[kind] = msgspec.json.decode(kept.content)["path"]
            kept_now.append(changes[kind])
        answer = await services.graph.call("PATCH", f"/internal/accounts/{token.account_id}/profile", json=changes,
                                           token=token)
    except ApiError:
        await _remove_pictures(request, services, token, kept_now)  # refused: named by nothing
        raise
    if 400 <= answer.status_code < 500:
        await _remove_pictures(request, services, token, kept_now)
    elif answer.status_code < 300:
        replaced = [path for kind, path in named.items() if kind in pictures and changes[kind] != path]
        await _remove_pictures(request, services, token, replaced)
    return passthrough(answer)


async def _pictures_named(services: Upstreams, token: TokenInfo) -> dict[str, str]:
    """The paths of the profile pictures the account names now (its own files, not the default pictures)."""
    credentials = await services.graph.call("GET", f"/internal/accounts/{token.account_id}/credentials")
    raise_for_error(credentials)
    shown = msgspec.json.decode(credentials.content)
    return {kind: path for kind in media.PROFILE_PICTURES
            if media.is_picture_path(path := urlsplit(str(shown.get(kind) or "")).path)}


async def _remove_pictures(request: Request, services: Upstreams, token: TokenInfo, paths: list[str]) -> None:
    """Remove profile pictures no account names any more (replaced, or kept for a change refused), and this
    gateway's copies of their files: best effort, a failure is logged and the file stays."""
    for path in paths:
        try:
            removed = await services.post.call("DELETE", "/internal/profile_pictures", token=token,
                                               params={"path": path})
            if removed.status_code >= 300:
                log.warning("profile picture %s not removed: %s", path, removed.status_code)
            else:
                media_files(request).forget(path.rsplit("/", 1)[0] + "/")
        except Exception:
            log.warning("profile picture %s not removed", path, exc_info=True)


_BAD_FIELDS = "Validation failed: fields_attributes must be a list of name and value pairs"


def _profile_fields(given: dict[str, Any]) -> list[list[str]] | None:
    """``fields_attributes`` as [name, value] pairs in the order of their indexes, None when not given: a form
    spells them ``fields_attributes[0][name]``, JSON nests them as a list or as an object keyed by index
    (``params.indexed_objects``). The graph service drops blank pairs and checks the limits."""
    fields = indexed_objects(given, "fields_attributes", "name|value", _BAD_FIELDS)
    if fields is None:
        return None
    pairs = []
    for field in fields:
        if not isinstance(field, dict):
            raise ApiError(422, _BAD_FIELDS)
        name, value = field.get("name", ""), field.get("value", "")
        if not isinstance(name, str) or not isinstance(value, str):
            raise ApiError(422, "Validation failed: a profile field's name and value must be strings")
        pairs.append([name, value])
    return pairs


@router.delete("/api/v1/profile/avatar", openapi_extra=doc.BEARER,
               responses={**doc.ok(doc.Account), **doc.errors(401, 403)})
async def delete_avatar(request: Request, token: AccountsWriter, services: Services) -> Response:
    """The default avatar again; the account as verify_credentials shows it."""
    return await _default_picture(request, "avatar", token, services)


@router.delete("/api/v1/profile/header", openapi_extra=doc.BEARER,
               responses={**doc.ok(doc.Account), **doc.errors(401, 403)})
async def delete_header(request: Request, token: AccountsWriter, services: Services) -> Response:
    """The default header again; the account as verify_credentials shows it."""
    return await _default_picture(request, "header", token, services)


async def _default_picture(request: Request, kind: str, token: TokenInfo, services: Upstreams) -> Response:
    """The default picture named, then the account's own file it named removed."""
    named = await _pictures_named(services, token)
    answer = await services.graph.call("PATCH", f"/internal/accounts/{token.account_id}/profile", json={kind: ""},
                                       token=token)
    if answer.status_code < 300 and kind in named:
        await _remove_pictures(request, services, token, [named[kind]])
    return passthrough(answer)


def _blank(value: Any) -> bool:
    """Nothing given: an empty string, or a list or object of nothing but those (clients send empty fields)."""
    if isinstance(value, dict):
        return all(_blank(v) for v in value.values())
    if isinstance(value, list):
        return all(_blank(v) for v in value)
    return value is None or value == ""


@router.get("/api/v1/preferences", openapi_extra=doc.BEARER,
            responses={**doc.ok(dict[str, Any]), **doc.errors(401, 403)})
async def preferences(token: AccountsReader, services: Services) -> dict[str, Any]:
    """The user's posting defaults (kicau/posting_defaults.py; clients read them on start) and reading defaults
    (Mastodon's, the same for everyone: Kicau keeps none)."""
    credentials = await services.graph.call("GET", f"/internal/accounts/{token.account_id}/credentials")
    raise_for_error(credentials)
    return posting_defaults.preferences(msgspec.json.decode(credentials.content).get("source") or {})


FollowsWriter = Annotated[TokenInfo, require("write:follows", "follow")]
FOLLOW_REQUESTS = {"parameters": doc.page_parameters("max_id")}


@router.get("/api/v1/follow_requests", openapi_extra={**FOLLOW_REQUESTS, **doc.BEARER},
            responses={**doc.ok(list[doc.Account]), **doc.errors(400, 401, 403)})
async def follow_requests(request: Request, token: FollowsReader, services: Services, common: Common) -> Response:
    """The accounts asking to follow the user, locked (kicau/follow_requests.py), newest request first, with a
    Link header."""
    params: dict[str, object] = {"limit": page_limit(request.query_params.get("limit"), 40, 80)}
    max_id = cursor(request.query_params.get("max_id"), "max_id")
    if max_id is not None:
        params["max_id"] = max_id
    answer = await services.graph.call("GET", "/internal/follow_requests", params=params, token=token)
    raise_for_error(answer)
    link = link_header(request, common.public_url, answer.headers.get(NEXT_CURSOR_HEADER.lower()), None)
    return passthrough(answer, {"Link": link} if link else None)


@router.post("/api/v1/accounts/{account_id}/remove_from_followers", openapi_extra=doc.BEARER,
             responses={**doc.ok(doc.Relationship), **doc.errors(401, 403, 404, 413, 415)})
async def remove_from_followers(account_id: str, request: Request, token: FollowsWriter, services: Services,
                                settings: Settings) -> Response:
    """End the account's follow of the user; the Relationship with it (``followed_by`` false)."""
    return await _relationship_change(f"/internal/accounts/{record_id(account_id)}/remove_from_followers",
                                      request, token, services, settings)


async def _relationship_change(path: str, request: Request, token: TokenInfo, services: Services,
                               settings: GatewaySettings) -> Response:
    """A graph service call that changes a relationship and answers it (the body, if any, read and bounded)."""
    await read_params(request, settings.max_body_bytes)
    return passthrough(await services.graph.call("POST", path, token=token))


FOLLOW_REQUEST_DOC = {"openapi_extra": doc.BEARER,
                      "responses": {**doc.ok(doc.Relationship), **doc.errors(401, 403, 404, 413, 415)}}


@router.post("/api/v1/follow_requests/{account_id}/authorize", **FOLLOW_REQUEST_DOC)  # type: ignore[arg-type]
async def authorize_follow_request(account_id: str, request: Request, token: FollowsWriter, services: Services,
                                   settings: Settings) -> Response:
    """Let the account follow the user; the Relationship with it. 404 if it is not asking."""
    return await _relationship_change(f"/internal/follow_requests/{record_id(account_id)}/authorize", request,
                                      token, services, settings)


@router.post("/api/v1/follow_requests/{account_id}/reject", **FOLLOW_REQUEST_DOC)  # type: ignore[arg-type]
async def reject_follow_request(account_id: str, request: Request, token: FollowsWriter, services: Services,
                                settings: Settings) -> Response:
    """Refuse the account's request to follow the user; the Relationship with it. 404 if it is not asking."""
    return await _relationship_change(f"/internal/follow_requests/{record_id(account_id)}/reject", request,
                                      token, services, settings)


@router.get("/api/v1/accounts/lookup", responses={**doc.ok(doc.Account), **doc.errors(404)})
async def lookup(services: Services, acct: str = "") -> Response:
    if not acct or len(acct) > 300:
        raise ApiError(404, "Record not found")
    return passthrough(await services.graph.call("GET", "/internal/accounts/lookup", params={"acct": acct}))


RELATIONSHIP_IDS = {"parameters": [doc.query("id[]", {"type": "array", "items": {"type": "string"}},
                                              "Account ids (at most 40 are read; what is not an id is skipped)")]}


@router.get("/api/v1/accounts/relationships", openapi_extra={**RELATIONSHIP_IDS, **doc.BEARER},
            responses={**doc.ok(list[doc.Relationship]), **doc.errors(401, 403, 422)})
async def relationships(request: Request, token: RelationshipsReader, services: Services) -> Response:
    raw = request.query_params.getlist("id[]") + request.query_params.getlist("id")
    ids = [i for i in (record_id_or_none(v) for v in raw[:40]) if i is not None]
    answer = await services.graph.call(
        "GET", "/internal/accounts/relationships", params=[("id", i) for i in ids], token=token
    )
    return passthrough(answer)


# NUL is refused here (read_params, as in any body): the ids may come in a JSON body too.
FAMILIAR_IDS = {"parameters": [doc.query("id[]", {"type": "array", "items": {"type": "string", "pattern": doc.NO_NUL}},
                                          "Account ids (the first 10 are read; what is not an id is skipped)")]}


@router.get("/api/v1/accounts/familiar_followers", openapi_extra={**FAMILIAR_IDS, **doc.BEARER},
            responses={**doc.ok(list[doc.FamiliarFollowers]), **doc.errors(401, 403, 422)})
async def familiar_followers(request: Request, token: FollowsReader, services: Services,
                             settings: Settings) -> Response:
    """For each account named, its followers the user follows (40 at most each; the user's follows read 5,000
    deep at most), as Mastodon's web client shows them on a profile. The ids in the query, or (as Mastodon.py
    sends them, and Rails reads them) in a JSON body."""
    named = (await read_params(request, settings.max_body_bytes)).get("id", [])
    raw = [str(v) for v in (named if isinstance(named, list) else [named])]
    ids = [i for i in (record_id_or_none(v) for v in raw[:40]) if i is not None]
    answer = await services.graph.call(
        "GET", "/internal/accounts/familiar_followers", params=[("id", i) for i in ids], token=token
    )
    return passthrough(answer)


def record_id_or_none(value: str) -> int | None:
    try:
        return record_id(value)
    except ApiError:
        return None


SEARCH = {"parameters": [
    doc.query("q", doc.text(max_length=300), "An account's username or acct (user@domain), or a hashtag's start"),
    doc.query("type", doc.text(), "accounts, statuses or hashtags (statuses are not searched)"),
    doc.query("limit", doc.LIMIT, "Page size (clamped to 1..40)"),
]}
Hidden = Query(include_in_schema=False)  # declared in SEARCH, with the types the route really accepts


ACCOUNT_SEARCH = {"parameters": [
    doc.query("q", doc.text(max_length=300), "The start of an account's username (``@name`` and ``name@domain`` too)"),
    doc.query("limit", doc.LIMIT, "Page size (clamped to 1..80; 40 when absent)"),
    doc.query("offset", {"type": "string", "pattern": "^[0-9]{0,9}$"}, "How many results to skip (empty: none)"),
    doc.query("following", {"type": "string", "enum": [*TRUE_WORDS, *FALSE_WORDS]},
              "Only accounts the user follows"),
    doc.query("resolve", {"type": "string", "enum": [*TRUE_WORDS, *FALSE_WORDS]},
              "Accepted, changes nothing: Kicau has no remote accounts"),
]}


def offset_param(value: str | None) -> int:
    if value is None or value == "":
        return 0
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise ApiError(400, "offset must be a non-negative integer")
    return int(value)


async def _found_accounts(services: Any, token: TokenInfo | None, q: str, limit: int, offset: int = 0,
                          following: bool = False) -> bytes:
    """The accounts whose username begins with ``q`` (kicau/account_names.py), as the reader may find them."""
    params: dict[str, Any] = {"q": q, "limit": limit, "offset": offset, "following": following}
    answer = await services.graph.call("GET", "/internal/search/accounts", params=params, token=token)
    raise_for_error(answer)
    found: bytes = answer.content
    return found


@router.get("/api/v1/accounts/search", openapi_extra={**ACCOUNT_SEARCH, **doc.BEARER},
            responses={**doc.ok(list[doc.Account]), **doc.errors(400, 401, 403)})
async def search_accounts(services: Services, token: AccountsReader, q: Annotated[str, Hidden] = "",
                          limit: Annotated[str | None, Hidden] = None, offset: Annotated[str | None, Hidden] = None,
                          following: Annotated[str | None, Hidden] = None,
                          resolve: Annotated[str | None, Hidden] = None) -> Response:
    """A client's ``@`` completion: accounts by the start of their username, the one it names first, then in
    order of name; never one the user blocks or that blocks it (``following``: only those it follows)."""
    if len(q) > 300:
        raise ApiError(422, "Validation failed: q is too long")
    reject_nul("q", q)
    page = page_limit(limit, 40, 80)
    skipped = offset_param(offset)
    only_followed = optional_flag({"following": following}, "following") or False
    optional_flag({"resolve": resolve}, "resolve")
    if not q.strip():
        return Response(b"[]", media_type="application/json")
    return Response(await _found_accounts(services, token, q, page, skipped, only_followed),
                    media_type="application/json")


@router.get("/api/v2/search", openapi_extra={**SEARCH, **doc.OPTIONAL_BEARER},
            responses={**doc.ok(doc.SearchResults), **doc.errors(400, 401, 422)})
async def search(services: Services, token: OptionalToken, q: Annotated[str, Hidden] = "",
                 type: Annotated[str | None, Hidden] = None, limit: Annotated[str | None, Hidden] = None) -> Response:
    accounts: bytes = b"[]"
    if len(q) > 300:  # as the graph service's own bound
        raise ApiError(422, "Validation failed: q is too long")
    reject_nul("q", q)
    reject_nul("type", type or "")
    page = page_limit(limit, 20, 40)  # a bad limit is a 400 whether or not there is anything to search
    found: bytes = b"[]"

    async def search_accounts() -> None:
        nonlocal accounts
        accounts = await _found_accounts(services, token, q, page)

    async def search_hashtags() -> None:
        # The hashtags public statuses carried whose names begin with the query, the one it names first
        # (kicau/tag_history.py), as Mastodon suggests them.
        nonlocal found
        answer = await services.timeline.call("GET", "/internal/tags", params={"q": q, "limit": page}, token=token)
        raise_for_error(answer)
        found = answer.content

    searches = []
    if type in (None, "", "accounts") and q.strip():
        searches.append(search_accounts())
    if type in (None, "", "hashtags") and q.strip().removeprefix("#"):
        searches.append(search_hashtags())
    await asyncio.gather(*searches)
    body = b'{"accounts":' + accounts + b',"statuses":[],"hashtags":' + found + b"}"
    return Response(body, media_type="application/json")


@router.get("/api/v1/tags/{name}", openapi_extra=doc.OPTIONAL_BEARER,
            responses={**doc.ok(doc.Tag), **doc.errors(401, 404)})
async def tag(name: str, services: Services, token: OptionalToken) -> Response:
    """A hashtag (with or without ``#``, in any case) and its use over the last seven days
    (kicau/tag_history.py); 404 when it is no hashtag's name or no public status has carried it."""
    return passthrough(await services.timeline.call("GET", f"/internal/tags/{quote(name, safe='')}", token=token))


TRENDS = {"parameters": [
    doc.query("limit", doc.LIMIT, "Page size (clamped to 1..20; 10 when absent)"),
    doc.query("offset", {"type": "string", "pattern": "^[0-9]{0,9}$"}, "How many trending hashtags to skip"),
]}


@router.get("/api/v1/trends/tags", openapi_extra={**TRENDS, **doc.OPTIONAL_BEARER},
            responses={**doc.ok(list[doc.Tag]), **doc.errors(400, 401)})
@router.get("/api/v1/trends", openapi_extra={**TRENDS, **doc.OPTIONAL_BEARER},
            responses={**doc.ok(list[doc.Tag]), **doc.errors(400, 401)})
async def trending_tags(request: Request, services: Services, token: OptionalToken, common: Common,
                        limit: Annotated[str | None, Hidden] = None,
                        offset: Annotated[str | None, Hidden] = None) -> Response:
    """The hashtags public statuses use more than usual (kicau/tag_trends.py), most first, with their use over
    the last seven days; paged by ``offset``, with a Link header as Mastodon's. ``/api/v1/trends`` is Mastodon's
    older name for it."""
    return await trends_page("/internal/trends/tags", request, services, token, common, page_limit(limit, 10, 20),
                             offset_param(offset))


@router.get("/api/v1/trends/links", openapi_extra={**TRENDS, **doc.OPTIONAL_BEARER},
            responses={**doc.ok(list[dict[str, Any]], "Pages as their preview cards, each with its history"),
                       **doc.errors(400, 401)})
async def trending_links(request: Request, services: Services, token: OptionalToken, common: Common,
                         limit: Annotated[str | None, Hidden] = None,
                         offset: Annotated[str | None, Hidden] = None) -> Response:
    """The pages public statuses share more than usual (kicau/link_trends.py), most first, each as its preview
    card with the last seven days' shares and accounts; paged by ``offset``, with a Link header as Mastodon's."""
    return await trends_page("/internal/trends/links", request, services, token, common, page_limit(limit, 10, 20),
                             offset_param(offset))


TRENDING_STATUSES = {"parameters": [
    doc.query("limit", doc.LIMIT, "Page size (clamped to 1..40; 20 when absent)"),
    doc.query("offset", {"type": "string", "pattern": "^[0-9]{0,9}$"}, "How many trending statuses to skip"),
]}


@router.get("/api/v1/trends/statuses", openapi_extra={**TRENDING_STATUSES, **doc.OPTIONAL_BEARER},
            responses={**doc.ok(list[doc.Status]), **doc.errors(400, 401)})
async def trending_statuses(request: Request, services: Services, token: OptionalToken, common: Common,
                            limit: Annotated[str | None, Hidden] = None,
                            offset: Annotated[str | None, Hidden] = None) -> Response:
    """The public statuses most favourited and reblogged of late (kicau/status_trends.py), as the reader may see
    them; paged by ``offset``, with a Link header as Mastodon's."""
    return await trends_page("/internal/trends/statuses", request, services, token, common, page_limit(limit, 20, 40),
                             offset_param(offset))


async def trends_page(path: str, request: Request, services: Services, token: TokenInfo | None, common: Common,
                      page: int, offset: int) -> Response:
    """A page of a trend's ranking from the timeline service's ``path``, with Link headers that move its
    ``offset``."""
    skipped = min(offset, MAX_TRENDS)
    answer = await services.timeline.call("GET", path, params={"limit": page, "offset": skipped}, token=token)
    raise_for_error(answer)
    kept = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "offset"])
    base = f"{common.public_url}{request.url.path}?{kept + '&' if kept else ''}offset="
    links = []
    next_offset = answer.headers.get(NEXT_OFFSET_HEADER.lower())
    if next_offset is not None:
        links.append(f'<{base}{int(next_offset)}>; rel="next"')
    if skipped:
        links.append(f'<{base}{max(0, skipped - page)}>; rel="prev"')
    content: bytes = answer.content
    return Response(content, media_type="application/json", headers={"Link": ", ".join(links)} if links else None)


async def _tag_change(name: str, change: str, token: TokenInfo, services: Services) -> Response:
    """Follow, unfollow, feature or unfeature a hashtag (the graph service: kicau/tag_follows.py,
    kicau/featured_tags.py), then the Tag as the user now sees it (the timeline service)."""
    path = f"/internal/tags/{quote(name, safe='')}"
    raise_for_error(await services.graph.call("POST", f"{path}/{change}", token=token))
    return passthrough(await services.timeline.call("GET", path, params={"known": "1"}, token=token))


@router.post("/api/v1/tags/{name}/follow", openapi_extra=doc.BEARER,
             responses={**doc.ok(doc.Tag), **doc.errors(401, 403, 404)})
async def follow_tag(name: str, token: FollowUser, services: Services) -> Response:
    """Follow a hashtag (again: nothing changes): its public statuses reach the user's home timeline and
    stream from then on; the Tag, ``following`` true. 404 when it is no hashtag's name."""
    return await _tag_change(name, "follow", token, services)


@router.post("/api/v1/tags/{name}/unfollow", openapi_extra=doc.BEARER,
             responses={**doc.ok(doc.Tag), **doc.errors(401, 403, 404)})
async def unfollow_tag(name: str, token: FollowUser, services: Services) -> Response:
    """Stop following a hashtag (not followed: nothing changes); the Tag, ``following`` false."""
    return await _tag_change(name, "unfollow", token, services)


@router.post("/api/v1/tags/{name}/feature", openapi_extra=doc.BEARER,
             responses={**doc.ok(doc.Tag), **doc.errors(401, 403, 404, 422)})
async def feature_tag(name: str, token: AccountsWriter, services: Services) -> Response:
    """Feature a hashtag on the user's profile (again: nothing changes), as ``POST /api/v1/featured_tags`` does;
    the Tag, ``featuring`` true. 404 when it is no hashtag's name; 422 for an eleventh."""
    return await _tag_change(name, "feature", token, services)


@router.post("/api/v1/tags/{name}/unfeature", openapi_extra=doc.BEARER,
             responses={**doc.ok(doc.Tag), **doc.errors(401, 403, 404)})
async def unfeature_tag(name: str, token: AccountsWriter, services: Services) -> Response:
    """Stop featuring a hashtag (not featured: nothing changes); the Tag, ``featuring`` false."""
    return await _tag_change(name, "unfeature", token, services)


@router.get("/api/v1/followed_tags", openapi_extra={**PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.Tag]), **doc.errors(400, 401, 403)})
async def followed_tags(request: Request, token: FollowsReader, services: Services, common: Common) -> Response:
    """The hashtags the user follows, most recently followed first (100 a page by default, at most 200); the
    cursors are follow ids, as the Link header gives them."""
    return await marked_list(request, common, services, token, "/internal/followed_tags", 100, 200)


MANY_ACCOUNTS = 40  # Mastodon's DEFAULT_ACCOUNTS_LIMIT
ACCOUNT_IDS = {"parameters": [doc.query("id[]", {"type": "array", "items": {"type": "string"}},
                                        f"Account ids (at most {MANY_ACCOUNTS}; what is not an id is skipped)")]}


@router.get("/api/v1/accounts", openapi_extra=ACCOUNT_IDS, responses={**doc.ok(list[doc.Account]), **doc.errors(422)})
async def accounts(request: Request, services: Services) -> Response:
    """Several accounts at once, in the order asked (each once); an id with no account is left out."""
    ids = listed_ids(request, MANY_ACCOUNTS)
    if not ids:
        return Response(b"[]", media_type="application/json")
    return passthrough(await services.graph.call("GET", "/internal/accounts", params=[("id", i) for i in ids]))


@router.get("/api/v1/accounts/{account_id}", responses={**doc.ok(doc.Account), **doc.errors(404)})
async def account(account_id: str, services: Services) -> Response:
    return passthrough(await services.graph.call("GET", f"/internal/accounts/{record_id(account_id)}"))


FOLLOW_DOC = {"openapi_extra": {**doc.FOLLOW_BODY, **doc.BEARER},
              "responses": {**doc.ok(doc.Relationship), **doc.errors(400, 401, 403, 404, 413, 415, 422)}}
UNFOLLOW_DOC = {"openapi_extra": {**doc.UNFOLLOW_BODY, **doc.BEARER},
                "responses": {**doc.ok(doc.Relationship), **doc.errors(400, 401, 403, 404, 413, 415, 422)}}


@router.post("/api/v1/accounts/{account_id}/follow", **FOLLOW_DOC)  # type: ignore[arg-type]
async def follow(account_id: str, request: Request, token: FollowUser, services: Services,
                 settings: Settings) -> Response:
    """Follow an account, or change the options of a follow (kicau/follow_options.py): ``reblogs`` (its reblogs in
    the home timeline, default true), ``notify`` (a notification for each of its new statuses, default false),
    ``languages`` (only its statuses in these; none: all). Options not given stay as they were. 403 for the user's
    own account and between a blocker and the blocked."""
    given = await read_params(request, settings.max_body_bytes)
    options: dict[str, Any] = {name: flag for name in ("reblogs", "notify")
                               if (flag := optional_flag(given, name)) is not None}
    languages = given.get("languages")
    if languages is not None:
        options["languages"] = [languages] if isinstance(languages, str) else languages
    target = record_id(account_id)
    return passthrough(await services.graph.call("POST", f"/internal/accounts/{target}/follow", json=options,
                                                 token=token))


@router.post("/api/v1/accounts/{account_id}/unfollow", **UNFOLLOW_DOC)  # type: ignore[arg-type]
async def unfollow(account_id: str, request: Request, token: FollowUser, services: Services,
                   settings: Settings) -> Response:
    await read_params(request, settings.max_body_bytes)
    target = record_id(account_id)
    return passthrough(await services.graph.call("POST", f"/internal/accounts/{target}/unfollow", token=token))


DIRECTORY = {"parameters": [
    doc.query("limit", doc.LIMIT, "How many (clamped to 1..80; 40 when absent)"),
    doc.query("offset", {"type": "string", "pattern": "^[0-9]{0,9}$"}, "How many accounts to skip"),
    doc.query("order", {"type": "string", "enum": ["", *ORDERS]},
              "active (by newest status, the default) or new (newest accounts first)"),
    doc.query("local", {"type": "string", "enum": [*TRUE_WORDS, *FALSE_WORDS]},
              "Accepted, changes nothing: every Kicau account is local"),
]}


@router.get("/api/v1/directory", openapi_extra={**DIRECTORY, **doc.OPTIONAL_BEARER},
            responses={**doc.ok(list[doc.Account]), **doc.errors(400, 401, 422)})
async def directory(services: Services, token: OptionalToken, limit: Annotated[str | None, Hidden] = None,
                    offset: Annotated[str | None, Hidden] = None, order: Annotated[str | None, Hidden] = None,
                    local: Annotated[str | None, Hidden] = None) -> Response:
    """The profile directory (kicau/directory.py): the accounts by their newest status, or newest first; a
    signed-in reader's blocks and mutes left out."""
    if order not in (None, "", *ORDERS):
        raise ApiError(422, "Validation failed: order must be active or new")
    optional_flag({"local": local}, "local")
    params = {"limit": page_limit(limit, 40, 80), "offset": min(offset_param(offset), 1_000_000),
              "order": order or "active"}
    return passthrough(await services.graph.call("GET", "/internal/directory", params=params, token=token))


SUGGESTIONS = {"parameters": [doc.query("limit", doc.LIMIT, "How many (clamped to 1..80; 40 when absent)")]}


async def _suggestions(request: Request, token: TokenInfo, services: Services) -> list[dict[str, Any]]:
    answer = await services.graph.call("GET", "/internal/suggestions", token=token,
                                       params={"limit": page_limit(request.query_params.get("limit"), 40, 80)})
    raise_for_error(answer)
    found: list[dict[str, Any]] = answer.json()
    return found


@router.get("/api/v2/suggestions", openapi_extra={**SUGGESTIONS, **doc.BEARER},
            responses={**doc.ok(list[doc.Suggestion]), **doc.errors(400, 401, 403)})
async def suggestions(request: Request, token: AccountsReader, services: Services) -> Response:
    """Accounts the user may want to follow (kicau/follow_suggestions.py): followed by those it follows, or
    followed by the most, with their sources."""
    return Response(msgspec.json.encode(await _suggestions(request, token, services)), media_type="application/json")


@router.get("/api/v1/suggestions", openapi_extra={**SUGGESTIONS, **doc.BEARER},
            responses={**doc.ok(list[doc.Account]), **doc.errors(400, 401, 403)})
async def suggested_accounts(request: Request, token: AccountsReader, services: Services) -> Response:
    """The v2 suggestions' accounts alone (Mastodon's older form)."""
    found = await _suggestions(request, token, services)
    return Response(msgspec.json.encode([s["account"] for s in found]), media_type="application/json")


@router.delete("/api/v1/suggestions/{account_id}", openapi_extra=doc.BEARER,
               responses={**doc.ok(dict[str, str], "Never suggested again"), **doc.errors(401, 403, 404)})
async def dismiss_suggestion(account_id: str, token: AccountsWriter, services: Services) -> Response:
    """Never suggest this account to the user again."""
    return passthrough(await services.graph.call("DELETE", f"/internal/suggestions/{record_id(account_id)}",
                                                 token=token))


NOTE_DOC = {"openapi_extra": {**doc.body(doc.params({"comment": doc.nullable(doc.text(max_length=MAX_NOTE_LENGTH))}),
                                        required=False), **doc.BEARER},
            "responses": {**doc.ok(doc.Relationship), **doc.errors(400, 401, 403, 404, 413, 415, 422)}}
ENDORSE_DOC = {"openapi_extra": {**doc.UNFOLLOW_BODY, **doc.BEARER},
               "responses": {**doc.ok(doc.Relationship), **doc.errors(400, 401, 403, 404, 413, 415, 422)}}


@router.post("/api/v1/accounts/{account_id}/note", **NOTE_DOC)  # type: ignore[arg-type]
async def note(account_id: str, request: Request, token: AccountsWriter, services: Services,
               settings: Settings) -> Response:
    """Set the user's private note on an account (``comment``; empty or absent: none), shown in their
    Relationship to the user alone (kicau/account_notes.py)."""
    comment = optional_str(await read_params(request, settings.max_body_bytes), "comment") or ""
    return passthrough(await services.graph.call("POST", f"/internal/accounts/{record_id(account_id)}/note",
                                                 json={"comment": comment}, token=token))


# Mastodon 4.4 named them endorse and unendorse; the older pin and unpin stay, as Mastodon keeps them.
@router.post("/api/v1/accounts/{account_id}/endorse", **ENDORSE_DOC)  # type: ignore[arg-type]
@router.post("/api/v1/accounts/{account_id}/pin", **ENDORSE_DOC)  # type: ignore[arg-type]
async def endorse(account_id: str, request: Request, token: AccountsWriter, services: Services,
                  settings: Settings) -> Response:
    """Feature an account the user follows on the user's profile (its endorsements); 422 for one it does not
    follow."""
    await read_params(request, settings.max_body_bytes)
    return passthrough(await services.graph.call("POST", f"/internal/accounts/{record_id(account_id)}/pin",
                                                 token=token))


@router.post("/api/v1/accounts/{account_id}/unendorse", **ENDORSE_DOC)  # type: ignore[arg-type]
@router.post("/api/v1/accounts/{account_id}/unpin", **ENDORSE_DOC)  # type: ignore[arg-type]
async def unendorse(account_id: str, request: Request, token: AccountsWriter, services: Services,
                    settings: Settings) -> Response:
    await read_params(request, settings.max_body_bytes)
    return passthrough(await services.graph.call("POST", f"/internal/accounts/{record_id(account_id)}/unpin",
                                                 token=token))


async def _endorsements(account_id: int, request: Request, services: Services, common: Common) -> Response:
    params: dict[str, object] = {"limit": page_limit(request.query_params.get("limit"), 40, 80)}
    max_id = cursor(request.query_params.get("max_id"), "max_id")
    if max_id is not None:
        params["max_id"] = max_id
    answer = await services.graph.call("GET", f"/internal/accounts/{account_id}/endorsements", params=params)
    raise_for_error(answer)
    link = link_header(request, common.public_url, answer.headers.get(NEXT_CURSOR_HEADER.lower()), None)
    return passthrough(answer, {"Link": link} if link else None)


ENDORSEMENTS = {"parameters": doc.page_parameters("max_id")}


@router.get("/api/v1/endorsements", openapi_extra={**ENDORSEMENTS, **doc.BEARER},
            responses={**doc.ok(list[doc.Account]), **doc.errors(400, 401, 403)})
async def own_endorsements(request: Request, token: AccountsReader, services: Services, common: Common) -> Response:
    """The accounts the user features on its profile, most recently endorsed first, with a Link header."""
    assert token.account_id is not None  # a user token
    return await _endorsements(token.account_id, request, services, common)


@router.get("/api/v1/accounts/{account_id}/endorsements", openapi_extra=ENDORSEMENTS,
            responses={**doc.ok(list[doc.Account]), **doc.errors(400, 404)})
async def account_endorsements(account_id: str, request: Request, services: Services, common: Common) -> Response:
    """The accounts an account features on its profile (Mastodon's featured accounts), as anyone sees them."""
    return await _endorsements(record_id(account_id), request, services, common)


async def _follow_list(direction: str, account_id: str, request: Request, services: Services,
                       common: Common) -> Response:
    params: dict[str, object] = {"limit": page_limit(request.query_params.get("limit"), 40, 80)}
    max_id = request.query_params.get("max_id")
    if max_id:
        params["max_id"] = record_id(max_id)
    answer = await services.graph.call(
        "GET", f"/internal/accounts/{record_id(account_id)}/{direction}", params=params
    )
    raise_for_error(answer)
    link = link_header(request, common.public_url, answer.headers.get(NEXT_CURSOR_HEADER.lower()), None)
    return passthrough(answer, {"Link": link} if link else None)


FOLLOW_LIST = {"openapi_extra": {"parameters": doc.page_parameters("max_id")},
               "responses": {**doc.ok(list[doc.Account]), **doc.errors(400, 404)}}


@router.get("/api/v1/accounts/{account_id}/followers", **FOLLOW_LIST)  # type: ignore[arg-type]
async def followers(account_id: str, request: Request, services: Services, common: Common) -> Response:
    return await _follow_list("followers", account_id, request, services, common)


@router.get("/api/v1/accounts/{account_id}/following", **FOLLOW_LIST)  # type: ignore[arg-type]
async def following(account_id: str, request: Request, services: Services, common: Common) -> Response:
    return await _follow_list("following", account_id, request, services, common)



"""Filters (kicau/filters.py): the user's keyword and status filters, kept by the graph service (its
services/graph/filters.py validates them); the timeline service and the streams apply them."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.filters import v1_entities
from kicau.ids import parse_id
from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.gateway import openapi as doc
from services.gateway.auth import require
from services.gateway.deps import Services, Settings, record_id
from services.gateway.params import read_params
from services.gateway.upstreams import passthrough, raise_for_error

router = APIRouter(tags=["filters"])

FiltersReader = Annotated[TokenInfo, require("read:filters")]
FiltersWriter = Annotated[TokenInfo, require("write:filters")]

ONE = {**doc.ok(doc.Filter), **doc.errors(401, 403, 404)}
CHANGE = {**doc.ok(doc.Filter), **doc.errors(400, 401, 403, 404, 413, 415, 422)}
KEYWORD = {**doc.ok(doc.FilterKeyword), **doc.errors(400, 401, 403, 404, 413, 415, 422)}
DONE = {**doc.ok(dict[str, str], "Deleted"), **doc.errors(401, 403, 404)}
# A form's nested keywords, Rails' way: keywords_attributes[0][keyword]=...&keywords_attributes[0][whole_word]=...
_NESTED = re.compile(r"keywords_attributes\[(\d*)\]\[(\w+)\]")


async def _body(request: Request, settings: Settings) -> dict[str, Any]:
    """The parameters as the graph service reads them: a JSON body as given, a form's ``context[]`` as a list and
    its indexed ``keywords_attributes[N][field]`` as a list of keywords."""
    given = await read_params(request, settings.max_body_bytes)
    nested: dict[str, dict[str, Any]] = {}
    for key in list(given):
        found = _NESTED.fullmatch(key)
        if found:
            nested.setdefault(found.group(1) or "0", {})[found.group(2)] = given.pop(key)
    if nested:
        given["keywords_attributes"] = [nested[k] for k in sorted(nested, key=int)]
    return given


async def _graph(services: Services, method: str, path: str, token: TokenInfo,
                 body: dict[str, Any] | None = None) -> Response:
    return passthrough(await services.graph.call(method, path, token=token, json=body))


@router.get("/api/v2/filters", openapi_extra=doc.BEARER,
            responses={**doc.ok(list[doc.Filter]), **doc.errors(401, 403)})
async def filters(token: FiltersReader, services: Services) -> Response:
    """The user's filters, each with its keywords and statuses."""
    return await _graph(services, "GET", "/internal/filters", token)


@router.post("/api/v2/filters", openapi_extra={**doc.FILTER_BODY, **doc.BEARER}, responses=CHANGE)
async def create_filter(request: Request, token: FiltersWriter, services: Services, settings: Settings) -> Response:
    """A new filter: ``title``, ``context[]`` (home, notifications, public, thread, account), ``filter_action``
    (warn, hide, blur), ``expires_in`` (seconds), ``keywords_attributes`` (``keyword``, ``whole_word``)."""
    return await _graph(services, "POST", "/internal/filters", token, await _body(request, settings))


@router.get("/api/v2/filters/keywords/{keyword_id}", openapi_extra=doc.BEARER,
            responses={**doc.ok(doc.FilterKeyword), **doc.errors(401, 403, 404)})
async def filter_keyword(keyword_id: str, token: FiltersReader, services: Services) -> Response:
    return await _graph(services, "GET", f"/internal/filters/keywords/{record_id(keyword_id)}", token)


@router.put("/api/v2/filters/keywords/{keyword_id}", openapi_extra={**doc.KEYWORD_CHANGE_BODY, **doc.BEARER},
            responses=KEYWORD)
async def update_filter_keyword(keyword_id: str, request: Request, token: FiltersWriter, services: Services,
                                settings: Settings) -> Response:
    target = record_id(keyword_id)
    return await _graph(services, "PUT", f"/internal/filters/keywords/{target}", token,
                        await _body(request, settings))


@router.delete("/api/v2/filters/keywords/{keyword_id}", openapi_extra=doc.BEARER, responses=DONE)
async def delete_filter_keyword(keyword_id: str, token: FiltersWriter, services: Services) -> Response:
    return await _graph(services, "DELETE", f"/internal/filters/keywords/{record_id(keyword_id)}", token)


@router.get("/api/v2/filters/statuses/{rule_id}", openapi_extra=doc.BEARER,
            responses={**doc.ok(doc.FilterStatus), **doc.errors(401, 403, 404)})
async def filter_status(rule_id: str, token: FiltersReader, services: Services) -> Response:
    return await _graph(services, "GET", f"/internal/filters/statuses/{record_id(rule_id)}", token)


@router.delete("/api/v2/filters/statuses/{rule_id}", openapi_extra=doc.BEARER, responses=DONE)
async def delete_filter_status(rule_id: str, token: FiltersWriter, services: Services) -> Response:
    return await _graph(services, "DELETE", f"/internal/filters/statuses/{record_id(rule_id)}", token)


@router.get("/api/v2/filters/{filter_id}", openapi_extra=doc.BEARER, responses=ONE)
async def one_filter(filter_id: str, token: FiltersReader, services: Services) -> Response:
    return await _graph(services, "GET", f"/internal/filters/{record_id(filter_id)}", token)


@router.put("/api/v2/filters/{filter_id}", openapi_extra={**doc.FILTER_CHANGE_BODY, **doc.BEARER},
            responses=CHANGE)
async def update_filter(filter_id: str, request: Request, token: FiltersWriter, services: Services,
                        settings: Settings) -> Response:
    """Change what is given; a keyword of ``keywords_attributes`` with an ``id`` is changed (or, with
    ``_destroy``, dropped), one without is added."""
    target = record_id(filter_id)
    return await _graph(services, "PUT", f"/internal/filters/{target}", token, await _body(request, settings))


@router.delete("/api/v2/filters/{filter_id}", openapi_extra=doc.BEARER, responses=DONE)
async def delete_filter(filter_id: str, token: FiltersWriter, services: Services) -> Response:
    return await _graph(services, "DELETE", f"/internal/filters/{record_id(filter_id)}", token)


@router.get("/api/v2/filters/{filter_id}/keywords", openapi_extra=doc.BEARER,
            responses={**doc.ok(list[doc.FilterKeyword]), **doc.errors(401, 403, 404)})
async def filter_keywords(filter_id: str, token: FiltersReader, services: Services) -> Response:
    return await _graph(services, "GET", f"/internal/filters/{record_id(filter_id)}/keywords", token)


@router.post("/api/v2/filters/{filter_id}/keywords", openapi_extra={**doc.KEYWORD_BODY, **doc.BEARER},
             responses=KEYWORD)
async def add_filter_keyword(filter_id: str, request: Request, token: FiltersWriter, services: Services,
                             settings: Settings) -> Response:
    target = record_id(filter_id)
    return await _graph(services, "POST", f"/internal/filters/{target}/keywords", token,
                        await _body(request, settings))


@router.get("/api/v2/filters/{filter_id}/statuses", openapi_extra=doc.BEARER,
            responses={**doc.ok(list[doc.FilterStatus]), **doc.errors(401, 403, 404)})
async def filter_statuses(filter_id: str, token: FiltersReader, services: Services) -> Response:
    return await _graph(services, "GET", f"/internal/filters/{record_id(filter_id)}/statuses", token)


@router.post("/api/v2/filters/{filter_id}/statuses", openapi_extra={**doc.FILTER_STATUS_BODY, **doc.BEARER},
             responses={**doc.ok(doc.FilterStatus), **doc.errors(400, 401, 403, 404, 413, 415, 422)})
async def add_filter_status(filter_id: str, request: Request, token: FiltersWriter, services: Services,
                            settings: Settings) -> Response:
    """Filter a status (``status_id``): 404 for one that does not exist, 422 for one the filter holds."""
    target = record_id(filter_id)
    raw = (await _body(request, settings)).get("status_id")
    if raw is None or raw == "":
        raise ApiError(422, "Validation failed: Status can't be blank")
    status_id = parse_id(str(raw)) if isinstance(raw, str | int) and not isinstance(raw, bool) else None
    if status_id is None:
        raise ApiError(404, "Record not found")
    return await _graph(services, "POST", f"/internal/filters/{target}/statuses", token, {"status_id": status_id})


# Mastodon's v1 API: one filter a keyword (a v2 filter of that keyword alone, when made here), named by its id.


@router.get("/api/v1/filters", openapi_extra=doc.BEARER,
            responses={**doc.ok(list[doc.FilterV1]), **doc.errors(401, 403)})
async def filters_v1(token: FiltersReader, services: Services) -> Response:
    answer = await services.graph.call("GET", "/internal/filters", token=token)
    raise_for_error(answer)
    return Response(msgspec.json.encode(v1_entities(msgspec.json.decode(answer.content))),
                    media_type="application/json")


@router.get("/api/v1/filters/{keyword_id}", openapi_extra=doc.BEARER,
            responses={**doc.ok(doc.FilterV1), **doc.errors(401, 403, 404)})
async def filter_v1(keyword_id: str, token: FiltersReader, services: Services) -> Response:
    wanted = str(record_id(keyword_id))
    answer = await services.graph.call("GET", "/internal/filters", token=token)
    raise_for_error(answer)
    for found in v1_entities(msgspec.json.decode(answer.content)):
        if found["id"] == wanted:
            return Response(msgspec.json.encode(found), media_type="application/json")
    raise ApiError(404, "Record not found")


@router.post("/api/v1/filters", openapi_extra={**doc.FILTER_V1_BODY, **doc.BEARER},
             responses={**doc.ok(doc.FilterV1), **doc.errors(400, 401, 403, 413, 415, 422)})
async def create_filter_v1(request: Request, token: FiltersWriter, services: Services,
                           settings: Settings) -> Response:
    """A filter of one ``phrase`` (``context[]``, ``irreversible``: hide rather than warn, ``whole_word``,
    ``expires_in``), as Mastodon makes one for a v1 client."""
    return await _graph(services, "POST", "/internal/filters/v1", token, await _body(request, settings))


@router.put("/api/v1/filters/{keyword_id}", openapi_extra={**doc.FILTER_V1_CHANGE_BODY, **doc.BEARER},
            responses={**doc.ok(doc.FilterV1), **doc.errors(400, 401, 403, 404, 413, 415, 422)})
async def update_filter_v1(keyword_id: str, request: Request, token: FiltersWriter, services: Services,
                           settings: Settings) -> Response:
    target = record_id(keyword_id)
    return await _graph(services, "PUT", f"/internal/filters/v1/{target}", token, await _body(request, settings))


@router.delete("/api/v1/filters/{keyword_id}", openapi_extra=doc.BEARER, responses=DONE)
async def delete_filter_v1(keyword_id: str, token: FiltersWriter, services: Services) -> Response:
    """The phrase, and its filter with it when nothing else is left in it."""
    return await _graph(services, "DELETE", f"/internal/filters/v1/{record_id(keyword_id)}", token)

"""Featured hashtags (kicau/featured_tags.py): the hashtags an account shows on its profile, with its use of each,
and the ones featuring suggests; all the graph service's."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.web import ApiError
from services.gateway import openapi as doc
from services.gateway.deps import Services, Settings, record_id
from services.gateway.params import read_params
from services.gateway.routes.accounts import AccountsReader, AccountsWriter
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["featured_tags"])


@router.get("/api/v1/featured_tags", openapi_extra=doc.BEARER,
            responses={**doc.ok(list[doc.FeaturedTag]), **doc.errors(401, 403)})
async def featured_tags(token: AccountsReader, services: Services) -> Response:
    """The hashtags the user features, most used first, each with how many of the user's public and unlisted
    statuses carry it and the day of the last."""
    return passthrough(await services.graph.call("GET", "/internal/featured_tags", token=token))


@router.post("/api/v1/featured_tags", openapi_extra={**doc.FEATURE_BODY, **doc.BEARER},
             responses={**doc.ok(doc.FeaturedTag), **doc.errors(400, 401, 403, 413, 415, 422)})
async def feature_tag(request: Request, token: AccountsWriter, services: Services, settings: Settings) -> Response:
    """Feature a hashtag (``name``, with or without ``#``; again: nothing changes); at most ten. 422 for a name
    that is no hashtag's, or an eleventh."""
    name = (await read_params(request, settings.max_body_bytes)).get("name", "")
    if not isinstance(name, str):
        raise ApiError(422, "Validation failed: Tag is invalid")
    return passthrough(await services.graph.call("POST", "/internal/featured_tags", json={"name": name[:300]},
                                                 token=token))


@router.get("/api/v1/featured_tags/suggestions", openapi_extra=doc.BEARER,
            responses={**doc.ok(list[doc.Tag]), **doc.errors(401, 403)})
async def featured_tag_suggestions(token: AccountsReader, services: Services) -> Response:
    """The hashtags the user used most recently and does not feature (up to ten), as Tags."""
    return passthrough(await services.graph.call("GET", "/internal/featured_tags/suggestions", token=token))


@router.delete("/api/v1/featured_tags/{featured_id}", openapi_extra=doc.BEARER,
               responses={**doc.ok(dict[str, str], "Not featured any more"), **doc.errors(401, 403, 404)})
async def unfeature_tag(featured_id: str, token: AccountsWriter, services: Services) -> Response:
    """Stop featuring a hashtag, by its FeaturedTag's id; 404 for none of the user's."""
    return passthrough(await services.graph.call("DELETE", f"/internal/featured_tags/{record_id(featured_id)}",
                                                 token=token))


@router.get("/api/v1/accounts/{account_id}/featured_tags",
            responses={**doc.ok(list[doc.FeaturedTag]), **doc.errors(404)})
async def account_featured_tags(account_id: str, services: Services) -> Response:
    """The hashtags an account features (no token needed), as ``/api/v1/featured_tags`` gives its own."""
    return passthrough(await services.graph.call("GET", f"/internal/accounts/{record_id(account_id)}/featured_tags"))

"""Blocks and mutes (kicau/blocks_and_mutes.py): block, unblock, mute and unmute an account, and the lists of the
accounts the user blocks and mutes; and the domains it blocks (services/graph/domain_blocks.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.gateway import openapi as doc
from services.gateway.auth import require
from services.gateway.deps import Common, Services, Settings, record_id
from services.gateway.params import optional_str, read_params
from services.gateway.routes.favourites import PAGE, marked_list
from services.gateway.settings import GatewaySettings
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["accounts"])

BlocksWriter = Annotated[TokenInfo, require("write:blocks", "follow")]
BlocksReader = Annotated[TokenInfo, require("read:blocks", "follow")]
MutesWriter = Annotated[TokenInfo, require("write:mutes", "follow")]
MutesReader = Annotated[TokenInfo, require("read:mutes", "follow")]

CHANGE = {**doc.ok(doc.Relationship), **doc.errors(401, 403, 404)}


@router.post("/api/v1/accounts/{account_id}/block", openapi_extra=doc.BEARER, responses=CHANGE)
async def block(account_id: str, token: BlocksWriter, services: Services) -> Response:
    """Block an account (again: nothing changes): the follows between the two end, both ways, neither may follow
    the other, and nothing of it reaches the user's home timeline, streams or notifications; the Relationship.
    403 for the user's own account."""
    return passthrough(await services.graph.call("POST", f"/internal/accounts/{record_id(account_id)}/block",
                                                 token=token))


@router.post("/api/v1/accounts/{account_id}/unblock", openapi_extra=doc.BEARER, responses=CHANGE)
async def unblock(account_id: str, token: BlocksWriter, services: Services) -> Response:
    """Undo a block (none: nothing changes); the Relationship. The follows it ended stay ended."""
    return passthrough(await services.graph.call("POST", f"/internal/accounts/{record_id(account_id)}/unblock",
                                                 token=token))


@router.post("/api/v1/accounts/{account_id}/mute", openapi_extra={**doc.MUTE_BODY, **doc.BEARER},
             responses={**doc.ok(doc.Relationship), **doc.errors(400, 401, 403, 404, 413, 415, 422)})
async def mute(account_id: str, request: Request, token: MutesWriter, services: Services,
               settings: Settings) -> Response:
    """Mute an account: its statuses (and reblogs of them) no longer reach the user's home timeline or streams,
    nor, unless ``notifications`` is false, its notifications; for ``duration`` seconds (at most a year), or until
    unmuted (0, the default). Again: the new ``notifications`` and ``duration`` replace the old. The follow stays; the
    Relationship."""
    given = await read_params(request, settings.max_body_bytes)
    body = {name: given[name] for name in ("notifications", "duration") if given.get(name) is not None}
    return passthrough(await services.graph.call("POST", f"/internal/accounts/{record_id(account_id)}/mute",
                                                 json=body, token=token))


@router.post("/api/v1/accounts/{account_id}/unmute", openapi_extra=doc.BEARER, responses=CHANGE)
async def unmute(account_id: str, token: MutesWriter, services: Services) -> Response:
    """Undo a mute (none: nothing changes): a followed account's newest statuses come back to the home timeline;
    the Relationship."""
    return passthrough(await services.graph.call("POST", f"/internal/accounts/{record_id(account_id)}/unmute",
                                                 token=token))


@router.get("/api/v1/blocks", openapi_extra={**PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.Account]), **doc.errors(400, 401, 403)})
async def blocks(request: Request, token: BlocksReader, services: Services, common: Common) -> Response:
    """The accounts the user blocks, most recently blocked first (40 a page by default, at most 80); the cursors
    are block ids, as the Link header gives them."""
    return await marked_list(request, common, services, token, "/internal/blocks", 40, 80)


@router.get("/api/v1/mutes", openapi_extra={**PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.MutedAccount]), **doc.errors(400, 401, 403)})
async def mutes(request: Request, token: MutesReader, services: Services, common: Common) -> Response:
    """The accounts the user mutes, most recently muted first, each with its ``mute_expires_at`` (null: until
    unmuted); 40 a page by default, at most 80; the cursors are mute ids, as the Link header gives them."""
    return await marked_list(request, common, services, token, "/internal/mutes", 40, 80)


DOMAIN_BODY = doc.body(doc.params({"domain": doc.text(min_length=1, max_length=253, blank=False)}, "domain"))


async def _domain(request: Request, settings: GatewaySettings) -> str:
    """The ``domain`` of a form, JSON or the query string (Mastodon reads any); the graph service checks it."""
    domain = optional_str(await read_params(request, settings.max_body_bytes), "domain")
    if not domain:
        raise ApiError(422, "Validation failed: Domain can't be blank")
    return domain


@router.get("/api/v1/domain_blocks", openapi_extra={**PAGE, **doc.BEARER},
            responses={**doc.ok(list[str]), **doc.errors(400, 401, 403)})
async def domain_blocks(request: Request, token: BlocksReader, services: Services, common: Common) -> Response:
    """The domains the user blocks (services/graph/domain_blocks.py), most recently blocked first (100 a page by
    default, at most 200); the cursors are block ids, as the Link header gives them."""
    return await marked_list(request, common, services, token, "/internal/domain_blocks", 100, 200,
                             upstream=services.graph)


@router.post("/api/v1/domain_blocks", openapi_extra={**DOMAIN_BODY, **doc.BEARER},
             responses={**doc.ok(dict[str, Any], "Blocked"), **doc.errors(400, 401, 403, 413, 415, 422)})
async def block_domain(request: Request, token: BlocksWriter, services: Services, settings: Settings) -> Response:
    """Block a domain (again: nothing changes): nothing from its accounts would reach the user. Kicau knows no
    other server, so today it hides nothing; the list is kept as Mastodon keeps it."""
    domain = await _domain(request, settings)
    return passthrough(await services.graph.call("POST", "/internal/domain_blocks", json={"domain": domain},
                                                 token=token))


@router.delete("/api/v1/domain_blocks", openapi_extra={**DOMAIN_BODY, **doc.BEARER},
               responses={**doc.ok(dict[str, Any], "Unblocked"), **doc.errors(400, 401, 403, 413, 415, 422)})
async def unblock_domain(request: Request, token: BlocksWriter, services: Services, settings: Settings) -> Response:
    """Undo a domain's block (none: nothing changes)."""
    domain = await _domain(request, settings)
    return passthrough(await services.graph.call("DELETE", "/internal/domain_blocks", params={"domain": domain},
                                                 token=token))

"""Mastodon's admin API for e-mail domain blocks, the graph service's side (kicau/email_domain_blocks.py holds the
rules; the gateway's routes are in services/gateway/routes/admin.py): ``/internal/admin/email_domain_blocks``.

The acting account's role must hold ``manage_blocks`` (Mastodon's Admin and Owner roles; not its Moderator), else
403 "This action is not allowed". Blocks list newest first, 100 a page (at most 200), with Mastodon's cursors over
their ids.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr

from kicau import email_domain_blocks
from kicau.email_domain_blocks import EmailDomainBlock, histories, normalized_domain
from kicau.web import ApiError, acting_account_id
from services.graph.admin import PAGE_DEFAULT, Actor, AdminDep, Cursors, Limit, Page, paged
from services.graph.service import GraphService

PERMISSION: Final = "manage_blocks"
Id = Annotated[int, Path(ge=0, lt=1 << 63)]
Cursor = Annotated[int | None, Query(ge=0, lt=1 << 63)]

router = APIRouter(prefix="/internal/admin/email_domain_blocks")


def _graph(request: Request) -> GraphService:
    graph: GraphService = request.app.state.service
    return graph


def window(blocks: list[EmailDomainBlock], cursors: Cursors, limit: int) -> list[EmailDomainBlock]:
    """The page of ``blocks`` (newest first) the cursors ask for (``min_id`` reads upward: the oldest above it,
    still listed newest first)."""
    below = [b for b in blocks if cursors.max_id is None or b.id < cursors.max_id]
    if cursors.min_id is not None:
        return [b for b in below if b.id > cursors.min_id][-limit:]
    return [b for b in below if cursors.since_id is None or b.id > cursors.since_id][:limit]


async def _rendered(graph: GraphService, blocks: list[EmailDomainBlock]) -> list[dict[str, Any]]:
    found = await histories(graph.redis, [b.domain for b in blocks])
    return [email_domain_blocks.entity(b, found[b.domain]) for b in blocks]


async def _one(graph: GraphService, block_id: int) -> EmailDomainBlock:
    found = next((b for b in await graph.email_blocks.every() if b.id == block_id), None)
    if found is None:
        raise ApiError(404, "Record not found")
    return found


@router.get("")
async def listing(request: Request, admin: AdminDep, actor: Actor = None, max_id: Cursor = None,
                  since_id: Cursor = None, min_id: Cursor = None, limit: Limit = PAGE_DEFAULT) -> JSONResponse:
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    graph = _graph(request)
    shown = window(await graph.email_blocks.every(), Cursors(max_id, since_id, min_id), limit)
    items = await _rendered(graph, shown)
    return paged(Page(items, shown[-1].id if shown else None, shown[0].id if shown else None))


@router.get("/{block_id}")
async def one(block_id: Id, request: Request, admin: AdminDep, actor: Actor = None) -> dict[str, Any]:
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    graph = _graph(request)
    return (await _rendered(graph, [await _one(graph, block_id)]))[0]


class BlockForm(BaseModel):
    model_config = ConfigDict(extra="ignore")
    domain: StrictStr
    allow_with_approval: StrictBool = False


@router.post("")
async def block(form: BlockForm, request: Request, admin: AdminDep, actor: Actor = None) -> dict[str, Any]:
    """Block a domain (and the domains under it) for sign-ups; the Admin::EmailDomainBlock."""
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    if form.allow_with_approval:
        raise ApiError(422, "Validation failed: Kicau holds no sign-ups for approval: a block refuses them")
    if not form.domain.strip():
        raise ApiError(422, "Validation failed: Domain can't be blank")
    domain = normalized_domain(form.domain)
    if domain is None:
        raise ApiError(422, "Validation failed: Domain is invalid")
    graph = _graph(request)
    made = EmailDomainBlock(graph.ids.next_id(), domain)
    if not await graph.email_blocks.add(made):
        raise ApiError(422, "Validation failed: Domain has already been taken")
    return (await _rendered(graph, [made]))[0]


@router.delete("/{block_id}")
async def unblock(block_id: Id, request: Request, admin: AdminDep, actor: Actor = None) -> dict[str, Any]:
    """Lift a block; an empty object, as Mastodon answers."""
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    graph = _graph(request)
    await graph.email_blocks.remove(await _one(graph, block_id))
    return {}

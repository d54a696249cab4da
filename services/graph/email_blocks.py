"""Mastodon's admin API for the blocks that refuse sign-ups, the graph service's side (the gateway's routes are in
services/gateway/routes/admin.py): e-mail domain blocks (kicau/email_domain_blocks.py,
``/internal/admin/email_domain_blocks``) and canonical e-mail blocks (kicau/canonical_email_blocks.py,
``/internal/admin/canonical_email_blocks``).

The acting account's role must hold ``manage_blocks`` (Mastodon's Admin and Owner roles; not its Moderator), else
403 "This action is not allowed". Blocks list newest first, 100 a page (at most 200), with Mastodon's cursors over
their ids.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Protocol, TypeVar

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr

from kicau import canonical_email_blocks, email_domain_blocks
from kicau.canonical_email_blocks import HASH, CanonicalEmailBlock, canonical_hash
from kicau.email_domain_blocks import EmailDomainBlock, histories, normalized_domain
from kicau.web import ApiError, acting_account_id
from services.graph.admin import PAGE_DEFAULT, Actor, AdminDep, Cursors, Limit, Page, PageCursors, paged
from services.graph.service import GraphService

PERMISSION: Final = "manage_blocks"
Id = Annotated[int, Path(ge=0, lt=1 << 63)]

router = APIRouter(prefix="/internal/admin")


class _Block(Protocol):
    @property
    def id(self) -> int: ...


B = TypeVar("B", bound=_Block)


def graph_of(request: Request) -> GraphService:
    graph: GraphService = request.app.state.service
    return graph


def window(blocks: list[B], cursors: Cursors, limit: int) -> list[B]:
    """The page of ``blocks`` (newest first) the cursors ask for (``min_id`` reads upward: the oldest above it,
    still listed newest first)."""
    below = [b for b in blocks if cursors.max_id is None or b.id < cursors.max_id]
    if cursors.min_id is not None:
        return [b for b in below if b.id > cursors.min_id][-limit:]
    return [b for b in below if cursors.since_id is None or b.id > cursors.since_id][:limit]


async def _rendered(graph: GraphService, blocks: list[EmailDomainBlock]) -> list[dict[str, Any]]:
    found = await histories(graph.redis, [b.domain for b in blocks])
    return [email_domain_blocks.entity(b, found[b.domain]) for b in blocks]


def found_block(blocks: list[B], block_id: int) -> B:
    """The block of ``block_id`` among ``blocks``; 404 if none is."""
    found = next((b for b in blocks if b.id == block_id), None)
    if found is None:
        raise ApiError(404, "Record not found")
    return found


def listed_blocks(shown: list[B], items: list[dict[str, Any]]) -> JSONResponse:
    """A page of blocks (``items``, the entities of ``shown``), with its cursors."""
    return paged(Page(items, shown[-1].id if shown else None, shown[0].id if shown else None))


async def _one(graph: GraphService, block_id: int) -> EmailDomainBlock:
    return found_block(await graph.email_blocks.every(), block_id)


@router.get("/email_domain_blocks")
async def listing(request: Request, admin: AdminDep, cursors: PageCursors, actor: Actor = None,
                  limit: Limit = PAGE_DEFAULT) -> JSONResponse:
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    graph = graph_of(request)
    shown = window(await graph.email_blocks.every(), cursors, limit)
    return listed_blocks(shown, await _rendered(graph, shown))


@router.get("/email_domain_blocks/{block_id}")
async def one(block_id: Id, request: Request, admin: AdminDep, actor: Actor = None) -> dict[str, Any]:
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    graph = graph_of(request)
    return (await _rendered(graph, [await _one(graph, block_id)]))[0]


class BlockForm(BaseModel):
    model_config = ConfigDict(extra="ignore")
    domain: StrictStr
    allow_with_approval: StrictBool = False


@router.post("/email_domain_blocks")
async def block(form: BlockForm, request: Request, admin: AdminDep, actor: Actor = None) -> dict[str, Any]:
    """Block a domain (and the domains under it) for sign-ups, or with ``allow_with_approval`` hold them for staff's
    approval (services/graph/sign_ups.py); the Admin::EmailDomainBlock."""
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    if not form.domain.strip():
        raise ApiError(422, "Validation failed: Domain can't be blank")
    domain = normalized_domain(form.domain)
    if domain is None:
        raise ApiError(422, "Validation failed: Domain is invalid")
    graph = graph_of(request)
    made = EmailDomainBlock(graph.ids.next_id(), domain, form.allow_with_approval)
    if not await graph.email_blocks.add(made):
        raise ApiError(422, "Validation failed: Domain has already been taken")
    shown = (await _rendered(graph, [made]))[0]
    await graph.log_action(acting_account_id(actor), "create", "email_domain_block", made.id, human=domain,
                           target=shown)
    return shown


@router.delete("/email_domain_blocks/{block_id}")
async def unblock(block_id: Id, request: Request, admin: AdminDep, actor: Actor = None) -> dict[str, Any]:
    """Lift a block; an empty object, as Mastodon answers."""
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    graph = graph_of(request)
    gone = await _one(graph, block_id)
    await graph.email_blocks.remove(gone)
    await graph.log_action(acting_account_id(actor), "destroy", "email_domain_block", gone.id, human=gone.domain,
                           target=(await _rendered(graph, [gone]))[0])
    return {}


# Canonical e-mail blocks ----------------------------------------------------------------------------------------

async def _one_address(graph: GraphService, block_id: int) -> CanonicalEmailBlock:
    return found_block(await graph.address_blocks.every(), block_id)


@router.get("/canonical_email_blocks")
async def address_listing(request: Request, admin: AdminDep, cursors: PageCursors, actor: Actor = None,
                          limit: Limit = PAGE_DEFAULT) -> JSONResponse:
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    shown = window(await graph_of(request).address_blocks.every(), cursors, limit)
    return listed_blocks(shown, [canonical_email_blocks.entity(b) for b in shown])


@router.get("/canonical_email_blocks/{block_id}")
async def address_block(block_id: Id, request: Request, admin: AdminDep, actor: Actor = None) -> dict[str, Any]:
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    return canonical_email_blocks.entity(await _one_address(graph_of(request), block_id))


class AddressForm(BaseModel):
    model_config = ConfigDict(extra="ignore")
    email: StrictStr | None = None
    canonical_email_hash: StrictStr | None = None


@router.post("/canonical_email_blocks/test")
async def test_address(form: AddressForm, request: Request, admin: AdminDep,
                       actor: Actor = None) -> list[dict[str, Any]]:
    """The blocks an address meets (none or one): Mastodon's way to ask whether it may sign up."""
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    if not form.email:
        raise ApiError(422, "Validation failed: Email can't be blank")
    found = await graph_of(request).address_blocks.matching(form.email)
    return [canonical_email_blocks.entity(found)] if found is not None else []


@router.post("/canonical_email_blocks")
async def block_address(form: AddressForm, request: Request, admin: AdminDep, actor: Actor = None) -> dict[str, Any]:
    """Block an address (``email``, of which only the canonical form's hash is kept) or a hash given as such
    (``canonical_email_hash``); the Admin::CanonicalEmailBlock."""
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    if form.email:
        digest = canonical_hash(form.email)
    elif form.canonical_email_hash:
        digest = form.canonical_email_hash.strip().lower()
        if not HASH.fullmatch(digest):
            raise ApiError(422, "Validation failed: Canonical email hash must be a SHA-256 in hex")
    else:
        raise ApiError(422, "Validation failed: Canonical email hash can't be blank")
    graph = graph_of(request)
    made = CanonicalEmailBlock(graph.ids.next_id(), digest)
    if not await graph.address_blocks.add(made):
        raise ApiError(422, "Validation failed: Canonical email hash has already been taken")
    shown = canonical_email_blocks.entity(made)
    await graph.log_action(acting_account_id(actor), "create", "canonical_email_block", made.id, human=digest,
                           target=shown)
    return shown


@router.delete("/canonical_email_blocks/{block_id}")
async def unblock_address(block_id: Id, request: Request, admin: AdminDep, actor: Actor = None) -> dict[str, Any]:
    """Lift a block; an empty object, as Mastodon answers."""
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    graph = graph_of(request)
    gone = await _one_address(graph, block_id)
    await graph.address_blocks.remove(gone)
    shown = canonical_email_blocks.entity(gone)
    await graph.log_action(acting_account_id(actor), "destroy", "canonical_email_block", gone.id,
                           human=shown["canonical_email_hash"], target=shown)
    return {}

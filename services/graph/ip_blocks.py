"""Mastodon's admin API for IP blocks (kicau/ip_blocks.py), the graph service's side: ``/internal/admin/ip_blocks``
(the gateway's routes are in services/gateway/routes/admin.py), and ``/internal/ip_blocks``, the blocks in force
that every gateway process loads and applies.

As for the e-mail blocks (services/graph/email_blocks.py), the acting account's role must hold ``manage_blocks``,
and blocks list newest first, 100 a page (at most 200). After each change ``keys.IP_BLOCKS_VERSION`` moves, which
tells the gateways to load the blocks again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr

from kicau import keys
from kicau.ip_blocks import (
    ENFORCED,
    MAX_COMMENT,
    MAX_EXPIRES_IN,
    SEVERITIES,
    IpBlock,
    Network,
    enforced,
    entity,
    parsed_network,
)
from kicau.web import ApiError, acting_account_id
from services.graph.admin import PAGE_DEFAULT, Actor, AdminDep, Limit, PageCursors
from services.graph.email_blocks import PERMISSION, Id, found_block, graph_of, listed_blocks, window
from services.graph.service import GraphService

router = APIRouter(prefix="/internal")


class BlockForm(BaseModel):
    """A block's fields as the gateway passes them on; for a change, only those given change (``expires_in``
    given empty: it no longer expires, as Mastodon's)."""

    model_config = ConfigDict(extra="ignore")
    ip: StrictStr | None = None
    severity: StrictStr | None = None
    comment: StrictStr | None = None
    expires_in: StrictInt | None = None


def _network(raw: str | None) -> Network:
    if raw is None or not raw.strip():
        raise ApiError(422, "Validation failed: Ip can't be blank")
    network = parsed_network(raw)
    if network is None:
        raise ApiError(422, "Validation failed: Ip is invalid")
    return network


def _severity(raw: str | None) -> str:
    if raw is None or not raw.strip():
        raise ApiError(422, "Validation failed: Severity can't be blank")
    if raw not in SEVERITIES:
        raise ApiError(422, "Validation failed: Severity is not included in the list")
    return raw


def _comment(raw: str | None) -> str:
    comment = raw or ""
    if len(comment) > MAX_COMMENT:
        raise ApiError(422, f"Validation failed: Comment is too long (maximum is {MAX_COMMENT} characters)")
    return comment


def _expires_at(raw: int | None) -> datetime | None:
    if raw is None:
        return None
    if not 0 < raw <= MAX_EXPIRES_IN:
        raise ApiError(422, f"Validation failed: Expires in must be between 1 and {MAX_EXPIRES_IN} seconds")
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=raw)


async def _kept(graph: GraphService, actor: int, block: IpBlock, others: list[IpBlock]) -> dict[str, Any]:
    """Write ``block`` (new or changed) unless another of ``others`` blocks its network already, tell the gateways,
    and log it; its Admin::IpBlock."""
    if any(other.network == block.network and other.id != block.id for other in others):
        raise ApiError(422, "Validation failed: Ip has already been taken")
    await graph.ip_blocks.put(block)
    await graph.redis.incr(keys.IP_BLOCKS_VERSION)
    shown = entity(block)
    changed = any(other.id == block.id for other in others)
    await graph.log_action(actor, "update" if changed else "create", "ip_block", block.id, human=shown["ip"],
                           target=shown)
    return shown


@router.get("/ip_blocks")
async def in_force(request: Request) -> dict[str, Any]:
    """The blocks the gateways apply (``sign_up_block`` and ``no_access``), as ``enforced`` gives each."""
    blocks = await graph_of(request).ip_blocks.every()
    return {"blocks": [enforced(b) for b in blocks if b.severity in ENFORCED], "at": time.time()}


@router.get("/admin/ip_blocks")
async def listing(request: Request, admin: AdminDep, cursors: PageCursors, actor: Actor = None,
                  limit: Limit = PAGE_DEFAULT) -> JSONResponse:
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    shown = window(await graph_of(request).ip_blocks.every(), cursors, limit)
    return listed_blocks(shown, [entity(b) for b in shown])


@router.get("/admin/ip_blocks/{block_id}")
async def one(block_id: Id, request: Request, admin: AdminDep, actor: Actor = None) -> dict[str, Any]:
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    return entity(found_block(await graph_of(request).ip_blocks.every(), block_id))


@router.post("/admin/ip_blocks")
async def block(form: BlockForm, request: Request, admin: AdminDep, actor: Actor = None) -> dict[str, Any]:
    """Block an address or range; the Admin::IpBlock."""
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    graph = graph_of(request)
    made = IpBlock(graph.ids.next_id(), _network(form.ip), _severity(form.severity), _comment(form.comment),
                   _expires_at(form.expires_in))
    return await _kept(graph, acting_account_id(actor), made, await graph.ip_blocks.every())


@router.put("/admin/ip_blocks/{block_id}")
async def change(block_id: Id, form: BlockForm, request: Request, admin: AdminDep,
                 actor: Actor = None) -> dict[str, Any]:
    """Change what is given of a block; the Admin::IpBlock as it is now."""
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    graph = graph_of(request)
    every = await graph.ip_blocks.every()
    was = found_block(every, block_id)
    given = form.model_fields_set
    changed = IpBlock(
        was.id,
        _network(form.ip) if "ip" in given else was.network,
        _severity(form.severity) if "severity" in given else was.severity,
        _comment(form.comment) if "comment" in given else was.comment,
        _expires_at(form.expires_in) if "expires_in" in given else was.expires_at,
    )
    return await _kept(graph, acting_account_id(actor), changed, every)


@router.delete("/admin/ip_blocks/{block_id}")
async def unblock(block_id: Id, request: Request, admin: AdminDep, actor: Actor = None) -> dict[str, Any]:
    """Lift a block; an empty object, as Mastodon answers."""
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    graph = graph_of(request)
    gone = found_block(await graph.ip_blocks.every(), block_id)
    await graph.ip_blocks.remove(gone)
    await graph.redis.incr(keys.IP_BLOCKS_VERSION)
    shown = entity(gone)
    await graph.log_action(acting_account_id(actor), "destroy", "ip_block", gone.id, human=shown["ip"], target=shown)
    return {}

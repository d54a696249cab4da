"""Mastodon's ``POST /api/v1/admin/measures`` and ``/dimensions`` (kicau/instance_measures.py,
kicau/instance_dimensions.py), the graph service's side: ``/internal/admin/measures`` and ``/dimensions``. The acting
account's role must hold ``view_dashboard`` (every staff role does)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from kicau import hashtags, instance_dimensions
from kicau.clients import execute
from kicau.instance_measures import (
    MEASURES,
    REPORT_MEASURES,
    REPORTS_LOOKBACK_DAYS,
    TAG_MEASURES,
    period_of,
    redis_measures,
    report_measures,
)
from kicau.web import ApiError, acting_account_id
from services.graph.admin import Actor, AdminDep
from services.graph.email_blocks import graph_of

router = APIRouter(prefix="/internal")

PERMISSION = "view_dashboard"


class MeasuresForm(BaseModel):
    """What the gateway read of Mastodon's parameters: the keys asked for, the period's ends as given, and the
    hashtag each ``tag_*`` measure names."""

    model_config = ConfigDict(extra="ignore")
    keys: list[StrictStr]
    start_at: Any = None
    end_at: Any = None
    tags: dict[StrictStr, StrictStr] = {}


@router.post("/admin/measures")
async def measures(form: MeasuresForm, request: Request, admin: AdminDep, actor: Actor = None) -> list[dict[str, Any]]:
    """The measures asked for that Kicau keeps, in the order asked (a key it does not keep is left out, as
    Mastodon leaves out one it does not know)."""
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    period = period_of(form.start_at, form.end_at)
    wanted = [key for key in dict.fromkeys(form.keys) if key in MEASURES and (key not in TAG_MEASURES
                                                                               or key in form.tags)]
    tags: dict[str, str] = {}
    for key in TAG_MEASURES:
        if key in wanted:
            name = form.tags[key].removeprefix("#")
            if not hashtags.valid(name):
                raise ApiError(404, "Record not found")
            tags[key] = hashtags.normal(name)
    graph = graph_of(request)
    earliest = period.before().first

    async def reports() -> dict[str, dict[str, Any]]:
        if not any(key in REPORT_MEASURES for key in wanted):
            return {}
        filed = await graph.reports.filed_between(earliest - REPORTS_LOOKBACK_DAYS, period.last)
        return report_measures(wanted, period, filed)

    from_redis, from_reports = await asyncio.gather(redis_measures(graph.redis, wanted, period, tags), reports())
    found = {**from_redis, **from_reports}
    return [found[key] for key in wanted if key in found]


class DimensionsForm(BaseModel):
    model_config = ConfigDict(extra="ignore")
    keys: list[StrictStr]
    start_at: Any = None
    end_at: Any = None
    limit: int = Field(default=instance_dimensions.MAX_LIMIT, ge=1, le=instance_dimensions.MAX_LIMIT)


@router.post("/admin/dimensions")
async def dimensions(form: DimensionsForm, request: Request, admin: AdminDep,
                     actor: Actor = None) -> list[dict[str, Any]]:
    """The dimensions asked for that Kicau keeps, in the order asked (others left out, as for measures)."""
    await admin.staff_role(acting_account_id(actor), PERMISSION)
    period = period_of(form.start_at, form.end_at)
    wanted = [key for key in dict.fromkeys(form.keys) if key in instance_dimensions.DIMENSIONS]
    graph, session = graph_of(request), request.app.state.session
    found: dict[str, dict[str, Any]] = {}
    if "languages" in wanted:
        found["languages"] = await instance_dimensions.languages(graph.redis, period, form.limit)
    if "software_versions" in wanted or "space_usage" in wanted:
        info = await graph.redis.info()
        if "software_versions" in wanted:
            rows = await execute(session, "SELECT release_version FROM system.local")
            found["software_versions"] = instance_dimensions.software_versions(
                str(info.get("redis_version", "")), str(rows[0]["release_version"]) if rows else "")
        if "space_usage" in wanted:
            rows = await execute(session, DISK_USAGE, (graph.settings.cassandra_keyspace,))
            found["space_usage"] = instance_dimensions.space_usage(
                int(info.get("used_memory", 0)), {row["table_name"]: int(row["mebibytes"] or 0) for row in rows})
    return [found[key] for key in wanted]


DISK_USAGE = "SELECT table_name, mebibytes FROM system_views.disk_usage WHERE keyspace_name = %s"

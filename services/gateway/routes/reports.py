"""Reports (kicau/reports.py): an account tells the operator about another's account and statuses, through the
graph service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.ids import parse_id
from kicau.reports import CATEGORIES, MAX_COMMENT, MAX_STATUSES
from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.gateway import openapi as doc
from services.gateway.auth import require
from services.gateway.deps import Services, Settings
from services.gateway.params import optional_flag, optional_str, read_params
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["reports"])

Reporter = Annotated[TokenInfo, require("write:reports")]

ID_LIST = {"anyOf": [doc.CURSOR, {"type": "array", "items": doc.CURSOR, "maxItems": MAX_STATUSES}]}
REPORT_BODY = doc.body(doc.params({
    "account_id": {"type": "string", "pattern": "^[0-9]{1,19}$"},
    "status_ids": doc.nullable(ID_LIST),
    "comment": doc.nullable(doc.text(max_length=MAX_COMMENT)),
    "forward": doc.nullable(doc.BOOLEAN),
    "category": doc.nullable({"type": "string", "enum": list(CATEGORIES)}),
    "rule_ids": doc.nullable(ID_LIST),
}, "account_id"))


def _ids(given: dict[str, Any], name: str, what: str) -> list[int]:
    """``name[]`` (or ``name``, one), each an id; more than ``MAX_STATUSES`` is a 422."""
    raw = given.get(name)
    values = [] if raw is None or raw == "" else raw if isinstance(raw, list) else [raw]
    if len(values) > MAX_STATUSES:
        raise ApiError(422, f"Validation failed: {name} names at most {MAX_STATUSES} {what}")
    ids = [parse_id(str(value)) if isinstance(value, str | int) and not isinstance(value, bool) else None
           for value in values]
    if any(i is None for i in ids):
        raise ApiError(422, f"Validation failed: {name} must be {what} ids")
    return [i for i in ids if i is not None]


@router.post("/api/v1/reports", openapi_extra={**REPORT_BODY, **doc.BEARER},
             responses={**doc.ok(doc.Report), **doc.errors(400, 401, 403, 404, 413, 415, 422)})
async def report(request: Request, token: Reporter, services: Services, settings: Settings) -> Response:
    """Report an account (``account_id``) and any of its statuses (``status_ids[]``) to the operator, with a
    ``comment`` (1,000 characters at most), a ``category`` (``spam``, ``legal``, ``violation``, ``other``) and the
    instance's rules broken (``rule_ids[]``, ids of ``GET /api/v1/instance/rules``). ``forward`` is accepted: there
    is no other server to forward to. The Report."""
    given = await read_params(request, settings.max_body_bytes)
    target = parse_id(str(given.get("account_id") or ""))
    if target is None:
        raise ApiError(422, "Validation failed: account_id must be an account id")
    comment = optional_str(given, "comment") or ""
    if len(comment) > MAX_COMMENT:
        raise ApiError(422, f"Validation failed: Comment is too long (maximum is {MAX_COMMENT} characters)")
    category = optional_str(given, "category") or None
    if category is not None and category not in CATEGORIES:
        raise ApiError(422, f"Validation failed: category must be one of {', '.join(CATEGORIES)}")
    optional_flag(given, "forward")
    rule_ids = _ids(given, "rule_ids", "rule")
    if any(not 1 <= rule <= len(settings.instance_rules) for rule in rule_ids):
        raise ApiError(422, "Validation failed: Rule ids must name the instance's rules")
    body = {"account_id": target, "status_ids": _ids(given, "status_ids", "status"), "rule_ids": rule_ids,
            "comment": comment, "category": category}
    return passthrough(await services.graph.call("POST", "/internal/reports", json=body, token=token))

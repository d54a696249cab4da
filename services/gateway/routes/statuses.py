"""Statuses: post, read, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.web import ApiError
from services.gateway import openapi as doc
from services.gateway.auth import WriteUser
from services.gateway.deps import Services, Settings, record_id
from services.gateway.params import read_params
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["statuses"])

STATUS_FIELDS = ("status", "visibility", "sensitive", "spoiler_text", "language", "in_reply_to_id")


def _status_body(params: dict[str, Any]) -> dict[str, Any]:
    body = {k: params[k] for k in STATUS_FIELDS if k in params and params[k] is not None}
    if "status" not in body:
        raise ApiError(422, "Validation failed: Text can't be blank")
    if params.get("media_ids") or params.get("poll"):
        raise ApiError(422, "Validation failed: media attachments and polls are not supported")
    if "in_reply_to_id" in body:
        if body["in_reply_to_id"] == "":
            del body["in_reply_to_id"]
        else:
            body["in_reply_to_id"] = record_id(str(body["in_reply_to_id"]))
    if body.get("language") == "":
        del body["language"]
    return body


IDEMPOTENCY_KEY = {"parameters": [{
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    "description": "Repeating a key (per account, for an hour) answers the original status instead of a new one",
}]}


@router.post("/api/v1/statuses", openapi_extra={**doc.STATUS_BODY, **doc.BEARER, **IDEMPOTENCY_KEY},
             responses={**doc.ok(doc.Status), **doc.errors(400, 401, 403, 404, 413, 415, 422)})
async def create_status(request: Request, token: WriteUser, services: Services, settings: Settings) -> Response:
    body = _status_body(await read_params(request, settings.max_body_bytes))
    headers = {}
    key = request.headers.get("idempotency-key")
    if key is not None:
        headers["Idempotency-Key"] = key
    return passthrough(await services.post.call("POST", "/internal/statuses", json=body, token=token,
                                                headers=headers))


@router.get("/api/v1/statuses/{status_id}", responses={**doc.ok(doc.Status), **doc.errors(404)})
async def get_status(status_id: str, services: Services) -> Response:
    return passthrough(await services.post.call("GET", f"/internal/statuses/{record_id(status_id)}"))


@router.delete("/api/v1/statuses/{status_id}", openapi_extra=doc.BEARER,
               responses={**doc.ok(doc.DeletedStatus), **doc.errors(401, 403, 404, 422)})
async def delete_status(status_id: str, token: WriteUser, services: Services) -> Response:
    return passthrough(await services.post.call("DELETE", f"/internal/statuses/{record_id(status_id)}", token=token))

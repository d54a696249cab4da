"""Media attachments (kicau/media.py): uploads, their descriptions, and their files, through the post service."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from kicau import media
from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.gateway import openapi as doc
from services.gateway.auth import require
from services.gateway.deps import Services, Settings, Upstreams, record_id
from services.gateway.media_files import MediaFiles
from services.gateway.params import optional_str, read_body, read_params, reject_nul
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["media"])

MediaWriter = Annotated[TokenInfo, require("write:media")]
# A form's parts beside the file (description, focus, thumbnail...), and room for its boundaries.
FORM_OVERHEAD_BYTES = 64 * 1024
FILE_NAME = re.compile(f"({'|'.join(media.VARIANTS)})\\.({'|'.join(media.IMAGE_TYPES.values())})")
FILES_CACHE = "public, max-age=31536000, immutable"  # a file never changes: a new upload is a new id

UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"},
        "description": doc.text(max_length=media.MAX_DESCRIPTION),
        "focus": {"type": "string", "pattern": f"^$|{media.FOCUS_PATTERN}"},
    }}}}}}
CHANGE_BODY = doc.body(doc.params({
    "description": doc.nullable(doc.text(max_length=media.MAX_DESCRIPTION)),
    "focus": doc.nullable({"type": "string", "pattern": f"^$|{media.FOCUS_PATTERN}"}),
}), required=False)


async def _upload_form(request: Request, limit: int) -> tuple[bytes, dict[str, str]]:
    """The file's bytes and the form's other fields (query parameters too, as Mastodon reads either)."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "multipart/form-data":
        raise ApiError(422, "Validation failed: File can't be blank (send it as multipart/form-data)")
    request._body = await read_body(request, limit)
    try:
        form = await request.form(max_files=2, max_fields=50)
    except MultiPartException as exc:
        raise ApiError(400, f"The multipart body could not be read: {exc.message}") from None
    fields = {name: reject_nul(name, value) for name, value in request.query_params.items()}
    data = b""
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name == "file":
                data = await value.read()
            # A custom "thumbnail" (Mastodon's, for audio and video) has nothing to stand for here: images make
            # their own preview.
        else:
            fields[name] = reject_nul(name, value)
    return data, fields


async def _upload(request: Request, token: TokenInfo, services: Upstreams) -> Response:
    data, fields = await _upload_form(request, media.MAX_IMAGE_BYTES + FORM_OVERHEAD_BYTES)
    if not data:
        raise ApiError(422, "Validation failed: File can't be blank")
    description = media.check_description(fields.get("description", ""))
    params = {"description": description}
    if fields.get("focus"):
        x, y = media.parse_focus(fields["focus"])
        params["focus"] = f"{x},{y}"
    # The file goes on as the body, unparsed: the post service decodes it (services/post/media.py).
    return passthrough(await services.post.call("POST", "/internal/media", token=token, params=params, content=data,
                                                headers={"Content-Type": "application/octet-stream"}))


@router.post("/api/v2/media", openapi_extra={**UPLOAD_BODY, **doc.BEARER},
             responses={**doc.ok(doc.MediaAttachment), **doc.errors(400, 401, 403, 413, 422)})
async def upload_v2(request: Request, token: MediaWriter, services: Services) -> Response:
    """Upload an image (``file``: JPEG, PNG, WebP or GIF, 16 MB at most) with its ``description`` (1,500
    characters at most) and ``focus`` (``x,y`` from -1.0 to 1.0). Decoded before the answer, so the
    MediaAttachment answered has its ``url`` (200, never 202); its id goes in a status's ``media_ids[]``."""
    return await _upload(request, token, services)


@router.post("/api/v1/media", openapi_extra={**UPLOAD_BODY, **doc.BEARER},
             responses={**doc.ok(doc.MediaAttachment), **doc.errors(400, 401, 403, 413, 422)})
async def upload_v1(request: Request, token: MediaWriter, services: Services) -> Response:
    """As ``POST /api/v2/media`` (Mastodon's older path, which older clients use)."""
    return await _upload(request, token, services)


@router.get("/api/v1/media/{media_id}", openapi_extra=doc.BEARER,
            responses={**doc.ok(doc.MediaAttachment), **doc.errors(401, 403, 404)})
async def show(media_id: str, token: MediaWriter, services: Services) -> Response:
    """One of the account's own attachments (anyone else's is a 404)."""
    return passthrough(await services.post.call("GET", f"/internal/media/{record_id(media_id)}", token=token))


@router.put("/api/v1/media/{media_id}", openapi_extra={**CHANGE_BODY, **doc.BEARER},
            responses={**doc.ok(doc.MediaAttachment), **doc.errors(400, 401, 403, 404, 413, 415, 422)})
async def change(media_id: str, request: Request, token: MediaWriter, services: Services,
                 settings: Settings) -> Response:
    """A new ``description`` or ``focus`` for an attachment no status shows yet (one that a status shows is a
    404, as on Mastodon: it changes with an edit of the status)."""
    target = record_id(media_id)
    given = await read_params(request, settings.max_body_bytes)
    body: dict[str, Any] = {}
    description = optional_str(given, "description")
    if description is not None:
        body["description"] = media.check_description(description)
    focus = optional_str(given, "focus")
    if focus:
        x, y = media.parse_focus(focus)
        body["focus"] = f"{x},{y}"
    return passthrough(await services.post.call("PUT", f"/internal/media/{target}", token=token, json=body))


@router.delete("/api/v1/media/{media_id}", openapi_extra=doc.BEARER,
               responses={**doc.ok(dict[str, Any], "Deleted"), **doc.errors(401, 403, 404, 422)})
async def delete(media_id: str, request: Request, token: MediaWriter, services: Services) -> Response:
    """Delete an attachment no status shows (one that a status shows is a 422)."""
    target = record_id(media_id)
    answer = await services.post.call("DELETE", f"/internal/media/{target}", token=token)
    if answer.status_code == 200:
        media_files(request).forget(f"{media.PATH_PREFIX}/{target}/")
    return passthrough(answer)


def media_files(request: Request) -> MediaFiles:
    """This gateway's copies of attachments' files."""
    files: MediaFiles = request.app.state.media_files
    return files


@router.get(media.PATH_PREFIX + "/{media_id}/{name}", responses={
    200: {"description": "The file", "content": {kind: {} for kind in media.IMAGE_TYPES}}, **doc.errors(404)})
async def media_file(media_id: str, name: str, request: Request, services: Services) -> Response:
    """An attachment's file (``original.<ext>``, ``small.<ext>``, as its ``url`` and ``preview_url`` name them):
    public, as Mastodon's are, and cached for good; small ones kept in this process a while
    (services/gateway/media_files.py)."""
    if not FILE_NAME.fullmatch(name):
        raise ApiError(404, "Record not found")
    target = record_id(media_id)
    path = f"{media.PATH_PREFIX}/{target}/{name}"
    files = media_files(request)
    kept = files.get(path)
    if kept is None:
        answer = await services.post.call("GET", f"/internal/media/{target}/files/{name}")
        if answer.status_code != 200:
            return passthrough(answer)
        files.put(path, answer.content, answer.headers.get("content-type", "application/octet-stream"))
        return passthrough(answer, {"Cache-Control": FILES_CACHE})
    return Response(kept.data, media_type=kept.content_type, headers={"Cache-Control": FILES_CACHE})

"""Reading request parameters the way Mastodon clients send them: form-encoded, multipart or JSON bodies
(Mastodon.py sends forms, toot sends JSON), with ``name[]`` meaning a list."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from fastapi import Request
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException

from kicau import hot_routes
from kicau.web import ApiError, flag

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# How many fields a form body may hold (Starlette's default): the body's size is bounded apart, and a documented
# body (a list's 100 account ids, beside any other fields a client adds) must fit.
MAX_FORM_FIELDS = 1000


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes whether or not a Content-Length was sent."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, f"Request body is larger than {limit} bytes")
        except ValueError as exc:
            raise ApiError(400, "Invalid Content-Length") from exc
    return await hot_routes.read_body(request.receive, limit)


# ``name[][field]``: a list of objects as Rails reads a form (``media_attributes[][id]=1&...[][description]=``).
_LIST_OF_OBJECTS = re.compile(r"([^\[\]]+)\[\]\[([^\[\]]+)\]")


def _flatten(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """Form fields as one dict: ``name[]`` a list; ``name[][field]`` a list of objects, a field already given in
    the last one starting the next (Rails's reading, which Mastodon's clients write for)."""
    params: dict[str, Any] = {}
    for key, value in items:
        if key.endswith("[]"):
            params.setdefault(key[:-2], []).append(value)
        elif (part := _LIST_OF_OBJECTS.fullmatch(key)) is not None:
            objects = params.setdefault(part.group(1), [])
            if not isinstance(objects, list):
                continue  # ``name`` given plainly too: left for the route to refuse
            if not objects or not isinstance(objects[-1], dict) or part.group(2) in objects[-1]:
                objects.append({})
            objects[-1][part.group(2)] = value
        else:
            params[key] = value
    return params


async def read_params(request: Request, limit: int) -> dict[str, Any]:
    """Body parameters merged over query parameters (Mastodon accepts either)."""
    # Most bodies come without a query string: skip building Starlette's QueryParams for nothing.
    params = _flatten(list(request.query_params.multi_items())) if request.scope.get("query_string") else {}
    body = await read_body(request, limit)
    if not body:
        return _without_nul(params)
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            decoded = msgspec.json.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec raises the latter for bad UTF-8
            raise ApiError(400, "The request body is not valid JSON") from exc
        if not isinstance(decoded, dict):
            raise ApiError(422, "The request body must be a JSON object")
        params.update({k[:-2] if k.endswith("[]") else k: v for k, v in decoded.items()})
        return _without_nul(params)
    if content_type in FORM_TYPES:
        # The body is already read and bounded; hand Starlette a request over those bytes to parse it.
        request._body = body
        form: FormData = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
        params.update(_flatten([(k, v) for k, v in form.multi_items() if isinstance(v, str)]))
        return _without_nul(params)
    raise ApiError(415, f"Unsupported content type: {content_type or 'none'}")


async def read_oauth_params(request: Request, limit: int) -> dict[str, Any]:
    """``read_params`` for OAuth's own endpoints (token, revocation, authorization), which answer a malformed request
    with 400, OAuth's ``invalid_request`` (RFC 6749 4.1.2.1 and 5.2, RFC 7009 2.2.1), where the API's routes
    answer 422."""
    try:
        return await read_params(request, limit)
    except ApiError as error:
        if error.status_code != 422:
            raise
        raise ApiError(400, error.message, error.headers) from None


async def read_params_and_files(request: Request, limit: int, file_bytes: int,
                                files: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """``read_params``, and from a multipart body the named ``files`` too (each at most ``file_bytes``, a 422
    beyond; an empty part, as clients send for a file not chosen, is no file). Other bodies are bounded by
    ``limit`` and carry no files."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "multipart/form-data":
        return await read_params(request, limit), {}
    params = _flatten(list(request.query_params.multi_items())) if request.scope.get("query_string") else {}
    request._body = await read_body(request, limit + len(files) * file_bytes)
    try:
        form: FormData = await request.form(max_files=len(files), max_fields=MAX_FORM_FIELDS)
    except MultiPartException as exc:
        raise ApiError(400, f"The multipart body could not be read: {exc.message}") from None
    found: dict[str, bytes] = {}
    fields: list[tuple[str, Any]] = []
    for name, value in form.multi_items():
        if isinstance(value, str):
            fields.append((name, value))
            continue
        if name not in files:
            raise ApiError(422, f"Validation failed: {name[:40]} takes no file")
        data = await value.read()
        if len(data) > file_bytes:
            raise ApiError(422, f"Validation failed: {name} must be less than {file_bytes // 2**20} MB")
        if data:
            found[name] = data
    params.update(_flatten(fields))
    return _without_nul(params), found


def reject_nul(name: str, value: str) -> str:
    """NUL is never part of a valid parameter; stores would truncate or refuse it, so refuse it first."""
    if "\x00" in value:
        raise ApiError(422, f"Validation failed: {name} must not contain NUL characters")
    return value


def _without_nul(params: dict[str, Any]) -> dict[str, Any]:
    def walk(name: str, value: Any) -> None:
        if isinstance(value, str):
            reject_nul(name, value)
        elif isinstance(value, list):
            for item in value:
                walk(name, item)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(name, key)
                walk(name, item)

    for key, value in params.items():
        walk(reject_nul("parameter name", key), value)
    return params


def optional_str(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(422, f"Validation failed: {name} must be a string")
    return value


def optional_flag(params: dict[str, Any], name: str) -> bool | None:
    """A boolean parameter (None when absent): anything but a boolean, 0, 1 or one of Rails' words is a 422."""
    value = params.get(name)
    return None if value is None else flag(value, name)


def nested(params: dict[str, Any], *path: str) -> Any:
    """A parameter under ``path`` as a form spells it (``subscription[keys][auth]``) or JSON nests it
    (``{"subscription": {"keys": {"auth": ...}}}``); None when absent."""
    flat = path[0] + "".join(f"[{name}]" for name in path[1:])
    if flat in params:
        return params[flat]
    value: Any = params
    for name in path:
        if not isinstance(value, dict) or name not in value:
            return None
        value = value[name]
    return value


def indexed_objects(params: dict[str, Any], name: str, fields: str, problem: str) -> list[Any] | None:
    """A list of objects however a client sends it, in index order; None when not given. JSON nests a list, or an
    object keyed by index; a form spells ``name[][field]`` (``_flatten`` made that a list) or ``name[0][field]``
    (``fields``: a pattern of the field names taken). ``problem`` is the 422's message for a shape that is none
    of these; a form field under ``name`` that names another field is a 422 of its own. The items are the
    caller's to check (each is whatever the client sent)."""
    by_index: dict[int, Any] = {}
    given = params.get(name)
    if isinstance(given, list):
        by_index.update(enumerate(given))
    elif isinstance(given, dict) and all(str(index).isdigit() for index in given):
        by_index.update((int(index), value) for index, value in given.items())
    elif given is not None:
        raise ApiError(422, problem)
    spelled = re.compile(rf"{re.escape(name)}\[(\d{{1,3}})\]\[({fields})\]")
    for key, value in params.items():
        part = spelled.fullmatch(key)
        if part is not None:
            item = by_index.setdefault(int(part.group(1)), {})
            if not isinstance(item, dict):
                raise ApiError(422, problem)
            item[part.group(2)] = value
        elif key.startswith(f"{name}["):
            raise ApiError(422, f"Validation failed: {key[:60]} is not a field of {name}")
    if given is None and not by_index:
        return None
    return [by_index[index] for index in sorted(by_index)]

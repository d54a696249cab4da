"""Calls from the gateway to the internal services over pooled keep-alive connections.

An upstream's answer is passed through as bytes (status, body, content type): the services already render
Mastodon entities, so the gateway never decodes and re-encodes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from fastapi.responses import Response

from kicau.tokens import TokenInfo
from kicau.web import ACCOUNT_HEADER, CLIENT_HEADER, SCOPES_HEADER, ApiError


class Upstream:
    def __init__(self, base_url: str, *, timeout: float, connections: int) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout, connect=2.0),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: TokenInfo | None = None,
        json: Any = None,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        sent: dict[str, str] = dict(headers or {})
        if token is not None:
            if token.account_id is not None:
                sent[ACCOUNT_HEADER] = str(token.account_id)
            sent[CLIENT_HEADER] = token.client_id
            sent[SCOPES_HEADER] = " ".join(token.scopes)
        try:
            return await self._client.request(method, path, json=json, params=params, headers=sent)
        except httpx.HTTPError as exc:
            raise ApiError(503, "Service temporarily unavailable, try again") from exc


def passthrough(upstream: httpx.Response, extra_headers: Mapping[str, str] | None = None) -> Response:
    headers = dict(extra_headers or {})
    return Response(
        content=upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type", "application/json"),
        headers=headers,
    )


def raise_for_error(upstream: httpx.Response) -> None:
    """Turn an upstream error answer into the same error for the client."""
    if upstream.status_code >= 400:
        try:
            message = str(upstream.json().get("error") or "Request failed")
        except ValueError:
            message = "Request failed"
        status = upstream.status_code if upstream.status_code < 500 else 503
        raise ApiError(status, message)

"""Which requests a service's hot routes take (kicau/hot_routes.py): exact paths, and paths with one parameter
segment, whose value lands in ``scope["path_params"]`` as Starlette's router puts it there."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import pytest
from fastapi.responses import StreamingResponse
from prometheus_client import REGISTRY

from kicau.hot_routes import Answer, HotRoutes, ServiceApp
from kicau.internal_rpc import answer_call
from kicau.web import ApiError


async def _nothing(scope: Any, receive: Any) -> Answer:
    return Answer(b"")


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path}


def test_exact_and_templated_paths() -> None:
    routes = HotRoutes("test-hot-routes")
    routes.add("GET", "/api/v1/timelines/home", _nothing)
    routes.add("GET", "/api/v1/accounts/{account_id}/statuses", _nothing)
    home = routes.find(_scope("GET", "/api/v1/timelines/home"))
    assert home is not None and home.route == "/api/v1/timelines/home"

    scope = _scope("GET", "/api/v1/accounts/123/statuses")
    found = routes.find(scope)
    assert found is not None and found.route == "/api/v1/accounts/{account_id}/statuses"
    assert scope["path_params"] == {"account_id": "123"}
    weird = _scope("GET", "/api/v1/accounts/not-an-id/statuses")
    assert routes.find(weird) is not None and weird["path_params"] == {"account_id": "not-an-id"}

    for method, path in [("POST", "/api/v1/accounts/1/statuses"), ("GET", "/api/v1/accounts//statuses"),
                         ("GET", "/api/v1/accounts/1/2/statuses"), ("GET", "/api/v1/accounts/1/statuses/x"),
                         ("GET", "/api/v1/accounts/1"), ("GET", "/api/v1/timelines/home/")]:
        assert routes.find(_scope(method, path)) is None, (method, path)
    assert routes.find({"type": "websocket", "path": "/api/v1/timelines/home"}) is None


def test_a_path_holds_at_most_one_parameter() -> None:
    routes = HotRoutes("test-hot-routes")
    with pytest.raises(ValueError):
        routes.add("GET", "/a/{x}/b/{y}", _nothing)
    with pytest.raises(ValueError):
        routes.add("GET", "/a/{}/b", _nothing)


async def test_a_stream_route_runs_its_response_with_the_servers_send() -> None:
    """A hot stream (``add_stream``) answers before the application's own routes (this one has none for the path,
    so the framework would answer 404): its response is run with the server's ``send``, body after body; a refusal
    raised while opening it is a Mastodon error; both are counted under the route. An internal call is not answered
    by the opener directly (``HotRoutes.answer`` takes whole answers only) but through the whole application."""
    app = ServiceApp(service="test-hot-streams")

    async def opener(scope: Any, receive: Any) -> StreamingResponse:
        if scope["query_string"] == b"refuse":
            raise ApiError(403, "This action is outside the authorized scopes")

        async def chunks() -> AsyncIterator[bytes]:
            yield b"data: one\n\n"
            yield b"data: two\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    app.hot_routes.add_stream("GET", "/stream", opener)

    async def connected() -> dict[str, Any]:  # a client that stays until the answer ends
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def exchange(query: bytes) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(dict(message))

        await app({"type": "http", "method": "GET", "path": "/stream", "query_string": query, "headers": []},
                  connected, send)
        return sent

    before = _counted("test-hot-streams", "/stream", "200"), _counted("test-hot-streams", "/stream", "403")
    streamed = await exchange(b"")
    assert streamed[0]["type"] == "http.response.start" and streamed[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in streamed[1:]) == b"data: one\n\ndata: two\n\n"
    assert streamed[-1].get("more_body", False) is False
    refused = await exchange(b"refuse")
    assert refused[0]["status"] == 403
    assert json.loads(refused[1]["body"]) == {"error": "This action is outside the authorized scopes"}
    assert (_counted("test-hot-streams", "/stream", "200"), _counted("test-hot-streams", "/stream", "403")) == (
        before[0] + 1, before[1] + 1)

    called = await answer_call(app, {"type": "http", "method": "GET", "path": "/stream", "query_string": b"",
                                     "headers": []}, b"")
    # Through the whole application, whose first step serves the stream: its whole body, as for any streaming answer.
    assert (called.status, called.body) == (200, b"data: one\n\ndata: two\n\n")


def _counted(service: str, route: str, status: str) -> float:
    value = REGISTRY.get_sample_value("kicau_http_requests_total", {"service": service, "method": "GET",
                                                                    "route": route, "status": status})
    return value or 0.0

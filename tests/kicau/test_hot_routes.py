"""Which requests a service's hot routes take (kicau/hot_routes.py): exact paths, and paths with one parameter
segment, whose value lands in ``scope["path_params"]`` as Starlette's router puts it there."""

from __future__ import annotations

from typing import Any

import pytest

from kicau.hot_routes import Answer, HotRoutes


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

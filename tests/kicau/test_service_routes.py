"""Every service's routes are reachable: no route is taken by one declared before it whose path parameters match
its path (Starlette tries routes in order). The graph service's ``/internal/accounts/{id}/{direction}`` once took
``/internal/accounts/{id}/filters``, and every stream opened after its reader made a filter went unfiltered."""

from __future__ import annotations

import importlib
import re

import pytest
from starlette.routing import Route

SERVICES = ("graph", "post", "timeline", "gateway", "fanout", "push")


@pytest.mark.parametrize("service", SERVICES)
def test_no_route_is_shadowed_by_an_earlier_one(service: str) -> None:
    app = importlib.import_module(f"services.{service}.app").app
    routes = [(r, r.methods) for r in app.routes if isinstance(r, Route) and r.methods]
    assert routes, f"{service} declares no routes"
    shadowed = []
    for later_index, (later, methods) in enumerate(routes):
        sample = re.sub(r"\{[^}]+\}", "123", later.path)
        for earlier, earlier_methods in routes[:later_index]:
            if earlier.path != later.path and earlier_methods & methods and earlier.path_regex.match(sample):
                shadowed.append(f"{sorted(methods)} {later.path} is taken by {earlier.path}")
    assert shadowed == []

"""Every service's routes are reachable and every internal call names one.

Starlette tries an application's routes in the order they were declared, and a service's hot routes
(kicau/hot_routes.py) are tried before all of them: a route whose path parameter matches a later route's path takes
its requests. The graph service's ``/internal/accounts/{id}/{direction}`` once took
``/internal/accounts/{id}/filters``, and every stream opened after its reader made a filter went unfiltered. And a
call to an internal path no route declares answers 404 only when it is made."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from starlette.routing import Route

from kicau.hot_routes import HotRoutes

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("graph", "post", "timeline", "gateway", "fanout", "push")
CALLED = ("graph", "post", "timeline")  # the services others call (services/gateway/upstreams.py and kin)


def _declared(service: str) -> tuple[list[tuple[str, set[str], re.Pattern[str]]], HotRoutes]:
    app = importlib.import_module(f"services.{service}.app").app
    routes = [(r.path, set(r.methods), r.path_regex) for r in app.routes if isinstance(r, Route) and r.methods]
    hot = getattr(app, "hot_routes", None)  # a plain FastAPI application has none
    return routes, hot if isinstance(hot, HotRoutes) else HotRoutes(service)


def _sample(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "123", template)


@pytest.mark.parametrize("service", SERVICES)
def test_no_route_is_taken_by_another(service: str) -> None:
    routes, hot = _declared(service)
    assert routes, f"{service} declares no routes"
    taken = []
    for index, (path, methods, _) in enumerate(routes):
        for method in methods:
            by_hot = hot.taking(method, _sample(path))
            if by_hot is not None and by_hot != path:
                taken.append(f"{method} {path} is taken by the hot route {by_hot}")
        for earlier, earlier_methods, pattern in routes[:index]:
            if earlier != path and earlier_methods & methods and pattern.match(_sample(path)):
                taken.append(f"{sorted(methods)} {path} is taken by {earlier}")
    for method, path in hot.declared():
        if hot.taking(method, _sample(path)) != path:
            taken.append(f"the hot route {method} {path} is taken by {hot.taking(method, _sample(path))}")
    assert taken == []


def _segments(path: str) -> list[str | None]:
    """A path's segments, None for a parameter (``{name}``, or an f-string's placeholder)."""
    return [None if "{" in part else part for part in path.strip("/").split("/")]


def _may_match(call: str, template: str) -> bool:
    called, declared = _segments(call), _segments(template)
    return len(called) == len(declared) and all(
        a is None or b is None or a == b for a, b in zip(called, declared, strict=True))


def _internal_calls() -> list[tuple[str, str, str, str]]:
    """(where, service called, method, path) of every ``<x>.graph|post|timeline.call("METHOD", path)`` in
    services/, f-strings' placeholders as ``{}``."""
    found = []
    for source in sorted((ROOT / "services").rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "call"
                    and isinstance(node.func.value, ast.Attribute) and node.func.value.attr in CALLED
                    and len(node.args) >= 2 and isinstance(node.args[0], ast.Constant)):
                continue
            target = node.args[1]
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                path = target.value
            elif isinstance(target, ast.JoinedStr):
                path = "".join(str(v.value) if isinstance(v, ast.Constant) else "{}" for v in target.values)
            else:
                continue  # a path made elsewhere: its route is checked where it is made
            where = f"{source.relative_to(ROOT)}:{node.lineno}"
            found.append((where, node.func.value.attr, str(node.args[0].value), path))
    return found


def test_every_internal_call_names_a_route_of_the_service_called() -> None:
    calls = _internal_calls()
    assert len(calls) > 50, "the scan found too few calls to be looking in the right place"
    declared = {service: _declared(service) for service in CALLED}
    missing = []
    for where, service, method, path in calls:
        routes, hot = declared[service]
        templates = [p for p, methods, _ in routes if method in methods]
        templates += [p for m, p in hot.declared() if m == method]
        if not any(_may_match(path, template) for template in templates):
            missing.append(f"{where}: {method} {path} on the {service} service")
    assert missing == []

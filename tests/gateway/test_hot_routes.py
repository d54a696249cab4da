"""The home timeline and an account's statuses as hot routes (kicau/hot_routes.py) in the gateway and the timeline
service: answered without the framework's layers, they must still give everything those layers gave: the request
metrics of both services (named by route template, never by id), the rate-limit headers on every answer (errors
too), Mastodon errors and the Link header. The last tests compare them, answer for answer, with a gateway that
serves the same routes through FastAPI; the SSE streams too, which the gateway serves as hot streams."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.routing import APIRoute
from prometheus_client.parser import text_string_to_metric_families

from kicau.hot_routes import HotRoutes
from kicau.settings import CommonSettings
from services.gateway.app import add_hot_routes
from services.gateway.routes import streaming
from stack.gateways import Gateway, spawned_gateway
from tests.conftest import User
from tests.gateway.test_streaming import read_events, warm_until_seen

ROUTE = "/api/v1/timelines/home"


def requests_counted(url: str, service: str, route: str, status: int) -> float:
    wanted = {"service": service, "method": "GET", "route": route, "status": str(status)}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "kicau_http_requests_total" and sample.labels == wanted:
                return float(sample.value)
    return 0.0


def test_home_reads_are_counted_by_both_services(http: httpx.Client, make_user: Callable[..., User]) -> None:
    reader = make_user("hot")
    timeline_url = CommonSettings().timeline_url
    before = (requests_counted(str(http.base_url).rstrip("/"), "gateway", ROUTE, 200),
              requests_counted(timeline_url, "timeline", "/internal/timelines/home", 200),
              requests_counted(str(http.base_url).rstrip("/"), "gateway", ROUTE, 400))
    for _ in range(3):
        assert http.get(ROUTE, headers=reader.auth).status_code == 200
    assert http.get(ROUTE, params={"limit": "many"}, headers=reader.auth).status_code == 400
    after = (requests_counted(str(http.base_url).rstrip("/"), "gateway", ROUTE, 200),
             requests_counted(timeline_url, "timeline", "/internal/timelines/home", 200),
             requests_counted(str(http.base_url).rstrip("/"), "gateway", ROUTE, 400))
    assert after[0] - before[0] >= 3 and after[1] - before[1] >= 3 and after[2] - before[2] >= 1
    latency = http.get("/metrics").text
    assert f'kicau_http_request_duration_seconds_count{{method="GET",route="{ROUTE}",service="gateway"}}' in latency


def test_every_home_answer_carries_the_rate_limit_headers(http: httpx.Client, make_user: Callable[..., User]) -> None:
    reader = make_user("hot")
    ok = http.get(ROUTE, headers=reader.auth)
    bad = http.get(ROUTE, params={"max_id": "not-an-id"}, headers=reader.auth)
    assert ok.status_code == 200 and bad.status_code == 400
    assert bad.json() == {"error": "max_id must be a status id"}
    assert bad.headers["content-type"] == "application/json"
    for answer in (ok, bad):
        assert int(answer.headers["x-ratelimit-limit"]) >= 1
        assert "x-ratelimit-remaining" in answer.headers and answer.headers["x-ratelimit-reset"].endswith("Z")
    assert int(bad.headers["x-ratelimit-remaining"]) == int(ok.headers["x-ratelimit-remaining"]) - 1


def test_home_page_links_keep_the_other_parameters(http: httpx.Client, make_user: Callable[..., User]) -> None:
    reader = make_user("hot")
    for text in ("one", "two", "three"):
        assert http.post("/api/v1/statuses", headers=reader.auth, data={"status": text}).status_code == 200
    page = http.get(ROUTE, params={"limit": 2, "local": "true"}, headers=reader.auth)
    assert page.status_code == 200 and len(page.json()) == 2
    links = dict((rel, url) for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', page.headers["link"]))
    older = parse_qs(urlsplit(links["next"]).query)
    assert older == {"limit": ["2"], "local": ["true"], "max_id": [page.json()[-1]["id"]]}
    assert parse_qs(urlsplit(links["prev"]).query)["min_id"] == [page.json()[0]["id"]]
    following = urlsplit(links["next"])
    rest = http.get(f"{following.path}?{following.query}", headers=reader.auth)
    assert [s["content"] for s in rest.json()] == ["<p>one</p>"]


@pytest.fixture(scope="module")
def framework_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The same gateway with the hot route switched off: every home read goes through FastAPI's layers."""
    with spawned_gateway(tmp_path_factory.mktemp("gateway-no-hot-routes"), hot_routes="false") as gateway:
        yield gateway


def test_the_hot_route_answers_exactly_as_the_framework_route(http: httpx.Client, framework_gateway: Gateway,
                                                              make_user: Callable[..., User]) -> None:
    reader, other = make_user("hot"), make_user("hot")
    for text in ("one", "two", "three"):
        assert http.post("/api/v1/statuses", headers=reader.auth, data={"status": text}).status_code == 200
    write_only = http.post("/oauth/token", data={
        "grant_type": "client_credentials", **_app(http), "scope": "write"}).json()["access_token"]
    cases: list[tuple[dict[str, str], dict[str, str]]] = [
        ({}, reader.auth), ({"limit": "2", "local": "true"}, reader.auth), ({"limit": "1", "min_id": "1"}, reader.auth),
        ({"limit": "many"}, reader.auth), ({"max_id": "x"}, reader.auth), ({"since_id": "-1"}, reader.auth),
        ({}, {}), ({}, {"Authorization": "Bearer not-a-token"}), ({}, {"Authorization": "Basic abc"}),
        ({}, {"Authorization": f"Bearer {write_only}"}), ({}, other.auth),
    ]
    with httpx.Client(base_url=framework_gateway.url, timeout=30) as framework:
        for params, headers in cases:
            hot, plain = http.get(ROUTE, params=params, headers=headers), framework.get(ROUTE, params=params,
                                                                                         headers=headers)
            assert (hot.status_code, hot.content) == (plain.status_code, plain.content), (params, headers)
            assert hot.headers["content-type"] == plain.headers["content-type"]
            # Links name the stack's public URL in both; rate-limit headers are present or absent in both.
            assert hot.headers.get("link") == plain.headers.get("link")
            assert ("x-ratelimit-limit" in hot.headers) == ("x-ratelimit-limit" in plain.headers), (params, headers)
            assert hot.status_code < 500


def test_account_statuses_answer_exactly_as_the_framework_route(http: httpx.Client, framework_gateway: Gateway,
                                                                make_user: Callable[..., User]) -> None:
    author, reader = make_user("hotacct"), make_user("hotacct")
    for text in ("one", "two", "three"):
        assert http.post("/api/v1/statuses", headers=author.auth, data={"status": text}).status_code == 200
    route = "/api/v1/accounts/{account_id}/statuses"
    gateway_url = str(http.base_url).rstrip("/")
    timeline_url = CommonSettings().timeline_url
    internal = "/internal/accounts/{account_id}/statuses"

    def counts() -> tuple[float, float, float]:
        return (requests_counted(gateway_url, "gateway", route, 200),
                requests_counted(gateway_url, "gateway", route, 404),
                requests_counted(timeline_url, "timeline", internal, 200))

    before = counts()
    missing = str(int(author.id) + 10**12)
    cases: list[tuple[str, dict[str, str], dict[str, str]]] = [
        (author.id, {}, {}), (author.id, {}, reader.auth), (author.id, {"limit": "2", "local": "true"}, {}),
        (author.id, {"limit": "1", "min_id": "1"}, {}), (author.id, {"limit": "many"}, {}),
        (author.id, {"max_id": "x"}, {}), (author.id, {"since_id": "-1"}, {}),
        (author.id, {}, {"Authorization": "Bearer not-a-token"}), (missing, {}, {}), ("not-an-id", {}, {}),
        ("99999999999999999999999", {}, {}), ("-5", {}, {}),
    ]
    with httpx.Client(base_url=framework_gateway.url, timeout=30) as framework:
        for account, params, headers in cases:
            path = f"/api/v1/accounts/{account}/statuses"
            hot, plain = http.get(path, params=params, headers=headers), framework.get(path, params=params,
                                                                                       headers=headers)
            assert (hot.status_code, hot.content) == (plain.status_code, plain.content), (account, params, headers)
            assert hot.headers["content-type"] == plain.headers["content-type"]
            assert hot.headers.get("link") == plain.headers.get("link")
            assert ("x-ratelimit-limit" in hot.headers) == ("x-ratelimit-limit" in plain.headers)
            assert hot.status_code < 500
    page = http.get(f"/api/v1/accounts/{author.id}/statuses", params={"limit": 2})
    assert [s["content"] for s in page.json()] == ["<p>three</p>", "<p>two</p>"]
    assert http.get(f"/api/v1/accounts/{missing}/statuses").json() == {"error": "Record not found"}
    # A token is optional, but one given must be valid (it says who reads: kicau/visibility.py).
    refused = http.get(f"/api/v1/accounts/{author.id}/statuses", headers={"Authorization": "Bearer not-a-token"})
    assert (refused.status_code, refused.json()) == (401, {"error": "The access token is invalid"})
    after = counts()
    assert after[0] - before[0] >= 5 and after[1] - before[1] >= 4 and after[2] - before[2] >= 5
    assert author.id not in http.get("/metrics").text  # routes are counted by template, never by id


def _app(http: httpx.Client) -> dict[str, str]:
    created = http.post("/api/v1/apps", data={"client_name": "hot-routes", "scopes": "read write"}).json()
    return {"client_id": created["client_id"], "client_secret": created["client_secret"]}


def test_posting_through_the_hot_route_answers_exactly_as_the_framework_route(
        http: httpx.Client, framework_gateway: Gateway, make_user: Callable[..., User]) -> None:
    author = make_user("hot")
    read_only = http.post("/oauth/token", data={
        "grant_type": "password", **_app(http), "username": author.email, "password": author.password,
        "scope": "read"}).json()["access_token"]
    json_header = {**author.auth, "Content-Type": "application/json"}
    refused: list[tuple[dict[str, str], bytes | None, dict[str, str] | None]] = [
        (author.auth, None, None),                                              # no status at all
        (author.auth, None, {"status": "   "}),                                 # blank
        (author.auth, None, {"status": "x" * 501}),                             # too long
        (author.auth, None, {"status": "nul \x00 inside"}),
        (author.auth, None, {"status": "reply", "in_reply_to_id": "not-an-id"}),
        (author.auth, None, {"status": "reply", "in_reply_to_id": "1"}),         # no such status
        (author.auth, None, {"status": "odd", "visibility": "everyone"}),
        (json_header, b"{not json", None),
        (json_header, b"[1, 2]", None),
        ({**author.auth, "Content-Type": "text/plain"}, b"status=hi", None),
        ({**author.auth, "Content-Type": "multipart/form-data"}, b"no boundary", None),
        ({**author.auth, "Content-Type": "multipart/form-data; boundary=x"}, b"--x\r\ngarbage", None),
        ({**author.auth, "Content-Type": "application/json"}, b'{"status": "' + b"y" * 70_000 + b'"}', None),
        ({}, None, {"status": "anonymous"}),
        ({"Authorization": f"Bearer {read_only}"}, None, {"status": "read-only token"}),
        ({**author.auth, "Idempotency-Key": "x" * 129}, None, {"status": "long key"}),
    ]
    with httpx.Client(base_url=framework_gateway.url, timeout=30) as framework:
        for headers, content, data in refused:
            hot = http.post("/api/v1/statuses", headers=headers, content=content, data=data)
            plain = framework.post("/api/v1/statuses", headers=headers, content=content, data=data)
            assert (hot.status_code, hot.content) == (plain.status_code, plain.content), (headers, data)
            assert 400 <= hot.status_code < 500, (hot.status_code, hot.text)
            assert ("x-ratelimit-limit" in hot.headers) == ("x-ratelimit-limit" in plain.headers)
        # Accepted the same way as a form, as JSON and as multipart; one Idempotency-Key across both routes
        # names one status.
        accepted = [
            http.post("/api/v1/statuses", headers=author.auth, data={"status": "form", "visibility": "unlisted"}),
            framework.post("/api/v1/statuses", headers=author.auth, data={"status": "form", "visibility": "unlisted"}),
            http.post("/api/v1/statuses", headers=author.auth, json={"status": "json", "spoiler_text": "cw"}),
            framework.post("/api/v1/statuses", headers=author.auth, json={"status": "json", "spoiler_text": "cw"}),
            http.post("/api/v1/statuses", headers=author.auth, files={"status": (None, "multipart")}),
            framework.post("/api/v1/statuses", headers=author.auth, files={"status": (None, "multipart")}),
        ]
        # Parameters in the query string count too (Mastodon reads either), under the body's.
        for route in (http, framework):
            accepted.append(route.post("/api/v1/statuses?status=query&visibility=private", headers=author.auth))
            accepted.append(route.post("/api/v1/statuses?status=query&visibility=private", headers=author.auth,
                                       json={"status": "body"}))
        assert [a.status_code for a in accepted] == [200] * 10, [a.text for a in accepted]
        assert [(a.json()["content"], a.json()["visibility"]) for a in accepted[6:]] == [
            ("<p>query</p>", "private"), ("<p>body</p>", "private")] * 2
        shown = [(a.json()["content"], a.json()["visibility"], a.json()["spoiler_text"]) for a in accepted[:6]]
        assert shown[0::2] == shown[1::2]
        keyed = {**author.auth, "Idempotency-Key": "hot-and-plain"}
        first = http.post("/api/v1/statuses", headers=keyed, data={"status": "once"})
        again = framework.post("/api/v1/statuses", headers=keyed, data={"status": "once"})
        assert first.status_code == again.status_code == 200
        assert first.json()["id"] == again.json()["id"]
    assert http.get(f"/api/v1/accounts/{author.id}").json()["statuses_count"] == 11


def test_streams_answer_exactly_as_the_framework_routes(http: httpx.Client, gateway_url: str,
                                                        framework_gateway: Gateway,
                                                        make_user: Callable[..., User]) -> None:
    """Every SSE stream is served as a hot stream (``streaming.SSE_ROUTES``): its refusals are the framework
    route's to the byte, an open stream has the same head and carries the same statuses, and it is counted under
    its route template as it opens."""
    reader, author = make_user("hs"), make_user("hs")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth).status_code == 200
    write_only = http.post("/oauth/token", data={
        "grant_type": "password", **_app(http), "username": reader.username, "password": reader.password,
        "scope": "write"}).json()["access_token"]
    refusals: list[tuple[str, dict[str, str], dict[str, str]]] = [
        ("/api/v1/streaming/user", {}, {}),
        ("/api/v1/streaming/user", {}, {"Authorization": "Bearer not-a-token"}),
        ("/api/v1/streaming/user", {}, {"Authorization": "Basic abc"}),
        ("/api/v1/streaming/user", {}, {"Authorization": f"Bearer {write_only}"}),
        ("/api/v1/streaming/user", {"last_event_id": "x"}, reader.auth),
        ("/api/v1/streaming/public", {"access_token": "not-a-token"}, {}),
        ("/api/v1/streaming/hashtag", {}, reader.auth),
        ("/api/v1/streaming/hashtag/local", {"tag": "not a tag!"}, reader.auth),
        ("/api/v1/streaming/list", {}, reader.auth),
        ("/api/v1/streaming/list", {"list": "x"}, reader.auth),
        ("/api/v1/streaming/list", {"list": "123456789"}, reader.auth),
        ("/api/v1/streaming/direct", {}, {}),
    ]
    with httpx.Client(base_url=framework_gateway.url, timeout=30) as framework:
        for path, params, headers in refusals:
            hot, plain = http.get(path, params=params, headers=headers), framework.get(path, params=params,
                                                                                    headers=headers)
            assert (hot.status_code, hot.content) == (plain.status_code, plain.content), (path, params, headers)
            assert 400 <= hot.status_code < 500 and "error" in hot.json(), (path, params, hot.text)
    route = "/api/v1/streaming/user"
    opened_before = requests_counted(gateway_url, "gateway", route, 200)
    timeout = httpx.Timeout(30, read=60)
    with httpx.Client(base_url=gateway_url, timeout=timeout) as hot_client, \
            httpx.Client(base_url=framework_gateway.url, timeout=timeout) as plain_client, \
            hot_client.stream("GET", route, headers=reader.auth) as hot, \
            plain_client.stream("GET", route, headers=reader.auth) as plain:
        assert hot.status_code == plain.status_code == 200
        for name in ("content-type", "cache-control", "x-accel-buffering", "transfer-encoding"):
            assert hot.headers.get(name) == plain.headers.get(name), name
        assert requests_counted(gateway_url, "gateway", route, 200) == opened_before + 1
        hot_lines, plain_lines = hot.iter_lines(), plain.iter_lines()
        warm_until_seen(gateway_url, author, hot_lines)
        warm_until_seen(gateway_url, author, plain_lines, text="warm-up too")
        posted = http.post("/api/v1/statuses", headers=author.auth, data={"status": "to both"}).json()["id"]
        # The hot stream also got the second warm-up's posts (one reader, two streams): each is read up to the status.
        hot_event, plain_event = _event_of(hot_lines, posted), _event_of(plain_lines, posted)
        assert hot_event == plain_event and hot_event["event"] == "update"


def _event_of(lines: Iterator[str], status_id: str) -> dict[str, str]:
    while True:
        event = read_events(lines, 1)[0]
        if event.get("id") == status_id:
            return event


def test_every_sse_route_is_a_hot_stream() -> None:
    """Every SSE stream the gateway declares (all its GET routes under /api/v1/streaming but the health check) is
    served as a hot stream: a stream route added later without joining ``SSE_ROUTES`` would fail here."""
    hot = HotRoutes("gateway-test-hot-streams")
    add_hot_routes(hot)
    declared = {route.path for route in streaming.router.routes if isinstance(route, APIRoute)
                and "GET" in (route.methods or ()) and route.path != "/api/v1/streaming/health"}
    assert declared and declared == set(streaming.SSE_ROUTES)
    for path in declared:
        taken = hot.find({"type": "http", "method": "GET", "path": path})
        assert taken is not None and taken.streams and taken.route == path
    assert hot.find({"type": "http", "method": "HEAD", "path": "/api/v1/streaming/user"}) is None  # the framework's

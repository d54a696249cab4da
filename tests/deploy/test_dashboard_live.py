"""deploy/grafana's dashboard read from a real Prometheus: the stack's own (stack/engines.py, ``Prometheus``), which
scrapes the running services with deploy/prometheus's jobs.

While an author posts every second to a follower whose user stream is open, every query of the dashboard (with
Grafana's variables filled in as Grafana fills them) is accepted by Prometheus, and the panels issue #6 asks for
show what the load did: statuses created and timeline entries written a second, consumer lag, open streams,
delivery percentiles, request rates and latencies per route. test_observability.py checks the same dashboard
without Prometheus (each query's metric and labels against kicau/metrics.py); this is what a user opening it sees.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import User, eventually
from tests.deploy.conftest import promtool
from tests.deploy.test_observability import DASHBOARD
from tests.gateway.test_streaming import keep_reading, status_of

# Grafana's $__rate_interval: the larger of four scrape intervals (5 s, the datasource's timeInterval) and the
# panel's interval plus one; a dashboard a few minutes wide on a screen gets about a minute.
RATE_INTERVAL = "1m"
ALL = ".*"  # the ``service`` variable's "All" (its allValue)
HOME = "/api/v1/timelines/home"
POSTS = "/api/v1/statuses"


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, query) of every target, with the variables replaced as Grafana replaces them."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"].replace("$__rate_interval", RATE_INTERVAL).replace("$service", ALL))
            for panel in dashboard["panels"] for target in panel.get("targets", []) if "expr" in target]


def by_title() -> dict[str, str]:
    """The query of each panel that has one alone."""
    titles = [title for title, _ in panel_queries()]
    return {title: expr for title, expr in panel_queries() if titles.count(title) == 1}


def query(prometheus: httpx.Client, expr: str) -> list[dict[str, Any]]:
    answer = prometheus.get("/api/v1/query", params={"query": expr})
    assert answer.status_code == 200, f"{expr}: {answer.text}"
    body = answer.json()
    assert body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def numbers(result: list[dict[str, Any]]) -> list[float]:
    """The values of an instant vector, NaN (a quantile of no observations) left out."""
    return [value for value in (float(series["value"][1]) for series in result) if not math.isnan(value)]


def test_prometheus_scrapes_every_kicau_service(prometheus: httpx.Client) -> None:
    jobs = {"gateway", "post", "timeline", "fanout", "graph", "push"}

    def all_up() -> bool:
        targets = prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]
        health = {target["labels"]["job"]: target["health"] for target in targets}
        assert jobs <= health.keys(), health
        assert all(health[job] == "up" for job in jobs), health
        return True

    eventually(all_up, timeout=30)


def test_the_service_variable_lists_the_services(prometheus: httpx.Client) -> None:
    answer = prometheus.get("/api/v1/label/service/values", params={"match[]": "kicau_http_requests_total"})
    assert answer.status_code == 200, answer.text
    assert {"gateway", "post", "timeline"} <= set(answer.json()["data"])


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.compose.yml"])
def test_promtool_accepts_the_scrape_configs(config: str) -> None:
    checked = promtool("check", "config", config)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_panel_query_is_valid_promql(prometheus: httpx.Client) -> None:
    for title, expr in panel_queries():
        assert "$" not in expr, f"{title}: a variable panel_queries does not fill in yet: {expr}"
        query(prometheus, expr)


def test_a_mistyped_query_is_refused(prometheus: httpx.Client) -> None:
    # The check above means something only if Prometheus refuses what is not PromQL.
    answer = prometheus.get("/api/v1/query", params={"query": "sum(rate(kicau_http_requests_total[1m])"})
    assert answer.status_code == 400 and answer.json()["errorType"] == "bad_data"


def test_the_panels_show_posting_fanout_and_delivery_while_they_happen(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], prometheus: httpx.Client
) -> None:
    author, reader = make_user("pa"), make_user("pr")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth).status_code == 200
    queries = by_title()
    posted: list[str] = []
    received: list[dict[str, str]] = []
    done = threading.Event()

    def keep_posting() -> None:
        # Rates need two scrapes of a counter that moved between them: post on until the panels show it.
        with httpx.Client(base_url=gateway_url, timeout=30) as poster:
            while not done.is_set() and len(posted) < 120:
                answer = poster.post(POSTS, headers=author.auth, data={"status": f"on the dashboard {len(posted)}"})
                assert answer.status_code == 200, answer.text
                posted.append(str(answer.json()["id"]))
                assert poster.get(HOME, headers=reader.auth).status_code == 200
                done.wait(1.0)

    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(30, read=None)) as client, \
            client.stream("GET", "/api/v1/streaming/user", headers=reader.auth) as stream:
        keep_reading(stream.iter_lines(), received)
        poster = threading.Thread(target=keep_posting, daemon=True)
        poster.start()
        try:
            eventually(lambda: {status_of(event) for event in received} & set(posted), timeout=60)

            def shown() -> bool:
                assert sum(numbers(query(prometheus, queries["Statuses created /s"]))) > 0
                assert sum(numbers(query(prometheus, queries["Timeline entries /s"]))) > 0
                assert numbers(query(prometheus, queries["Consumer lag"])), "no consumer lag reported"
                assert sum(numbers(query(prometheus, queries["Open streams"]))) >= 1
                transports = {series["metric"].get("transport"): float(series["value"][1]) for series in
                              query(prometheus, queries["Open streams by transport"])}
                assert transports.get("sse", 0) >= 1, transports
                p99 = numbers(query(prometheus, queries["Delivery p99"]))
                assert p99 and 0 < p99[0] < 5, p99
                for title in ("Delivery latency", "Fanout batch latency"):
                    quantiles = [numbers(query(prometheus, expr)) for name, expr in panel_queries() if name == title]
                    assert len(quantiles) == 3 and all(quantiles), (title, quantiles)
                routes = {(s["metric"]["service"], s["metric"]["route"]): float(s["value"][1])
                          for s in query(prometheus, queries["Request rate per route"])}
                assert routes.get(("gateway", HOME), 0) > 0 and routes.get(("gateway", POSTS), 0) > 0, routes
                latency = {(s["metric"]["service"], s["metric"]["route"]): float(s["value"][1])
                           for s in query(prometheus, queries["Latency p99 per route"])}
                assert 0 < latency.get(("gateway", HOME), math.nan) < 5, latency
                return True

            eventually(shown, timeout=90, interval=1.0)
        finally:
            done.set()
            poster.join(timeout=30)

"""deploy/prometheus and deploy/grafana: the scrape targets are Kicau's ports, and every dashboard query asks for
a metric, and labels, that kicau/metrics.py defines."""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings

from services.fanout.settings import FanoutSettings
from services.gateway.settings import GatewaySettings
from services.graph.settings import GraphSettings
from services.post.settings import PostSettings
from services.push.settings import PushSettings
from services.timeline.settings import TimelineSettings

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/kicau-overview.json"
DATASOURCES = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml"
ALERT_RULES = ROOT / "deploy/prometheus/alerts.yml"

SETTINGS: dict[str, type[BaseSettings]] = {
    "graph": GraphSettings,
    "post": PostSettings,
    "timeline": TimelineSettings,
    "fanout": FanoutSettings,
    "push": PushSettings,
    "gateway": GatewaySettings,
}
# Labels Prometheus itself attaches to every scraped series.
TARGET_LABELS = {"job", "instance"}
# Panels issue #8 asks for: metric -> what the dashboard must show of it.
REQUIRED = {
    "kicau_http_requests_total": "request rate per route",
    "kicau_http_request_duration_seconds": "p50/p99 latency per route",
    "kicau_statuses_created_total": "statuses created",
    "kicau_fanout_timeline_entries_total": "fanout entries/s",
    "kicau_fanout_batch_duration_seconds": "fanout batch latency",
    "kicau_fanout_consumer_lag": "consumer lag",
    "kicau_streams_open": "open streams",
    "kicau_stream_delivery_latency_seconds": "delivery latency p50/p95/p99",
}


def default_port(name: str) -> int:
    port = SETTINGS[name].model_fields["port"].default
    assert isinstance(port, int)
    return port


@cache
def defined_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    """name -> (type, label names) for every Counter/Gauge/Histogram/Summary (or CheapHistogram, CheapCounter) built in
    kicau/metrics.py."""
    tree = ast.parse((ROOT / "kicau/metrics.py").read_text())
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        # kicau.metrics.CheapHistogram and CheapCounter are exposed exactly as a Histogram and a Counter
        # (tests/kicau/test_cheap_histogram.py).
        kind = {"CheapHistogram": "Histogram", "CheapCounter": "Counter"}.get(node.func.id, node.func.id)
        if kind not in ("Counter", "Gauge", "Histogram", "Summary") or not node.args:
            continue
        if not isinstance(node.args[0], ast.Constant):
            continue  # inside the cheap metrics' classes: a labelled family making one series
        name = ast.literal_eval(node.args[0])
        labels: Any = ()
        if len(node.args) >= 3 and node.func.id != "CheapHistogram":  # its third argument is the buckets
            labels = ast.literal_eval(node.args[2])
        for keyword in node.keywords:
            if keyword.arg == "labelnames":
                labels = ast.literal_eval(keyword.value)
        found[str(name)] = (kind, tuple(labels))
    return found


def alert_labels() -> frozenset[str]:
    """The labels of Prometheus's ``ALERTS`` series for deploy/prometheus/alerts.yml: the alert's name and state,
    the labels its rule sets, and those its expression keeps (``up``'s target labels, the 5xx rule's service)."""
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    set_by_rules = {label for group in groups for rule in group["rules"] for label in rule.get("labels", {})}
    return frozenset({"alertname", "alertstate", "service"} | set_by_rules | TARGET_LABELS)


@cache
def exposed_series() -> dict[str, tuple[str, frozenset[str]]]:
    """Series names Prometheus will see (with prometheus_client's suffixes) -> (metric, labels allowed on them);
    and ``ALERTS``, which Prometheus itself makes from the alerting rules."""
    series: dict[str, tuple[str, frozenset[str]]] = {"ALERTS": ("ALERTS", alert_labels())}
    for name, (kind, labels) in defined_metrics().items():
        allowed = frozenset(labels) | TARGET_LABELS
        if kind == "Counter":
            base = name.removesuffix("_total")
            series[f"{base}_total"] = (name, allowed)
            series[f"{base}_created"] = (name, allowed)
        elif kind in ("Histogram", "Summary"):
            for suffix in ("_count", "_sum", "_created"):
                series[name + suffix] = (name, allowed)
            if kind == "Histogram":
                series[name + "_bucket"] = (name, allowed | {"le"})
            else:
                series[name] = (name, allowed | {"quantile"})
        else:
            series[name] = (name, allowed)
    return series


@cache
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def panels() -> list[dict[str, Any]]:
    flat: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        flat.append(panel)
        flat.extend(panel.get("panels", []))
    return flat


def queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every panel target and every query variable."""
    found = [(p["title"], t["expr"]) for p in panels() for t in p.get("targets", [])]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found.append((f"${variable['name']}", query["query"] if isinstance(query, dict) else query))
    return found


_SERIES = re.compile(r"\b(kicau_[a-z0-9_]+|ALERTS)\b")
_SELECTOR = re.compile(r"\b(kicau_[a-z0-9_]+|ALERTS)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_LABEL_VALUES = re.compile(r"label_values\(\s*(kicau_[a-z0-9_]+)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)")


# ---- Grafana ---------------------------------------------------------------------------------------------------


def test_kicau_metrics_module_is_parsed() -> None:
    assert set(REQUIRED) <= set(defined_metrics())
    assert defined_metrics()["kicau_http_requests_total"] == ("Counter", ("service", "method", "route", "status"))


def test_dashboard_is_provisionable() -> None:
    assert dashboard()["uid"] == "kicau-overview" and dashboard()["title"]
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels():
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] != "row":
            assert panel.get("targets"), f"{panel['title']} has no query"


def test_every_query_names_a_series_kicau_exposes() -> None:
    unknown = [
        (title, name) for title, expr in queries() for name in _SERIES.findall(expr) if name not in exposed_series()
    ]
    assert not unknown, f"queries name series kicau/metrics.py does not define: {unknown}"


def label_problems(expr: str) -> list[tuple[str, str]]:
    """(series or "by", label) for each label the query uses that its series do not carry."""
    problems: list[tuple[str, str]] = []
    for name, matchers in _SELECTOR.findall(expr):
        problems += [(name, m) for m in _MATCHER.findall(matchers) if m not in exposed_series()[name][1]]
    for name, label in _LABEL_VALUES.findall(expr):
        if label not in exposed_series()[name][1]:
            problems.append((name, label))
    # A grouping may keep any label of the series the expression reads (one metric per query here).
    allowed = frozenset().union(*(exposed_series()[s][1] for s in _SERIES.findall(expr)))
    grouped = {label.strip() for group in _GROUPING.findall(expr) for label in group.split(",") if label.strip()}
    problems += [("by", label) for label in sorted(grouped - allowed)]
    return problems


def test_every_query_uses_labels_its_metrics_carry() -> None:
    problems = [(title, problem) for title, expr in queries() for problem in label_problems(expr)]
    assert not problems, f"labels the metrics do not have: {problems}"


def test_the_label_check_catches_a_wrong_label() -> None:
    assert label_problems('sum by (transport) (kicau_streams_open{transport="sse"})') == []
    assert label_problems('sum by (route) (kicau_streams_open{service="gateway"})') == [
        ("kicau_streams_open", "service"),
        ("by", "route"),
    ]
    assert label_problems("sum by (le) (rate(kicau_stream_delivery_latency_seconds_bucket[1m]))") == []
    assert label_problems("label_values(kicau_http_requests_total, transport)") == [
        ("kicau_http_requests_total", "transport")
    ]
    assert label_problems('sum by (alertname, severity) (ALERTS{alertstate="firing"})') == []
    assert label_problems('sum by (route) (ALERTS{state="firing"})') == [("ALERTS", "state"), ("by", "route")]


def test_the_dashboard_shows_the_alerts_firing_and_pending() -> None:
    alerting = [expr for _, expr in queries() if "ALERTS" in expr]
    assert {state for expr in alerting for state in re.findall(r'alertstate="(\w+)"', expr)} == {"firing", "pending"}


@pytest.mark.parametrize("metric", list(REQUIRED))
def test_dashboard_shows_every_metric_the_issue_asks_for(metric: str) -> None:
    assert any(exposed_series().get(s, ("",))[0] == metric for _, e in queries() for s in _SERIES.findall(e)), (
        f"no panel shows {metric} ({REQUIRED[metric]})"
    )


def quantiles_of(metric: str) -> set[float]:
    pattern = re.compile(r"histogram_quantile\(\s*([0-9.]+)\s*,[^;]*?\b" + metric + r"_bucket\b")
    return {float(q) for _, expr in queries() for q in pattern.findall(expr)}


def test_latency_panels_show_the_asked_quantiles() -> None:
    assert {0.5, 0.99} <= quantiles_of("kicau_http_request_duration_seconds")
    assert {0.5, 0.95, 0.99} <= quantiles_of("kicau_stream_delivery_latency_seconds")
    assert quantiles_of("kicau_fanout_batch_duration_seconds")
    for _, expr in queries():
        if "histogram_quantile" in expr:
            assert re.search(r"by \([^)]*\ble\b", expr), f"quantiles need the le label kept: {expr}"


def test_http_panels_are_per_route() -> None:
    per_route = [e for _, e in queries() if "kicau_http_request" in e and re.search(r"by \([^)]*\broute\b", e)]
    assert any("rate(kicau_http_requests_total" in e for e in per_route)
    assert any("kicau_http_request_duration_seconds_bucket" in e for e in per_route)


def test_panels_use_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert len(provisioned) == 1
    source = provisioned[0]
    assert source["type"] == "prometheus"
    url = urlsplit(source["url"])
    assert (url.hostname, url.port) == ("prometheus", 9090)
    variable = next(v for v in dashboard()["templating"]["list"] if v["type"] == "datasource")
    assert variable["query"] == "prometheus"
    assert variable["current"]["value"] == source["uid"]
    for panel in panels():
        for target in [panel, *panel.get("targets", [])]:
            if "datasource" in target:
                assert target["datasource"] == {"type": "prometheus", "uid": "${" + variable["name"] + "}"}


# ---- Prometheus ------------------------------------------------------------------------------------------------


def scrape_targets(filename: str) -> dict[str, list[str]]:
    config = yaml.safe_load((ROOT / "deploy/prometheus" / filename).read_text())
    jobs: dict[str, list[str]] = {}
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert job.get("scheme", "http") == "http"
        jobs[job["job_name"]] = [t for group in job["static_configs"] for t in group["targets"]]
    return jobs


def test_local_prometheus_scrapes_each_service_on_its_loopback_port() -> None:
    assert scrape_targets("prometheus.yml") == {name: [f"127.0.0.1:{default_port(name)}"] for name in SETTINGS}


def test_compose_prometheus_scrapes_each_compose_service() -> None:
    compose_services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    targets = scrape_targets("prometheus.compose.yml")
    assert targets == {name: [f"{name}:{default_port(name)}"] for name in SETTINGS}
    assert set(targets) <= set(compose_services)


def test_prometheus_configs_share_job_names_so_one_dashboard_fits_both() -> None:
    assert scrape_targets("prometheus.yml").keys() == scrape_targets("prometheus.compose.yml").keys()

"""deploy/kubernetes/monitoring, checked offline: the PrometheusRule holds exactly deploy/prometheus/alerts.yml's
rules (written from it by deploy/prometheus_rule.py), and the PodMonitor scrapes the six services' pods under the
job names the rules, the dashboard and deploy/prometheus/prometheus.yml use. (The Operator's custom resources are
not in kubernetes-validate's schemas: their shape is checked field by field here.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from deploy import prometheus_rule
from tests.deploy.test_kubernetes import K8S, load_documents

MONITORING = K8S / "monitoring"
SERVICES = ("gateway", "post", "timeline", "fanout", "graph", "push")


def _one(name: str) -> dict[str, Any]:
    (document,) = load_documents(MONITORING / name)
    return document


def _pod_template(service: str) -> dict[str, Any]:
    (deployment,) = [d for d in load_documents(K8S / f"{service}.yaml") if d["kind"] == "Deployment"]
    template: dict[str, Any] = deployment["spec"]["template"]
    return template


def test_the_kustomization_applies_both_in_kicaus_namespace() -> None:
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == yaml.safe_load((K8S / "kustomization.yaml").read_text())["namespace"]
    assert sorted(kustomization["resources"]) == ["podmonitor.yaml", "prometheusrule.yaml"]


def test_the_prometheus_rule_is_written_from_the_rule_file() -> None:
    assert (MONITORING / "prometheusrule.yaml").read_text() == prometheus_rule.render(), \
        "deploy/prometheus/alerts.yml changed: run `.venv/bin/python -m deploy.prometheus_rule`"
    rule = _one("prometheusrule.yaml")
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(prometheus_rule.ALERTS.read_text())["groups"]
    assert [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]], "no alerts in the manifest"


def test_a_changed_rule_file_makes_another_manifest(tmp_path: Path) -> None:
    changed = tmp_path / "alerts.yml"
    changed.write_text(prometheus_rule.ALERTS.read_text().replace("for: 1m", "for: 2m", 1))
    assert prometheus_rule.render(changed) != prometheus_rule.render()


def test_the_pod_monitor_selects_exactly_the_six_services_pods() -> None:
    monitor = _one("podmonitor.yaml")
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    selector = monitor["spec"]["selector"]
    (expression,) = selector["matchExpressions"]
    assert (expression["key"], expression["operator"]) == ("app.kubernetes.io/component", "In")
    assert sorted(expression["values"]) == sorted(SERVICES)
    for service in SERVICES:
        labels = _pod_template(service)["metadata"]["labels"]
        assert selector["matchLabels"].items() <= labels.items(), service
        assert labels["app.kubernetes.io/component"] == service
    # The migration job's pods carry Kicau's labels but serve no metrics: left out.
    (job,) = load_documents(K8S / "migrate-job.yaml")
    assert job["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") not in SERVICES


def test_the_pod_monitor_scrapes_each_metrics_port_under_the_job_names_the_rules_use() -> None:
    monitor = _one("podmonitor.yaml")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    for service in SERVICES:
        template = _pod_template(service)
        ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        annotations = template["metadata"]["annotations"]
        assert str(ports[endpoint["port"]]) == annotations["prometheus.io/port"], service
        assert endpoint["path"] == annotations["prometheus.io/path"]
    # job = the pod's component: the job names of the scrape config without containers.
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/component"
    scrape = yaml.safe_load((prometheus_rule.DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert sorted(jobs) == sorted(SERVICES)
    assert {job["scrape_interval"] for job in jobs.values()} == {endpoint["interval"]}
    assert 'up{job=~"' + "|".join(SERVICES) + '"}' in prometheus_rule.ALERTS.read_text()

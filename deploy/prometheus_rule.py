"""Writes deploy/kubernetes/monitoring/prometheusrule.yaml from deploy/prometheus/alerts.yml.

The Prometheus Operator reads alerting rules from a ``PrometheusRule`` resource, whose ``spec.groups`` are the
rule file's ``groups``; Kustomize cannot put a file's contents there, so the manifest is written from the one
rule file every Prometheus of Kicau's loads, and tests/deploy/test_kubernetes_monitoring.py fails while the two
differ. After editing alerts.yml:

    .venv/bin/python -m deploy.prometheus_rule
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
MANIFEST = DEPLOY / "kubernetes" / "monitoring" / "prometheusrule.yaml"
HEADER = ("# Written by `python -m deploy.prometheus_rule` from deploy/prometheus/alerts.yml (whose comments\n"
          "# explain each rule): edit that file and run it again.\n"
          "# tests/deploy/test_kubernetes_monitoring.py checks that both agree.\n")


def render(alerts: Path = ALERTS) -> str:
    """The PrometheusRule manifest holding the rule file's groups as they are."""
    groups: list[dict[str, Any]] = yaml.safe_load(alerts.read_text())["groups"]
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "kicau", "labels": {"app.kubernetes.io/name": "kicau",
                                                  "app.kubernetes.io/part-of": "kicau"}},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.safe_dump(manifest, sort_keys=False, width=120, allow_unicode=True)


def main() -> None:
    MANIFEST.write_text(render())
    print(f"wrote {MANIFEST.relative_to(DEPLOY.parent)}", file=sys.stderr)


if __name__ == "__main__":
    main()

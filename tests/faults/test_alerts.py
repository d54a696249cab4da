"""The stack's Prometheus raises deploy/prometheus/alerts.yml's KicauServiceDown for a service that stops answering
(the push service, SIGSTOPped: its scrapes time out as a hung process's would), after the rule's minute, for that
service alone, as the dashboard's alerts panel shows; sends it to the stack's Alertmanager, which holds it for its
receiver; and drops it, there too, once the service answers again."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from stack.config import HOST, ports
from tests.deploy.test_dashboard_live import panel_queries, query
from tests.faults import harness
from tests.faults.conftest import Faults

ALERT = "KicauServiceDown"


def alerts_of(prometheus: httpx.Client) -> list[dict[str, Any]]:
    answer = prometheus.get("/api/v1/alerts")
    assert answer.status_code == 200, answer.text
    return [alert for alert in answer.json()["data"]["alerts"] if alert["labels"]["alertname"] == ALERT]


def held_by(alertmanager: httpx.Client) -> list[dict[str, Any]]:
    """The KicauServiceDown alerts Alertmanager holds (resolved ones it no longer lists)."""
    answer = alertmanager.get("/api/v2/alerts", params={"filter": f'alertname="{ALERT}"'})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


@pytest.mark.timeout(300)
def test_a_paused_service_is_reported_down_after_a_minute_and_no_longer_once_it_answers(faults: Faults) -> None:
    with httpx.Client(base_url=f"http://{HOST}:{ports().prometheus}", timeout=10) as prometheus:
        # A healthy stack first: no service reported (any left from an earlier test has cleared).
        harness.wait_for(lambda: not alerts_of(prometheus), 120, "no KicauServiceDown on a healthy stack")
        push = harness.service_pid("push")
        faults.pause(push)

        def state() -> str | None:
            found = alerts_of(prometheus)
            assert all(alert["labels"]["job"] == "push" for alert in found), found
            return str(found[0]["state"]) if found else None

        pending = harness.wait_for(lambda: state() == "pending", 60, "KicauServiceDown pending for push")
        assert state() == "pending"  # not firing before the rule's minute has passed
        firing = harness.wait_for(lambda: state() == "firing", 120, "KicauServiceDown firing for push")
        (alert,) = alerts_of(prometheus)
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["summary"] == "Kicau push is not answering Prometheus"
        # The dashboard's alerts panel shows it as firing (deploy/grafana).
        firing_panel, _ = [expr for title, expr in panel_queries() if title == "Alerts firing and pending"]
        shown = {(series["metric"]["alertname"], series["metric"]["severity"]): float(series["value"][1])
                 for series in query(prometheus, firing_panel)}
        assert shown.get((ALERT, "critical")) == 1.0, shown
        # Prometheus sends it to the stack's Alertmanager (deploy/alertmanager), which holds it for its receiver.
        with httpx.Client(base_url=f"http://{HOST}:{ports().alertmanager}", timeout=10) as alertmanager:
            sent = harness.wait_for(lambda: bool(held_by(alertmanager)), 60, "KicauServiceDown in Alertmanager")
            (held,) = held_by(alertmanager)
            assert held["labels"]["job"] == "push" and held["labels"]["severity"] == "critical", held
            assert held["status"]["state"] == "active", held
            assert [r["name"] for r in held["receivers"]] == ["kicau-operators"], held

            faults.resume(push)
            cleared = harness.wait_for(lambda: not alerts_of(prometheus), 60, "KicauServiceDown cleared")
            # Prometheus sends the resolution on: Alertmanager no longer holds it.
            resolved = harness.wait_for(lambda: not held_by(alertmanager), 60, "KicauServiceDown resolved")
        harness.figure(f"alerts: push paused; KicauServiceDown pending after {pending:.1f}s, firing "
                       f"{firing:.1f}s later, in Alertmanager {sent:.1f}s after; cleared {cleared:.1f}s after the "
                       f"push service was resumed, resolved in Alertmanager {resolved:.1f}s after")

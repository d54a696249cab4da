"""The stack's Prometheus raises deploy/prometheus/alerts.yml's KicauServiceDown for a service that stops answering
(the push service, SIGSTOPped: its scrapes time out as a hung process's would), after the rule's minute, for that
service alone, as the dashboard's alerts panel shows, and drops it once the service answers again."""

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

        faults.resume(push)
        cleared = harness.wait_for(lambda: not alerts_of(prometheus), 60, "KicauServiceDown cleared")
        harness.figure(f"alerts: push paused; KicauServiceDown pending after {pending:.1f}s, firing "
                       f"{firing:.1f}s later; cleared {cleared:.1f}s after the push service was resumed")

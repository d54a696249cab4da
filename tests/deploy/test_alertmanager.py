"""deploy/alertmanager/alertmanager.yml: Alertmanager's own tool accepts it and routes Kicau's alerts as its
comments say, and the stack's Prometheus sends its alerts to the stack's Alertmanager (stack/engines.py).
tests/faults/test_alerts.py shows an alert raised by a real fault reach it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx

from stack.config import HOST, ROOT, ports
from tests.conftest import eventually

CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("amtool")
    assert found is not None, "amtool comes with Debian's prometheus-alertmanager, which `python -m stack up` installs"
    return subprocess.run([found, *args], capture_output=True, text=True, check=False)


def test_amtool_accepts_the_configuration() -> None:
    checked = amtool("check-config", str(CONFIG))
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr


def test_amtool_refuses_a_broken_configuration(tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(CONFIG.read_text().replace("receiver: kicau-operators", "receiver: nobody", 1))
    checked = amtool("check-config", str(broken))
    assert checked.returncode != 0, checked.stdout


def test_every_alert_is_routed_to_the_operators() -> None:
    for labels in (["alertname=KicauServiceDown", "job=push", "severity=critical"],
                   ["alertname=KicauDeliverySlow", "severity=warning"]):
        routed = amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels)
        assert routed.returncode == 0 and routed.stdout.split() == ["kicau-operators"], routed.stdout + routed.stderr


def test_the_stacks_prometheus_sends_its_alerts_to_the_stacks_alertmanager() -> None:
    with httpx.Client(base_url=f"http://{HOST}:{ports().prometheus}", timeout=10) as prometheus:
        def active() -> list[str]:
            found = prometheus.get("/api/v1/alertmanagers").json()["data"]["activeAlertmanagers"]
            return [str(a["url"]) for a in found]

        assert eventually(active, timeout=60) == [f"http://{HOST}:{ports().alertmanager}/api/v2/alerts"]
    with httpx.Client(base_url=f"http://{HOST}:{ports().alertmanager}", timeout=10) as alertmanager:
        status = alertmanager.get("/api/v2/status")
        assert status.status_code == 200, status.text
        assert status.json()["config"]["original"].count("kicau-operators") >= 2  # deploy/alertmanager's own

"""deploy/kubernetes, checked offline: every resource against the Kubernetes API schemas that the pinned
kubernetes-validate package bundles (strict: unknown fields are errors), then against what Kicau needs."""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from pydantic_settings import BaseSettings

from deploy.init import migrate as migrate_entrypoint
from kicau.settings import CommonSettings
from services.fanout.settings import FanoutSettings
from services.gateway.settings import GatewaySettings
from services.graph.settings import GraphSettings
from services.post.settings import PostSettings
from services.push.settings import PushSettings
from services.timeline.settings import TimelineSettings
from stack.config import KAFKA_TOPICS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"

SETTINGS: dict[str, type[BaseSettings]] = {
    "graph": GraphSettings,
    "post": PostSettings,
    "timeline": TimelineSettings,
    "fanout": FanoutSettings,
    "push": PushSettings,
    "gateway": GatewaySettings,
}
# The oldest Kubernetes minor these manifests promise to fit, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30.0", str(kubernetes_validate.latest_version()))
Resource = dict[str, Any]


def load_documents(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@cache
def kustomization() -> dict[str, Any]:
    data = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert isinstance(data, dict)
    return data


@cache
def resources() -> tuple[Resource, ...]:
    found: list[Resource] = []
    for name in kustomization()["resources"]:
        found.extend(load_documents(K8S / name))
    return tuple(found)


def of_kind(kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources() if r["kind"] == kind}


def container(deployment: Resource) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found = containers[0]
    assert isinstance(found, dict)
    return found


def default_port(name: str) -> int:
    port = SETTINGS[name].model_fields["port"].default
    assert isinstance(port, int)
    return port


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (cpu "500m", "2"; memory "256Mi", "1Gi") as a number."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in sorted(units.items(), key=lambda item: -len(item[0])):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


# ---- schema validation ----------------------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest_and_only_existing_ones() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    assert kustomization()["namespace"] == "kicau"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_resource_matches_the_kubernetes_schema(version: str) -> None:
    failures = []
    for resource in resources():
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{resource['kind']}/{resource['metadata']['name']}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_the_schema_check_rejects_a_misspelt_field() -> None:
    broken = copy.deepcopy(of_kind("Deployment")["gateway"])
    container(broken)["readinesProbe"] = container(broken).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_kustomization_lists_every_manifest_and_only_existing_ones() -> None:
    """What `kubectl apply -k` would build, checked without kubectl: every manifest beside the kustomization is
    listed (strimzi/ is applied separately into the Kafka namespace), every listed file exists, every
    resource lands in the kicau namespace, and every container uses the image the kustomization rewrites."""
    listed = set(kustomization()["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    image = kustomization()["images"][0]
    assert kustomization()["namespace"] == "kicau"
    for resource in resources():
        if resource["kind"] != "Namespace":
            assert resource["metadata"].get("namespace", "kicau") == "kicau", resource["metadata"]["name"]
        template = resource.get("spec", {}).get("template", {}).get("spec", {})
        job_template = resource.get("spec", {}).get("template", {}).get("spec", {})
        for spec_container in template.get("containers", []) + job_template.get("initContainers", []):
            assert spec_container["image"].split(":")[0] == image["name"], spec_container["image"]


# ---- Deployments ----------------------------------------------------------------------------------------------------


def test_one_deployment_service_and_disruption_budget_per_kicau_service() -> None:
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        assert set(of_kind(kind)) == set(SETTINGS), kind


@pytest.mark.parametrize("name", list(SETTINGS))
def test_deployment_runs_its_service_from_the_kustomized_image(name: str) -> None:
    spec = container(of_kind("Deployment")[name])
    assert spec["command"] == ["python", "-m", f"services.{name}"]
    assert spec["image"] == kustomization()["images"][0]["name"]
    assert spec["ports"] == [{"name": "http", "containerPort": default_port(name), "protocol": "TCP"}]


@pytest.mark.parametrize("name", list(SETTINGS))
def test_deployment_probes_readyz_for_readiness_and_healthz_for_liveness(name: str) -> None:
    spec = container(of_kind("Deployment")[name])
    port_names = {p["name"]: p["containerPort"] for p in spec["ports"]}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")):
        get = spec[probe]["httpGet"]
        assert get["path"] == path, probe
        assert port_names.get(get["port"], get["port"]) == default_port(name), probe


@pytest.mark.parametrize("name", list(SETTINGS))
def test_deployment_has_resource_requests_within_limits(name: str) -> None:
    resources_ = container(of_kind("Deployment")[name])["resources"]
    for key in ("cpu", "memory"):
        assert quantity(resources_["requests"][key]) <= quantity(resources_["limits"][key]), key


@pytest.mark.parametrize("name", [*SETTINGS, "kicau-migrate"])
def test_pods_run_as_non_root_with_a_read_only_root_filesystem(name: str) -> None:
    workload = of_kind("Deployment").get(name) or of_kind("Job")[name]
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    security = container(workload)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # With a read-only root, /tmp is the only writable path: an emptyDir.
    mounts = {m["mountPath"]: m["name"] for m in container(workload)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


@pytest.mark.parametrize("name", [*SETTINGS, "kicau-migrate"])
def test_workloads_take_their_environment_from_the_configmap_and_secret(name: str) -> None:
    workload = of_kind("Deployment").get(name) or of_kind("Job")[name]
    sources = container(workload)["envFrom"]
    assert [s["configMapRef"]["name"] for s in sources if "configMapRef" in s] == ["kicau-config"]
    assert [s["secretRef"]["name"] for s in sources if "secretRef" in s] == ["kicau-secrets"]
    assert set(of_kind("ConfigMap")) == {"kicau-config"} and set(of_kind("Secret")) == {"kicau-secrets"}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_service_selects_its_deployment_and_exposes_the_container_port(name: str) -> None:
    deployment = of_kind("Deployment")[name]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = of_kind("Service")[name]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["port"] == default_port(name)
    assert service["spec"]["ports"][0]["targetPort"] in ("http", default_port(name))
    budget = of_kind("PodDisruptionBudget")[name]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


# ---- autoscaling --------------------------------------------------------------------------------------------------


def statuses_partitions() -> int:
    topics = {t["metadata"]["name"]: t for t in load_documents(K8S / "strimzi" / "topics.yaml")}
    assert set(topics) == set(KAFKA_TOPICS)
    partitions = topics[CommonSettings().kafka_statuses_topic]["spec"]["partitions"]
    assert isinstance(partitions, int) and partitions >= 6
    return partitions


def test_gateway_and_fanout_autoscale_existing_deployments() -> None:
    autoscalers = of_kind("HorizontalPodAutoscaler")
    assert set(autoscalers) == {"gateway", "fanout"}
    for name, hpa in autoscalers.items():
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", name)
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        # A replicas field would fight the autoscaler on every apply.
        assert "replicas" not in of_kind("Deployment")[name]["spec"]
        # Utilization targets need CPU requests to be measured against.
        assert "cpu" in container(of_kind("Deployment")[name])["resources"]["requests"]


def test_fanout_never_scales_past_the_partitions_of_the_statuses_topic() -> None:
    assert of_kind("HorizontalPodAutoscaler")["fanout"]["spec"]["maxReplicas"] == statuses_partitions()


def test_every_topic_has_the_same_partitions_and_survives_a_broker_loss() -> None:
    for topic in load_documents(K8S / "strimzi" / "topics.yaml"):
        assert topic["apiVersion"].startswith("kafka.strimzi.io/")
        assert topic["spec"]["partitions"] == statuses_partitions()
        assert topic["spec"]["replicas"] >= 3
        assert topic["spec"]["config"]["min.insync.replicas"] == topic["spec"]["replicas"] - 1


# ---- configuration ------------------------------------------------------------------------------------------------


def known_environment() -> set[str]:
    known = {f"KICAU_{field.upper()}" for field in CommonSettings.model_fields}
    for name, settings in SETTINGS.items():
        known |= {f"KICAU_{name.upper()}_{field.upper()}" for field in settings.model_fields}
    return known | set(migrate_entrypoint.ENVIRONMENT)


def test_configmap_points_at_the_external_clusters_and_the_in_namespace_services() -> None:
    data = of_kind("ConfigMap")["kicau-config"]["data"]
    unknown = set(data) - known_environment()
    assert not unknown, f"no Kicau process reads {sorted(unknown)}"
    assert data["KICAU_KAFKA_BOOTSTRAP"] == "kicau-kafka-bootstrap.kafka:9092"
    assert data["KICAU_CASSANDRA_HOSTS"] == "kicau-dc1-service.cassandra"
    assert data["KICAU_CASSANDRA_READ_CONSISTENCY"] == "LOCAL_QUORUM"
    assert data["KICAU_CASSANDRA_WRITE_CONSISTENCY"] == "LOCAL_QUORUM"
    assert "NetworkTopologyStrategy" in data["KICAU_CASSANDRA_REPLICATION"]
    assert data["KICAU_ENVIRONMENT"] == "production"
    CommonSettings(**{k.removeprefix("KICAU_").lower(): v for k, v in data.items() if k in _common_keys()})
    for name in SETTINGS:
        assert data[f"KICAU_{name.upper()}_HOST"] == "0.0.0.0"
    for upstream in ("graph", "post", "timeline"):
        assert data[f"KICAU_{upstream.upper()}_URL"] == f"http://{upstream}:{default_port(upstream)}"
        assert upstream in of_kind("Service")


def _common_keys() -> set[str]:
    return {f"KICAU_{field.upper()}" for field in CommonSettings.model_fields}


def test_secret_holds_placeholders_only() -> None:
    secret = of_kind("Secret")["kicau-secrets"]
    values = secret["stringData"]
    assert "data" not in secret
    assert values and all("CHANGE-ME" in value for value in values.values())
    assert not set(values) - known_environment()
    assert values["KICAU_REDIS_URL"].startswith("redis://")
    assert set(values).isdisjoint(of_kind("ConfigMap")["kicau-config"]["data"])


def test_migration_job_runs_the_entry_point_once_per_apply() -> None:
    job = of_kind("Job")["kicau-migrate"]
    spec = container(job)
    assert spec["command"] == ["python", "/app/deploy/init/migrate.py"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")
    assert job["spec"]["backoffLimit"] >= 1 and job["spec"]["activeDeadlineSeconds"] > 0


# ---- ingress and network policy -----------------------------------------------------------------------------------


def test_ingress_routes_to_the_gateway_and_is_set_up_for_streaming() -> None:
    ingress = of_kind("Ingress")["gateway"]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert annotations["nginx.ingress.kubernetes.io/proxy-http-version"] == "1.1"
    heartbeat = GatewaySettings.model_fields["heartbeat_seconds"].default
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) >= max(3600, 4 * heartbeat)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    backends = [p["backend"]["service"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    service_ports = {p["name"] for p in of_kind("Service")["gateway"]["spec"]["ports"]}
    assert backends and all(b["name"] == "gateway" and b["port"]["name"] in service_ports for b in backends)


def test_only_the_gateway_may_call_the_internal_services() -> None:
    policies = of_kind("NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"]["podSelector"] == {}
    internal = policies["internal-from-gateway"]["spec"]
    selected = internal["podSelector"]["matchExpressions"][0]
    assert (selected["key"], selected["operator"]) == ("app.kubernetes.io/component", "In")
    assert set(selected["values"]) == {"graph", "post", "timeline"}
    assert internal["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "kicau", "app.kubernetes.io/component": "gateway"}}}
    ]
    assert {p["port"] for p in internal["ingress"][0]["ports"]} == {default_port(n) for n in selected["values"]}


def test_namespace_enforces_the_restricted_pod_security_standard() -> None:
    labels = of_kind("Namespace")["kicau"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_placeholder_hosts_are_not_left_half_renamed() -> None:
    # The example domain must be the same wherever it appears, so one search-and-replace finds them all.
    text = "\n".join(p.read_text() for p in K8S.glob("*.yaml"))
    domains = set(re.findall(r"[a-z0-9.-]+\.example\.com", text))
    assert domains <= {"kicau.example.com", "registry.example.com"}

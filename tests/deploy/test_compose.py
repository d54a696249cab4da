"""docker-compose.yml, Dockerfile and .dockerignore, checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON schema (the copy that the pinned
check-jsonschema package ships), then against what Kicau needs: one image for the five services, healthchecks,
start order through depends_on conditions, the engines' settings, and environment names the code actually reads.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import shlex
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
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
COMPOSE_FILE = ROOT / "docker-compose.yml"

SETTINGS: dict[str, type[BaseSettings]] = {
    "graph": GraphSettings,
    "post": PostSettings,
    "timeline": TimelineSettings,
    "fanout": FanoutSettings,
    "push": PushSettings,
    "gateway": GatewaySettings,
}
ENGINES = ("kafka", "cassandra", "redis")
INIT_JOBS = ("kafka-topics", "cassandra-schema")
OBSERVABILITY = ("prometheus", "alertmanager", "grafana")

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]+)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution (``${X}``, ``${X:-d}``, ``${X-d}``, ``$X``, ``$$``), applied to every string."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        expression = match.group("braced") or match.group("plain")
        for separator in (":-", "-"):
            if separator in expression:
                name, default = expression.split(separator, 1)
                found = env.get(name)
                empty = found is None or (separator == ":-" and found == "")
                return default if empty else str(found)
        return env.get(expression, "")

    return _VARIABLE.sub(substitute, value)


@cache
def raw_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@cache
def compose() -> dict[str, Any]:
    """The compose file as Compose sees it with no variables set: interpolated, x- extension keys dropped."""
    data = interpolate(raw_compose(), {})
    assert isinstance(data, dict)
    return {k: v for k, v in data.items() if not k.startswith("x-")}


def services() -> dict[str, Any]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


@cache
def compose_schema() -> dict[str, Any]:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    return schema


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def default_port(name: str) -> int:
    port = SETTINGS[name].model_fields["port"].default
    assert isinstance(port, int)
    return port


def known_environment() -> set[str]:
    """Every KICAU_* variable some Kicau process reads."""
    known = {f"KICAU_{field.upper()}" for field in CommonSettings.model_fields}
    for name, settings in SETTINGS.items():
        known |= {f"KICAU_{name.upper()}_{field.upper()}" for field in settings.model_fields}
    return known | set(migrate_entrypoint.ENVIRONMENT)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def command_words(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


# ---- the Compose Specification -----------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec_schema() -> None:
    assert schema_errors(raw_compose()) == []
    assert schema_errors(interpolate(raw_compose(), {})) == []


def test_the_schema_check_rejects_a_misspelt_key() -> None:
    broken = copy.deepcopy(raw_compose())
    broken["services"]["gateway"]["helthcheck"] = broken["services"]["gateway"].pop("healthcheck")
    assert any("helthcheck" in error for error in schema_errors(broken))


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} $SET $$HOME", env) == "x d d  x $HOME"


def test_every_service_is_known_and_nothing_else_is_defined() -> None:
    assert set(services()) == set(SETTINGS) | set(ENGINES) | set(INIT_JOBS) | set(OBSERVABILITY)


# ---- Kicau services -----------------------------------------------------------------------------------------------


def test_kicau_services_share_one_image_built_from_the_dockerfile() -> None:
    kicau = {name: services()[name] for name in (*SETTINGS, "cassandra-schema")}
    images = {service["image"] for service in kicau.values()}
    builds = {json.dumps(service["build"], sort_keys=True) for service in kicau.values()}
    assert len(images) == 1 and len(builds) == 1, (images, builds)
    build = next(iter(kicau.values()))["build"]
    assert build["context"] == "." and build["dockerfile"] == "Dockerfile"


@pytest.mark.parametrize("name", list(SETTINGS))
def test_service_runs_its_module_and_listens_on_all_interfaces(name: str) -> None:
    service = services()[name]
    assert command_words(service) == ["python", "-m", f"services.{name}"]
    env = environment(service)
    assert env[f"KICAU_{name.upper()}_HOST"] == "0.0.0.0"
    assert "user" not in service or str(service["user"]).split(":")[0] not in ("0", "root")


@pytest.mark.parametrize("name", list(SETTINGS))
def test_service_healthcheck_probes_healthz_on_its_port(name: str) -> None:
    healthcheck = services()[name]["healthcheck"]
    test = " ".join(healthcheck["test"])
    assert f"http://127.0.0.1:{default_port(name)}/healthz" in test
    assert healthcheck.get("disable") is not True


@pytest.mark.parametrize("name", list(SETTINGS))
def test_service_environment_reaches_the_engines_and_services_by_compose_name(name: str) -> None:
    env = environment(services()[name])
    assert env["KICAU_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["KICAU_REDIS_URL"].startswith("redis://redis:6379/")
    assert env["KICAU_CASSANDRA_HOSTS"] == "cassandra"
    for upstream in ("graph", "post", "timeline"):
        assert env[f"KICAU_{upstream.upper()}_URL"] == f"http://{upstream}:{default_port(upstream)}"
    unknown = set(env) - known_environment()
    assert not unknown, f"{name} sets variables no Kicau process reads: {sorted(unknown)}"


def test_only_the_gateway_is_published_and_only_on_loopback_by_default() -> None:
    published = {name: s["ports"] for name, s in services().items() if s.get("ports")}
    assert set(published) == {"gateway", "prometheus", "alertmanager", "grafana"}
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert published["gateway"] == ["127.0.0.1:8080:8080"]


# ---- start order --------------------------------------------------------------------------------------------------


def test_depends_on_uses_conditions_that_can_be_met() -> None:
    for name, service in services().items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on must use the long form with a condition"
        for target, rule in depends_on.items():
            assert target in services(), f"{name} depends on unknown {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services()[target], f"{name} waits for {target}, which has no healthcheck"
            elif condition == "service_completed_successfully":
                assert target in INIT_JOBS, f"{name} waits for {target} to exit, but it is long-running"
            else:
                pytest.fail(f"{name} -> {target}: condition {condition} does not wait for readiness")


def dependencies(name: str) -> set[str]:
    seen: set[str] = set()
    pending = [name]
    while pending:
        for target in services()[pending.pop()].get("depends_on", {}):
            if target not in seen:
                seen.add(target)
                pending.append(target)
    return seen


@pytest.mark.parametrize("name", list(SETTINGS))
def test_services_start_after_engines_topics_and_schema(name: str) -> None:
    assert name not in dependencies(name), f"{name} depends on itself"
    assert {"kafka-topics", "cassandra-schema", "redis"} <= dependencies(name)


def test_gateway_starts_after_the_services_it_calls() -> None:
    depends_on = services()["gateway"]["depends_on"]
    for upstream in ("graph", "post", "timeline"):
        assert depends_on[upstream]["condition"] == "service_healthy"


def test_long_running_services_have_healthchecks_and_jobs_do_not_restart() -> None:
    for name, service in services().items():
        if name in INIT_JOBS:
            assert service.get("restart", "no") == "no", name
        else:
            assert service["healthcheck"]["test"], name
            assert service.get("restart") == "unless-stopped", name


# ---- engines and init jobs ----------------------------------------------------------------------------------------


def test_kafka_is_a_single_kraft_node_without_zookeeper() -> None:
    kafka = services()["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["CLUSTER_ID"]  # the image refuses to start KRaft without one
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert not any("ZOOKEEPER" in key for key in env)
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_cassandra_is_5_0_with_a_cql_healthcheck() -> None:
    cassandra = services()["cassandra"]
    assert cassandra["image"] == "cassandra:5.0"
    test = " ".join(cassandra["healthcheck"]["test"])
    assert "cqlsh" in test or "nodetool" in test
    env = environment(cassandra)
    assert ("MAX_HEAP_SIZE" in env) == ("HEAP_NEWSIZE" in env)


def test_redis_runs_with_the_settings_home_timelines_rely_on() -> None:
    redis = services()["redis"]
    assert redis["image"].split(":")[0] == "redis" and redis["image"].split(":")[1].startswith("7")
    words = command_words(redis)
    assert words[0] == "redis-server"
    options = dict(zip(words[1::2], words[2::2], strict=True))
    assert options["--maxmemory-policy"] == "noeviction"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_topics_job_creates_kicau_topics_with_enough_partitions() -> None:
    job = services()["kafka-topics"]
    assert job["image"] == services()["kafka"]["image"]
    script = " ".join(command_words(job))
    assert "kafka-topics.sh" in script and "--if-not-exists" in script
    for topic in KAFKA_TOPICS:
        assert topic in script
    common = CommonSettings()
    assert set(KAFKA_TOPICS) == {common.kafka_statuses_topic, common.kafka_follows_topic, common.kafka_notices_topic}
    partitions = re.search(r"--partitions (\d+)", script)
    assert partitions is not None and int(partitions.group(1)) >= 6


def test_schema_job_runs_the_migration_entry_point_against_the_compose_cassandra() -> None:
    job = services()["cassandra-schema"]
    words = command_words(job)
    assert words[:1] == ["python"] and words[-1] == "/app/deploy/init/migrate.py"
    assert (ROOT / "deploy/init/migrate.py").is_file()
    env = environment(job)
    assert env["KICAU_CASSANDRA_HOSTS"] == "cassandra"
    assert set(env) <= set(migrate_entrypoint.ENVIRONMENT)
    assert job["depends_on"] == {"cassandra": {"condition": "service_healthy"}}


# ---- observability profile ----------------------------------------------------------------------------------------


def test_prometheus_and_grafana_only_run_with_the_observability_profile() -> None:
    for name, service in services().items():
        assert service.get("profiles", []) == (["observability"] if name in OBSERVABILITY else []), name


def bind_mounts(name: str) -> dict[str, str]:
    """container path -> repository path for the service's bind mounts (short syntax)."""
    mounts: dict[str, str] = {}
    for volume in services()[name].get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("./"):
            mounts[target] = source
    return mounts


def test_observability_mounts_exist_in_the_repository() -> None:
    prometheus = bind_mounts("prometheus")
    assert prometheus == {"/etc/prometheus/prometheus.yml": "./deploy/prometheus/prometheus.compose.yml",
                          "/etc/prometheus/alerts.yml": "./deploy/prometheus/alerts.yml"}
    # The rules are read from beside the configuration, where they are mounted.
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.compose.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in command_words(services()["prometheus"])
    # Alerts go to the compose file's Alertmanager, which reads deploy/alertmanager's routing.
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    alertmanager = bind_mounts("alertmanager")
    assert alertmanager == {"/etc/alertmanager/alertmanager.yml": "./deploy/alertmanager/alertmanager.yml"}
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in command_words(services()["alertmanager"])
    grafana = bind_mounts("grafana")
    for source in (*prometheus.values(), *alertmanager.values(), *grafana.values()):
        assert (ROOT / source).exists(), source
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/kicau.yml").read_text())
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert grafana[dashboards_path] == "./deploy/grafana/dashboards"
    assert grafana["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    home = environment(services()["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "deploy/grafana/dashboards" / Path(home).relative_to(dashboards_path)).is_file()


# ---- Dockerfile and .dockerignore ---------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip() if pending else stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, arguments = pending.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
            pending = ""
    assert not pending, "Dockerfile ends inside a continued instruction"
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions():
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def test_dockerfile_is_a_python_3_11_slim_multi_stage_build() -> None:
    args = dict(a.split("=", 1) for keyword, a in dockerfile_instructions() if keyword == "ARG" and "=" in a)
    builder, runtime = stages()
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert builder[0][1] == "${PYTHON_IMAGE} AS builder"
    assert runtime[0][1].startswith("${PYTHON_IMAGE}")
    builder_runs = " ".join(a for keyword, a in builder if keyword == "RUN")
    assert "requirements.lock" in builder_runs and "/opt/venv" in builder_runs
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in runtime


def test_runtime_stage_runs_as_a_non_root_user_with_a_service_command() -> None:
    runtime = stages()[-1]
    users = [a for keyword, a in runtime if keyword == "USER"]
    assert users, "the runtime stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root uid lets Kubernetes verify runAsNonRoot"
    commands = [json.loads(a) for keyword, a in runtime if keyword == "CMD"]
    assert commands[-1][:2] == ["python", "-m"] and commands[-1][2].startswith("services.")


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    excluded = False
    for pattern in dockerignore_patterns():
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        candidates = [pattern, pattern.removeprefix("**/")]
        if any(fnmatch.fnmatch(prefix, p) for prefix in prefixes for p in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_local_state_out_and_build_inputs_in() -> None:
    for path in (".git", ".venv", ".stack", "kicau/__pycache__", "tests", "kicau.egg-info"):
        assert ignored(path), path
    for keyword, arguments in dockerfile_instructions():
        if keyword != "COPY" or arguments.startswith("--from"):
            continue
        for source in arguments.split()[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: missing from the repository"
            assert not ignored(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"
    for needed in ("stack/migrations/0001_core.cql", "deploy/init/migrate.py", "kicau/settings.py"):
        assert not ignored(needed), needed

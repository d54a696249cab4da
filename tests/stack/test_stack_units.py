"""Cheap checks of the stack's pieces: probes, port ownership, templates, statement splitting, Maven output."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack import classpath, engines, migrate, probes, procs, services
from stack.config import ENGINES_SRC, REDIS_SOCKET, STACK_DIR, StackError, fits_socket_address


def serve_once(reply: bytes) -> Iterator[int]:
    """A one-connection TCP server answering `reply` to whatever it receives; yields its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def handle() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(reply)

    thread = threading.Thread(target=handle, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        thread.join(timeout=2)


@pytest.fixture
def free_port() -> int:
    return procs.free_port()


def test_kafka_request_layout() -> None:
    frame = probes.kafka_api_versions_request(42, "abc")
    size, api_key, version, correlation, client_len = struct.unpack_from(">ihhih", frame)
    assert (api_key, version, correlation, client_len) == (18, 0, 42, 3)
    assert frame[14:] == b"abc" and size == len(frame) - 4


def test_kafka_response_parsing() -> None:
    ok = struct.pack(">ihi", 7, 0, 1) + struct.pack(">hhh", 18, 0, 4)
    assert probes.parse_kafka_api_versions(ok, 7) is None
    assert "correlation" in (probes.parse_kafka_api_versions(ok, 8) or "")
    failed = struct.pack(">ihi", 7, 35, 0)
    assert "error_code 35" in (probes.parse_kafka_api_versions(failed, 7) or "")


def test_cql_header_parsing() -> None:
    assert bytes([4, 0, 0, 0, 5, 0, 0, 0, 0]) == probes.CQL_OPTIONS_V4
    assert probes.parse_cql_header(bytes([0x84, 0, 0, 0, 6, 0, 0, 0, 0])) is None
    assert "opcode" in (probes.parse_cql_header(bytes([0x84, 0, 0, 0, 0, 0, 0, 0, 0])) or "")
    assert "version" in (probes.parse_cql_header(bytes([0x83, 0, 0, 0, 6, 0, 0, 0, 0])) or "")


def test_redis_probe_against_fake_server() -> None:
    for port in serve_once(b"+PONG\r\n"):
        assert probes.probe_redis(port) is None
    for port in serve_once(b"-LOADING Redis is loading the dataset in memory\r\n"):
        assert "LOADING" in (probes.probe_redis(port) or "")


def test_cql_probe_against_fake_server() -> None:
    for port in serve_once(bytes([0x84, 0, 0, 0, 6, 0, 0, 0, 2, 0, 0])):
        assert probes.probe_cassandra(port) is None


def test_probes_on_closed_port(free_port: int) -> None:
    assert probes.probe_redis(free_port) == "connection refused"
    assert probes.probe_kafka(free_port) == "connection refused"
    assert probes.probe_cassandra(free_port) == "connection refused"
    assert probes.probe_http(free_port) == "connection refused"


def test_port_owner_finds_this_process() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        owner = procs.port_owner(port)
        assert owner is not None and owner.pid == os.getpid()
        assert "python" in owner.command or "pytest" in owner.command
    assert procs.port_owner(port) is None


def test_taken_port_is_reported_with_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        monkeypatch.setenv("KICAU_REDIS_PORT", str(port))
        with pytest.raises(StackError) as info:
            engines.check_ports_free(engines.Redis())
    assert f"port {port}" in str(info.value) and f"pid {os.getpid()}" in str(info.value)


def test_stale_pid_file_is_removed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    pid_file.write_text(f"{os.getpid()}\n")
    assert procs.live_pid(pid_file, "no-such-marker-xyz") is None
    assert not pid_file.exists()
    pid_file.write_text("not a pid\n")
    assert procs.live_pid(pid_file, "python") is None and not pid_file.exists()


def test_render_fills_and_refuses_unknown_placeholders() -> None:
    assert engines.render("a={{x}} b={{y}}", {"x": 1, "y": "z"}) == "a=1 b=z"
    with pytest.raises(StackError):
        engines.render("{{missing}}", {})


def test_redis_conf_template() -> None:
    text = engines.render(
        (ENGINES_SRC / "redis" / "redis.conf.tmpl").read_text(),
        {"host": "127.0.0.1", "port": 6379, "data_dir": "/d",
         "unix_socket": engines.redis_unix_socket(Path("/s/r.sock"))},
    )
    lines = {line.strip() for line in text.splitlines()}
    for wanted in (
        "bind 127.0.0.1", "daemonize no", "dir /d", "appendonly yes", "appendfsync everysec", 'save ""',
        "maxmemory-policy noeviction",
        "unixsocket /s/r.sock", "unixsocketperm 700",
    ):  # fmt: skip
        assert wanted in lines
    # A checkout too deep for a socket address keeps Redis on TCP only.
    assert engines.redis_unix_socket(Path("/" + "d" * 120) / "redis.sock").startswith("#")


def test_services_on_this_host_are_reached_on_their_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS", "GRAPH", "POST", "TIMELINE", "FANOUT", "GATEWAY"):
        monkeypatch.delenv(f"KICAU_{name}_URL", raising=False)
        monkeypatch.delenv(f"KICAU_{name}_CALL_SOCKET", raising=False)
    env = services.service_env()
    assert env["KICAU_REDIS_URL"] == f"unix://{REDIS_SOCKET}?db=0"
    for name in ("graph", "post", "timeline"):
        path = STACK_DIR / "services" / f"{name}.call.sock"
        assert env[f"KICAU_{name.upper()}_CALL_SOCKET"] == str(path)
        assert env[f"KICAU_{name.upper()}_URL"] == f"kicau+unix://{path}"
    # The gateway is public and the fanout serves only metrics: reached on their ports.
    assert env["KICAU_GATEWAY_URL"].startswith("http://127.0.0.1:") and "KICAU_GATEWAY_CALL_SOCKET" not in env
    assert env["KICAU_FANOUT_URL"].startswith("http://127.0.0.1:") and "KICAU_FANOUT_CALL_SOCKET" not in env
    # An address the user set is kept as it is.
    monkeypatch.setenv("KICAU_TIMELINE_URL", "http://10.0.0.5:8082")
    env = services.service_env()
    assert env["KICAU_TIMELINE_URL"] == "http://10.0.0.5:8082" and "KICAU_TIMELINE_CALL_SOCKET" not in env
    assert not fits_socket_address(Path("/" + "d" * 120) / "timeline.sock")


def test_templates_have_no_unfilled_placeholders() -> None:
    values = {"host": "h", "port": 1, "controller_port": 2, "storage_port": 3, "data_dir": "/d", "unix_socket": ""}
    for template in ENGINES_SRC.glob("*/*.tmpl"):
        assert "{{" not in engines.render(template.read_text(), values), template


def test_split_statements() -> None:
    cql = """
    -- a comment; with a semicolon
    CREATE TABLE a (id int PRIMARY KEY); // trailing comment
    /* block; comment */ INSERT INTO a (id, t) VALUES (1, 'it''s; fine');
    CREATE FUNCTION f() RETURNS int LANGUAGE java AS $$ return 1; $$
    """
    assert migrate.split_statements(cql) == [
        "CREATE TABLE a (id int PRIMARY KEY)",
        "INSERT INTO a (id, t) VALUES (1, 'it''s; fine')",
        "CREATE FUNCTION f() RETURNS int LANGUAGE java AS $$ return 1; $$",
    ]


def test_migrations_are_discovered_in_order() -> None:
    found = migrate.discover()
    assert found and [m.version for m in found] == sorted(m.version for m in found)
    assert all(m.statements() for m in found)


def test_maven_error_lines_name_the_artifact() -> None:
    output = "\n".join(
        [
            "[INFO] scanning",
            "[ERROR] Failed to execute goal on project x: Could not resolve dependencies for project a:b:pom:1: "
            "The following artifacts could not be resolved: org.apache.cassandra:cassandra-all:jar:9.9.9",
            "[ERROR] ",
            "[ERROR] -> [Help 1]",
        ]
    )
    lines = classpath.maven_error_lines(output)
    assert "org.apache.cassandra:cassandra-all:jar:9.9.9" in lines[0]
    assert "[ERROR]" not in [line.strip() for line in lines]


def test_classpath_cache_is_dropped_when_a_jar_vanishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(classpath, "STACK_DIR", tmp_path)
    jar = tmp_path / "x.jar"
    jar.write_text("")
    (tmp_path / "classpath").mkdir()
    (tmp_path / "classpath" / "kafka.cp").write_text(str(jar))
    (tmp_path / "classpath" / "kafka.key").write_text(classpath.cache_key("kafka"))
    assert classpath.cached("kafka") == [str(jar)]
    jar.unlink()
    assert classpath.cached("kafka") is None


def test_the_stacks_prometheus_scrapes_each_service_where_the_stack_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    monkeypatch.setenv("KICAU_TIMELINE_PORT", "18082")
    monkeypatch.setenv("KICAU_ALERTMANAGER_PORT", "19095")
    jobs = engines.PROMETHEUS_JOBS.read_text() + (
        "  - job_name: elsewhere\n    static_configs:\n      - targets: [\"10.0.0.9:9100\"]\n")
    config = yaml.safe_load(engines.prometheus_config(jobs))
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets.pop("elsewhere") == ["10.0.0.9:9100"]  # not a Kicau service: left as deploy/ wrote it
    assert targets == {service.name: [f"127.0.0.1:{service.port}"] for service in services.SERVICES}
    assert targets["timeline"] == ["127.0.0.1:18082"]
    # What the dashboard relies on is kept: the jobs' names and scrape intervals, the global settings.
    original = yaml.safe_load(engines.PROMETHEUS_JOBS.read_text())
    assert config["global"] == original["global"]
    assert [job.get("scrape_interval") for job in config["scrape_configs"][:-1]] == \
        [job.get("scrape_interval") for job in original["scrape_configs"]]
    # The alerts, named where they are: the written configuration lives in .stack/prometheus/, not beside them.
    assert config["rule_files"] == [str(engines.PROMETHEUS_JOBS.parent / "alerts.yml")]
    assert Path(config["rule_files"][0]).is_file()
    # Its alerts go to the stack's Alertmanager, at the port the stack runs it on.
    assert config["alerting"] == {"alertmanagers": [{"static_configs": [{"targets": ["127.0.0.1:19095"]}]}]}
    assert original["alerting"]["alertmanagers"][0]["static_configs"] == [{"targets": ["127.0.0.1:9095"]}]


def test_every_engine_has_ports_of_its_own() -> None:
    # Alertmanager's usual 9093 is Kafka's controller here: the stack runs it on 9095.
    names = [engine.name for engine in engines.ENGINES]
    assert "alertmanager" in names and len(set(names)) == len(names)
    engine_ports = [port for engine in engines.ENGINES for port in engine.all_ports]
    assert 9093 in engine_ports and 9095 in engine_ports
    assert len(set(engine_ports)) == len(engine_ports), engine_ports
    assert engines.ALERTMANAGER_CONFIG.is_file()


def test_debian_installs_run_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis and Prometheus are prepared in parallel threads; dpkg refuses a second installer while one runs (a cold
    `make up` failed so), so their installs are taken in turn, each waiting on dpkg's lock for outside installers."""
    installed: set[str] = set()
    running = 0
    most_at_once = 0
    calls: list[list[str]] = []
    guard = threading.Lock()

    def fake_run(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        nonlocal running, most_at_once
        with guard:
            calls.append(argv)
            running += 1
            most_at_once = max(most_at_once, running)
        time.sleep(0.05)
        installed.add(argv[-1])
        with guard:
            running -= 1
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(procs, "which", lambda command: f"/usr/bin/{command}" if command in installed else None)
    found: list[str] = []
    wanted = ["redis-server", "prometheus", "redis-server"]  # the third asks for what the first installs
    threads = [threading.Thread(target=lambda c=c: found.append(engines.ensure_debian_command(c, c, lambda _: None,
                                                                                              "by hand")))
               for c in wanted]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert sorted(found) == ["/usr/bin/prometheus", "/usr/bin/redis-server", "/usr/bin/redis-server"]
    assert most_at_once == 1
    assert len(calls) == 2, "a package installed while a caller waited is not installed again"
    assert all(any(arg.startswith("DPkg::Lock::Timeout=") for arg in argv) for argv in calls)

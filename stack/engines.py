"""The engines: how to configure, start, probe and stop Kafka, Cassandra and Redis under .stack/, and Prometheus
scraping the stack's services."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import yaml

from stack import classpath, probes, procs, services
from stack.config import ENGINES_SRC, HOST, REDIS_SOCKET, ROOT, STACK_DIR, StackError, fits_socket_address, ports

Say = Callable[[str], None]

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def render(template: str, values: dict[str, object]) -> str:
    """Fill {{name}} placeholders; a placeholder without a value is a bug in the template, not a blank."""

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise StackError(f"template placeholder {{{{{key}}}}} has no value", "fix stack/engines templates")
        return str(values[key])

    return _PLACEHOLDER.sub(sub, template)


def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = procs.which("java")
    if found is None:
        raise StackError("`java` is not on PATH", "install a Java 17 JDK (apt-get install -y openjdk-17-jdk-headless)")
    return found


def gc_log_flags(log: Path) -> list[str]:
    """Every collection's pause, one line each, in a file of the engine's own (two of 8 MB at most, rotated), as
    Cassandra's and Kafka's own start scripts do. Cassandra logs only pauses over 200 ms (GCInspector); the
    shorter ones that stall a write for tens of ms show here, and the bench reads them (bench/delivery.py)."""
    return [f"-Xlog:gc:file={log}:time,uptimemillis:filecount=2,filesize=8m"]


def cds_flags(engine: str, jars: list[str], java_agent: bool = False) -> list[str]:
    """Application class-data sharing: the first start records the loaded classes at exit, later starts map them.

    Class loading dominates a JVM's start on two cores; the archive is tied to the exact classpath and JVM, so it
    is keyed like the classpath cache and rebuilt when either changes. A stale archive is only a warning.
    """
    if os.environ.get("KICAU_STACK_CDS", "1") == "0":
        return []
    archive = classpath.cache_dir() / f"{engine}.jsa"
    key_file = classpath.cache_dir() / f"{engine}.jsa.key"
    key = hashlib.sha256("\0".join([java(), _java_version(), *jars]).encode()).hexdigest()
    # jamm only measures objects and never rewrites classes, so archiving alongside it is safe.
    agent = ["-XX:+UnlockDiagnosticVMOptions", "-XX:+AllowArchivingWithJavaAgent"] if java_agent else []
    if archive.is_file() and key_file.is_file() and key_file.read_text().strip() == key:
        return [*agent, f"-XX:SharedArchiveFile={archive}", "-Xshare:auto"]
    archive.unlink(missing_ok=True)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key + "\n")
    return [*agent, f"-XX:ArchiveClassesAtExit={archive}"]


def _java_version() -> str:
    real = os.path.realpath(java())
    try:
        return f"{real}:{os.stat(real).st_mtime_ns}"
    except OSError:
        return real


class Engine:
    name: str = ""
    marker: str = ""  # a substring of our process's command line, to tell it from a recycled pid

    @property
    def dir(self) -> Path:
        return STACK_DIR / self.name

    @property
    def pid_file(self) -> Path:
        return self.dir / "pid"

    @property
    def stdout_log(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def logs(self) -> list[Path]:
        return [self.stdout_log]

    @property
    def gc_log(self) -> Path:
        """The JVM engines' collections, one line a pause (``gc_log_flags``)."""
        return self.dir / "gc.log"

    @property
    def port(self) -> int:
        raise NotImplementedError

    @property
    def all_ports(self) -> list[int]:
        return [self.port]

    def probe(self) -> str | None:
        raise NotImplementedError

    def prepare(self, say: Say) -> list[str]:
        """Write configs, do one-time setup, return the argv to start the engine."""
        raise NotImplementedError

    def pid(self) -> int | None:
        return procs.live_pid(self.pid_file, self.marker)


class Kafka(Engine):
    name = "kafka"
    marker = "kafka.Kafka"

    @property
    def port(self) -> int:
        return ports().kafka

    @property
    def all_ports(self) -> list[int]:
        return [ports().kafka, ports().kafka_controller]

    def probe(self) -> str | None:
        return probes.probe_kafka(self.port)

    def _jvm_opts(self) -> list[str]:
        return [
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.dir / 'logs'}",
            "-Djava.awt.headless=true",
        ]

    def prepare(self, say: Say) -> list[str]:
        jars = classpath.resolve(self.name, _Collector(say))
        cp = os.pathsep.join(jars)
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        p = ports()
        props = self.dir / "server.properties"
        template = (ENGINES_SRC / "kafka" / "server.properties.tmpl").read_text()
        _write_if_changed(
            props,
            render(template, {"host": HOST, "port": p.kafka, "controller_port": p.kafka_controller, "data_dir": data}),
        )
        _write_if_changed(self.dir / "log4j2.properties", (ENGINES_SRC / "kafka" / "log4j2.properties").read_text())
        if not (data / "meta.properties").exists():
            self._format(cp, props, say)
        return [
            java(), "-Xms256m", "-Xmx512m", *cds_flags(self.name, jars),
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent", *gc_log_flags(self.gc_log),
            *self._jvm_opts(),
            "-cp", cp, "kafka.Kafka", str(props),
        ]  # fmt: skip

    def cluster_id(self) -> str:
        id_file = self.dir / "cluster.id"
        if id_file.exists():
            return id_file.read_text().strip()
        # Same shape as Kafka's Uuid.randomUuid(): URL-safe base64 of 16 random bytes, never starting with '-'.
        while True:
            cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            if not cid.startswith("-"):
                break
        id_file.write_text(cid + "\n")
        return cid

    def _format(self, cp: str, props: Path, say: Say) -> None:
        say("formatting KRaft storage (first start)")
        argv = [
            java(), "-Xmx256m", "-XX:TieredStopAtLevel=1", *self._jvm_opts(),
            "-cp", cp, "kafka.tools.StorageTool", "format", "--standalone",
            "-t", self.cluster_id(), "-c", str(props), "--ignore-formatted",
        ]  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).strip().splitlines()[-20:]
            raise StackError("Kafka storage format failed:\n  " + "\n  ".join(out), "see the lines above")


class Cassandra(Engine):
    name = "cassandra"
    marker = "CassandraDaemon"

    @property
    def logs(self) -> list[Path]:
        return [self.stdout_log, self.dir / "logs" / "system.log"]

    @property
    def port(self) -> int:
        return ports().cassandra

    @property
    def all_ports(self) -> list[int]:
        p = ports()
        return [p.cassandra, p.cassandra_storage, p.cassandra_jmx]

    def probe(self) -> str | None:
        return probes.probe_cassandra(self.port)

    def prepare(self, say: Say) -> list[str]:
        jars = classpath.resolve(self.name, _Collector(say))
        data = self.dir / "data"
        for sub in ("data", "commitlog", "saved_caches", "hints", "cdc_raw"):
            (data / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("logs", "triggers", "tmp"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        p = ports()
        yaml = self.dir / "cassandra.yaml"
        template = (ENGINES_SRC / "cassandra" / "cassandra.yaml.tmpl").read_text()
        _write_if_changed(
            yaml, render(template, {"host": HOST, "port": p.cassandra, "storage_port": p.cassandra_storage,
                                    "data_dir": data})
        )  # fmt: skip
        _write_if_changed(self.dir / "logback.xml", (ENGINES_SRC / "cassandra" / "logback.xml").read_text())
        jamm = classpath.find_jar(jars, "jamm-")
        return [
            *_without_memlock(), java(), "-Xms1G", "-Xmx1G", "-Xss256k", *cds_flags(self.name, jars, java_agent=True),
            "-XX:+UseG1GC", "-XX:+ParallelRefProcEnabled", "-XX:MaxGCPauseMillis=300",
            "-XX:+HeapDumpOnOutOfMemoryError", f"-XX:HeapDumpPath={self.dir / 'logs'}",
            "-XX:+ExitOnOutOfMemoryError", "-XX:+PerfDisableSharedMem", *gc_log_flags(self.gc_log),
            "-Djava.net.preferIPv4Stack=true", "-Dchronicle.analytics.disable=true",
            *cassandra_jpms_flags(),
            "-Dio.netty.tryReflectionSetAccessible=true", "-Dio.netty.allocator.useCacheForAllThreads=true",
            "-Dio.netty.allocator.maxOrder=11",
            f"-javaagent:{jamm}",
            f"-Dcassandra.config={yaml.as_uri()}",
            f"-Dlogback.configurationFile={self.dir / 'logback.xml'}",
            f"-Dcassandra.logdir={self.dir / 'logs'}",
            f"-Dcassandra.storagedir={data}",
            f"-Dcassandra.triggers_dir={self.dir / 'triggers'}",
            # JNA unpacks its native library here; /tmp may be mounted noexec.
            f"-Djna.tmpdir={self.dir / 'tmp'}",
            # Without it CassandraDaemon closes stdout/stderr and fatal start-up errors vanish.
            "-Dcassandra-foreground=yes",
            # A lone seed has nobody to settle gossip with; the default wait costs at least 8 s.
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            f"-Dcassandra.jmx.local.port={p.cassandra_jmx}",
            # Config files are passed by path, so no conf directory on the classpath (CDS refuses directories).
            "-cp", os.pathsep.join(jars),
            "org.apache.cassandra.service.CassandraDaemon",
        ]  # fmt: skip


def _without_memlock() -> list[str]:
    """As root, Cassandra's unconditional mlockall() pins the whole 1 GiB heap (idle RSS ~1.5 GiB) and faults
    it in during start-up. Dropping CAP_IPC_LOCK makes mlockall fail softly (a logged warning) instead."""
    setpriv = procs.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        return []
    return [setpriv, "--bounding-set=-ipc_lock", "--"]


def cassandra_jpms_flags() -> list[str]:
    """Cassandra 5.0's conf/jvm17-server.options: it reaches into JDK internals and dies without these."""
    exports = [
        "java.base/jdk.internal.misc", "java.management.rmi/com.sun.jmx.remote.internal.rmi",
        "java.management/com.sun.jmx.remote.security", "java.rmi/sun.rmi.registry", "java.rmi/sun.rmi.server",
        "java.sql/java.sql", "java.base/java.lang.ref", "jdk.unsupported/sun.misc",
        "jdk.attach/sun.tools.attach", "jdk.compiler/com.sun.tools.javac.file",
    ]  # fmt: skip
    opens = [
        "java.base/java.lang.module", "java.base/jdk.internal.loader", "java.base/jdk.internal.ref",
        "java.base/jdk.internal.reflect", "java.base/jdk.internal.math", "java.base/jdk.internal.module",
        "java.base/jdk.internal.util.jar", "jdk.management/com.sun.management.internal", "java.base/sun.nio.ch",
        "java.base/java.io", "java.base/java.lang.reflect", "java.base/java.lang", "java.base/java.util",
        "java.base/java.nio", "jdk.compiler/com.sun.tools.javac",
    ]  # fmt: skip
    flags = ["-Djdk.attach.allowAttachSelf=true"]
    flags += [f"--add-exports={m}=ALL-UNNAMED" for m in exports]
    flags += [f"--add-opens={m}=ALL-UNNAMED" for m in opens]
    return flags


class Redis(Engine):
    name = "redis"
    marker = "redis-server"

    @property
    def port(self) -> int:
        return ports().redis

    def probe(self) -> str | None:
        return probes.probe_redis(self.port)

    def prepare(self, say: Say) -> list[str]:
        binary = ensure_debian_command("redis-server", "redis-server", say, "install redis-server 7.x by hand")
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "redis.conf"
        template = (ENGINES_SRC / "redis" / "redis.conf.tmpl").read_text()
        _write_if_changed(conf, render(template, {
            "host": HOST, "port": self.port, "data_dir": data, "unix_socket": redis_unix_socket(REDIS_SOCKET)}))
        return [binary, str(conf)]


def redis_unix_socket(path: Path) -> str:
    """redis.conf's lines for its Unix socket at ``path`` (this user only), or a comment saying why there is none."""
    if not fits_socket_address(path):
        return "# no Unix socket: this checkout's path is too long for a socket address"
    return f"unixsocket {path}\nunixsocketperm 700"


# The engines are prepared in parallel threads (stack/cli.py), and dpkg takes one installer at a time: on a machine
# with neither Redis nor Prometheus, two concurrent apt-get runs made the second fail on dpkg's lock.
_DEBIAN_INSTALLS = threading.Lock()
# Another installer outside the stack (unattended-upgrades, a provisioning script) is waited for, not failed on.
_DPKG_LOCK_WAIT_S = 600


def ensure_debian_command(command: str, package: str, say: Say, by_hand: str) -> str:
    """The path of ``command``, installing Debian's ``package`` first when it is missing (as root only)."""
    found = procs.which(command)
    if found:
        return found
    if os.geteuid() != 0:
        raise StackError(f"{command} is not installed", f"run: sudo apt-get install -y {package}")
    with _DEBIAN_INSTALLS:
        return procs.which(command) or _apt_install(command, package, say, by_hand)


def _apt_install(command: str, package: str, say: Say, by_hand: str) -> str:
    say(f"{command} missing: installing the Debian package {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt_get = ["apt-get", "-o", f"DPkg::Lock::Timeout={_DPKG_LOCK_WAIT_S}"]
    install = [*apt_get, "install", "-y", "--no-install-recommends", package]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        # Fresh containers ship with empty package lists.
        subprocess.run([*apt_get, "update"], env=env, capture_output=True, check=False)
        proc = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-10:]
            raise StackError(f"apt-get install {package} failed:\n  " + "\n  ".join(tail), by_hand)
    found = procs.which(command)
    if not found:
        raise StackError(f"{command} is still missing after apt-get install {package}", by_hand)
    return found


# deploy/prometheus's configuration for Kicau run without containers: its jobs, scrape intervals and labels are
# what deploy/grafana's dashboard is written against, so the stack's Prometheus takes them as they are.
PROMETHEUS_JOBS = ROOT / "deploy" / "prometheus" / "prometheus.yml"


class Prometheus(Engine):
    """Prometheus from Debian's package, scraping this stack's services with deploy/prometheus's jobs: the metrics,
    and deploy/grafana's dashboard queries, can be looked at (``http://127.0.0.1:9090``) without containers."""

    name = "prometheus"
    marker = "prometheus"

    @property
    def port(self) -> int:
        return ports().prometheus

    def probe(self) -> str | None:
        return probes.probe_http(self.port, "/-/ready")

    def prepare(self, say: Say) -> list[str]:
        binary = ensure_debian_command("prometheus", "prometheus", say, "install Prometheus 2.x by hand")
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.dir / "prometheus.yml"
        _write_if_changed(config, prometheus_config(PROMETHEUS_JOBS.read_text()))
        return [binary, f"--config.file={config}", f"--storage.tsdb.path={data}",
                f"--web.listen-address={HOST}:{self.port}", "--storage.tsdb.retention.time=7d"]


def prometheus_config(jobs_yaml: str) -> str:
    """deploy/prometheus's configuration with each service's job pointed at the port the stack runs it on
    (``KICAU_<NAME>_PORT``), its rule files (the alerts) named where they are, and its alerts sent to the stack's
    Alertmanager; a job that names no Kicau service is kept as it is."""
    config = yaml.safe_load(jobs_yaml)
    # Rule files are named relative to deploy/prometheus, where the configuration is written from.
    config["rule_files"] = [str(PROMETHEUS_JOBS.parent / path) for path in config.get("rule_files", [])]
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [f"{HOST}:{ports().alertmanager}"]}]}]}
    for job in config.get("scrape_configs", []):
        service = services.by_name(job.get("job_name", ""))
        if service is not None:
            job["static_configs"] = [{"targets": [f"{HOST}:{service.port}"]}]
    header = "# Written by `python -m stack up` from deploy/prometheus/prometheus.yml, with this stack's ports.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


# Where deploy/prometheus/alerts.yml's alerts go once Prometheus raises them: deploy/alertmanager's routing, as it is.
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


class Alertmanager(Engine):
    """Alertmanager from Debian's package, with deploy/alertmanager's routing: the stack's Prometheus sends it the
    alerts it raises, which it groups, inhibits and sends on to the receivers configured there (none by default:
    ``http://127.0.0.1:9095`` lists them). One instance: its gossip for a highly available pair is not opened."""

    name = "alertmanager"
    marker = "alertmanager"

    @property
    def port(self) -> int:
        return ports().alertmanager

    def probe(self) -> str | None:
        return probes.probe_http(self.port, "/-/ready")

    def prepare(self, say: Say) -> list[str]:
        binary = ensure_debian_command("prometheus-alertmanager", "prometheus-alertmanager", say,
                                       "install Alertmanager 0.2x by hand")
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        return [binary, f"--config.file={ALERTMANAGER_CONFIG}", f"--storage.path={data}",
                f"--web.listen-address={HOST}:{self.port}", "--cluster.listen-address="]


class _Collector(list[str]):
    """A list that forwards appended progress lines to `say` as they come."""

    def __init__(self, say: Say) -> None:
        super().__init__()
        self._say = say

    def append(self, line: str) -> None:
        super().append(line)
        self._say(line)


ENGINES: list[Engine] = [Kafka(), Cassandra(), Redis(), Alertmanager(), Prometheus()]


def by_name(name: str) -> Engine | None:
    return next((e for e in ENGINES if e.name == name), None)


def log_tail(engine: Engine, lines: int = 40) -> str:
    parts = []
    for log in engine.logs:
        text = procs.tail(log, lines)
        if text:
            parts.append(f"--- last {len(text)} lines of {log.relative_to(ROOT)} ---\n" + "\n".join(text))
    return "\n".join(parts) or "(no log output)"


# How long a listening socket no process owns may take to go. An engine that has just exited (a `down` a moment
# ago) can leave one while the kernel tears the process down: seen once for Cassandra's JMX port on 2026-12-02,
# right after `stack down` in tests/stack/test_stack_engines.py.
ORPHAN_SOCKET_SECONDS = 15.0


def check_ports_free(engine: Engine) -> None:
    for port in engine.all_ports:
        owner = procs.port_owner(port)
        deadline = time.monotonic() + ORPHAN_SOCKET_SECONDS
        while owner is not None and owner.pid is None and time.monotonic() < deadline:
            time.sleep(0.2)
            owner = procs.port_owner(port)
        if owner is not None:
            raise StackError(
                f"{engine.name}: port {port} is already taken by {owner.describe()}",
                f"stop that process or set KICAU_{engine.name.upper()}_*PORT to another port",
            )


def ensure_running(engine: Engine, timeout: float, say: Say) -> str:
    """Start the engine unless it already runs; wait until its probe answers. Returns a status word."""
    pid = engine.pid()
    if pid is not None:
        if engine.probe() is None:
            say(f"already running (pid {pid})")
            return "running"
        owner = procs.port_owner(engine.port)
        if owner is not None and not procs.owned_by(owner.pid, pid):
            raise StackError(
                f"{engine.name}: our pid {pid} runs, but port {engine.port} belongs to {owner.describe()}",
                "was the port changed while the stack ran? `python -m stack down`, free the port, `up` again",
            )
        say(f"pid {pid} is alive but not answering yet: waiting")
        wait_ready(engine, pid, None, timeout, say)
        return "started"
    check_ports_free(engine)
    argv = engine.prepare(say)
    start = time.monotonic()
    proc = procs.spawn(argv, engine.stdout_log, cwd=engine.dir)
    procs.write_pid(engine.pid_file, proc.pid)
    say(f"started (pid {proc.pid}), waiting for it to answer on {HOST}:{engine.port}")
    wait_ready(engine, proc.pid, proc, timeout, say)
    say(f"ready in {time.monotonic() - start:.1f}s")
    return "started"


def wait_ready(engine: Engine, pid: int, proc: subprocess.Popen[bytes] | None, timeout: float, say: Say) -> None:
    deadline = time.monotonic() + timeout
    last = "not probed yet"
    while time.monotonic() < deadline:
        died = proc.poll() is not None if proc is not None else not procs.is_alive(pid)
        if died:
            engine.pid_file.unlink(missing_ok=True)
            code = f" with exit code {proc.returncode}" if proc is not None else ""
            raise StackError(
                f"{engine.name} (pid {pid}) exited{code} during start-up\n{log_tail(engine)}",
                f"fix the cause above; full logs in {engine.dir.relative_to(ROOT)}/",
            )
        problem = engine.probe()
        if problem is None:
            return
        last = problem
        time.sleep(0.5)
    raise StackError(
        f"{engine.name} did not answer on port {engine.port} within {timeout:.0f}s (last probe: {last})\n"
        f"{log_tail(engine)}",
        "raise KICAU_STACK_TIMEOUT on a slow machine, or `python -m stack logs " + engine.name + "`",
    )


def stop(engine: Engine, say: Say) -> None:
    pid = engine.pid()
    if pid is None:
        say("not running")
        return
    say(f"stopping pid {pid}")
    start = time.monotonic()
    clean = procs.stop(pid, grace=60.0)
    engine.pid_file.unlink(missing_ok=True)
    say(f"stopped in {time.monotonic() - start:.1f}s" + ("" if clean else " (had to SIGKILL)"))

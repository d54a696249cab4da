"""Kicau's own service processes: started after the engines, stopped before them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stack import probes, procs
from stack.config import (
    HOST,
    REDIS_SOCKET,
    ROOT,
    STACK_DIR,
    VENV_PYTHON,
    StackError,
    cassandra_keyspace,
    env_int,
    fits_socket_address,
    ports,
)

Say = Callable[[str], None]


@dataclass(frozen=True)
class Service:
    name: str
    default_port: int

    @property
    def port(self) -> int:
        return env_int(f"KICAU_{self.name.upper()}_PORT", self.default_port)

    @property
    def module(self) -> str:
        return f"services.{self.name}"

    @property
    def marker(self) -> str:
        return f"-m {self.module}"

    @property
    def pid_file(self) -> Path:
        return STACK_DIR / "services" / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return STACK_DIR / "services" / f"{self.name}.log"

    @property
    def call_socket(self) -> Path | None:
        """The Unix socket an internal service also answers internal calls on (kicau/internal_rpc.py), or None:
        the gateway is reached over TCP only, the fanout serves nothing but metrics, and a path too long for a
        socket address (108 bytes on Linux) is left to HTTP on TCP."""
        path = STACK_DIR / "services" / f"{self.name}.call.sock"
        return path if self.name in INTERNAL and fits_socket_address(path) else None

    def exists(self) -> bool:
        return (ROOT / "services" / self.name / "__main__.py").is_file()

    def pid(self) -> int | None:
        return procs.live_pid(self.pid_file, self.marker)

    def probe(self) -> str | None:
        return probes.probe_http(self.port, "/readyz")


# Called by the gateway: each also answers calls on a Unix socket under the stack (``Service.call_socket``).
INTERNAL = frozenset({"graph", "post", "timeline"})
# Start order: dependencies of the gateway first, so it finds them answering.
SERVICES: list[Service] = [
    Service("graph", 8084),
    Service("post", 8081),
    Service("timeline", 8082),
    Service("fanout", 8083),
    Service("push", 8085),
    Service("gateway", 8080),
]


def by_name(name: str) -> Service | None:
    return next((s for s in SERVICES if s.name == name), None)


def python() -> str:
    if VENV_PYTHON.exists():
        return str(VENV_PYTHON)
    raise StackError(f"{VENV_PYTHON.relative_to(ROOT)} is missing", "run `make venv` first")


def redis_url() -> str:
    """The stack's Redis as its clients on this host reach it: on its Unix socket (stack/engines/redis), or over
    TCP when that path is too long for a socket address: ~9% less CPU per home page than over TCP
    (bench/README.md)."""
    # The socket exists once the stack's Redis runs with it (a Redis started before it had one keeps to TCP).
    if fits_socket_address(REDIS_SOCKET) and REDIS_SOCKET.is_socket():
        return f"unix://{REDIS_SOCKET}?db=0"
    return f"redis://{HOST}:{ports().redis}/0"


def service_env() -> dict[str, str]:
    """The services read KICAU_* settings; point them at the ports this stack actually uses."""
    p = ports()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("KICAU_KAFKA_BOOTSTRAP", f"{HOST}:{p.kafka}")
    env.setdefault("KICAU_CASSANDRA_HOSTS", HOST)
    env.setdefault("KICAU_CASSANDRA_PORT", str(p.cassandra))
    env.setdefault("KICAU_CASSANDRA_KEYSPACE", cassandra_keyspace())
    env.setdefault("KICAU_REDIS_URL", redis_url())
    for service in SERVICES:
        name = service.name.upper()
        socket = service.call_socket
        if socket is not None and f"KICAU_{name}_URL" not in env:
            # Callers on this host (the gateway) call the service on its call socket; it answers HTTP on its port
            # too, for probes, tests and anyone else.
            env.setdefault(f"KICAU_{name}_CALL_SOCKET", str(socket))
            env[f"KICAU_{name}_URL"] = f"kicau+unix://{socket}"
        env.setdefault(f"KICAU_{name}_URL", f"http://{HOST}:{service.port}")
    gateway = by_name("gateway")
    if gateway is not None:
        env.setdefault("KICAU_PUBLIC_URL", f"http://{HOST}:{gateway.port}")
    # A development stack: web push subscriptions may name receivers on this host over plain http (the tests'
    # receivers, a developer's own), and statuses' link previews may fetch pages served on it; a deployment leaves
    # both off (kicau/settings.py, kicau/outbound.py).
    env.setdefault("KICAU_PUSH_ALLOW_INSECURE_ENDPOINTS", "true")
    env.setdefault("KICAU_LINK_PREVIEWS_ALLOW_PRIVATE_HOSTS", "true")
    # A failed push's later rounds come seconds apart, not minutes (services/push/later.py), so that a test sees
    # one within its wait.
    env.setdefault("KICAU_PUSH_LATER_FIRST_SECONDS", "3")
    return env


def start_all(timeout: float, say: Callable[[str, str], None]) -> list[str]:
    """Spawn every missing service, then wait for all of them together. Returns the names now running."""
    spawned: list[tuple[Service, int]] = []
    running: list[str] = []
    for service in SERVICES:
        if not service.exists():
            say(service.name, f"skipped: services/{service.name}/__main__.py does not exist yet")
            continue
        pid = service.pid()
        if pid is not None:
            say(service.name, f"already running (pid {pid})")
            spawned.append((service, pid))
            continue
        owner = procs.port_owner(service.port)
        if owner is not None:
            raise StackError(f"{service.name}: port {service.port} is already taken by {owner.describe()}",
                             f"stop that process or set KICAU_{service.name.upper()}_PORT")  # fmt: skip
        env = service_env()
        proc = procs.spawn([python(), "-m", service.module], service.log, cwd=ROOT, env=env)
        procs.write_pid(service.pid_file, proc.pid)
        say(service.name, f"started (pid {proc.pid}) on port {service.port}")
        spawned.append((service, proc.pid))
    deadline = time.monotonic() + timeout
    pending = dict(spawned)
    last: dict[str, str] = {}
    while pending:
        for service, pid in list(pending.items()):
            procs.reap(pid)
            if not procs.is_alive(pid):
                service.pid_file.unlink(missing_ok=True)
                raise StackError(f"service {service.name} (pid {pid}) exited during start-up\n{_tail(service)}",
                                 f"see {service.log.relative_to(ROOT)}")  # fmt: skip
            problem = service.probe()
            if problem is None:
                say(service.name, f"ready on http://{HOST}:{service.port}")
                running.append(service.name)
                del pending[service]
            else:
                last[service.name] = problem
        if pending and time.monotonic() > deadline:
            service = next(iter(pending))
            raise StackError(
                f"service {service.name} not ready within {timeout:.0f}s "
                f"(GET /readyz: {last.get(service.name)})\n{_tail(service)}",
                "raise KICAU_SERVICE_TIMEOUT or check that its engines are up",
            )
        if pending:
            time.sleep(0.3)
    return running


def _tail(service: Service) -> str:
    lines = procs.tail(service.log, 40)
    return f"--- last {len(lines)} lines of {service.log.relative_to(ROOT)} ---\n" + "\n".join(lines)


def stop(service: Service, say: Say) -> None:
    pid = service.pid()
    if pid is None:
        return
    say(f"stopping pid {pid}")
    clean = procs.stop(pid, grace=60.0)
    service.pid_file.unlink(missing_ok=True)
    say("stopped" + ("" if clean else " (had to SIGKILL)"))

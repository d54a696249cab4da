"""`python -m stack <command>`: run Kicau's engines and services locally under .stack/."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from stack import engines, migrate, procs, services, topics
from stack.config import (
    HOST,
    ROOT,
    STACK_DIR,
    StackError,
    cassandra_keyspace,
    engine_timeout,
    ports,
    service_timeout,
)

T = TypeVar("T")

_print_lock = threading.Lock()
_t0 = time.monotonic()


def say(who: str, message: str) -> None:
    with _print_lock:
        for i, line in enumerate(message.splitlines() or [""]):
            prefix = f"[{time.monotonic() - _t0:6.1f}s] {who:<12}|" if i == 0 else " " * 22 + "|"
            print(f"{prefix} {line}", flush=True)


def sayer(who: str) -> Callable[[str], None]:
    return lambda message: say(who, message)


def _parallel(jobs: dict[str, Callable[[], T]]) -> dict[str, T]:
    """Run independent jobs at once; if any fail, raise one StackError naming every failure."""
    results: dict[str, T] = {}
    failures: list[tuple[str, BaseException]] = []
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except BaseException as exc:
                failures.append((name, exc))
    if not failures:
        return results
    if len(failures) == 1 and isinstance(failures[0][1], StackError):
        raise failures[0][1]
    lines, hints = [], []
    for name, error in failures:
        if isinstance(error, StackError):
            lines.append(f"{name}: {error}")
            if error.hint:
                hints.append(error.hint)
        else:
            lines.append(f"{name}: {type(error).__name__}: {error}")
    raise StackError("\n".join(lines), "; ".join(hints))


def engines_up() -> None:
    STACK_DIR.mkdir(exist_ok=True)
    timeout = engine_timeout()
    # Cassandra is the slowest to boot, so it goes first (it also gets Maven first on a cold run).
    order = sorted(engines.ENGINES, key=lambda e: e.name != "cassandra")
    _parallel({e.name: (lambda e=e: engines.ensure_running(e, timeout, sayer(e.name))) for e in order})  # type: ignore[misc]
    _parallel({"topics": _topics, "migrate": _migrate})


def _topics() -> None:
    created = topics.ensure_topics()
    say("kafka", f"created topics {', '.join(created)}" if created else "topics present")


def _migrate() -> None:
    applied = migrate.run()
    names = ", ".join(m.path.name for m in applied)
    say("cassandra", f"keyspace {cassandra_keyspace()}: applied {names}" if applied else
        f"keyspace {cassandra_keyspace()}: schema up to date")  # fmt: skip


def cmd_up(args: argparse.Namespace) -> int:
    engines_up()
    if args.engines_only:
        say("stack", "engines ready (--engines-only: services not started)")
        return 0
    running = services.start_all(service_timeout(), say)
    gateway = services.by_name("gateway")
    assert gateway is not None
    if "gateway" in running:
        say("stack", f"up: gateway at http://{HOST}:{gateway.port}, Prometheus at http://{HOST}:{ports().prometheus}, "
                     f"Alertmanager at http://{HOST}:{ports().alertmanager}")
    else:
        say("stack", f"up: engines ready; gateway not running yet (would be http://{HOST}:{gateway.port})")
    return 0


def cmd_engines_up(args: argparse.Namespace) -> int:
    args.engines_only = True
    return cmd_up(args)


def cmd_migrate(args: argparse.Namespace) -> int:
    _migrate()
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    for service in reversed(services.SERVICES):
        services.stop(service, sayer(service.name))
    _parallel({e.name: (lambda e=e: engines.stop(e, sayer(e.name))) for e in engines.ENGINES})  # type: ignore[misc]
    say("stack", "down (data kept in .stack/)")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    cmd_down(args)
    if STACK_DIR.exists():
        for child in STACK_DIR.iterdir():
            if child.name == "classpath":
                continue  # keeps the next `up` free of Maven
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    say("stack", "reset: engine data, logs and configs removed (classpath cache kept)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    rows: list[tuple[str, str, str, str]] = []
    unhealthy = False
    for engine in engines.ENGINES:
        pid = engine.pid()
        problem = engine.probe()
        unhealthy |= problem is not None
        rows.append((engine.name, str(pid) if pid else "-", str(engine.port), _health(pid, problem)))
    for service in services.SERVICES:
        if not service.exists() and service.pid() is None:
            rows.append((service.name, "-", str(service.port), "not written yet"))
            continue
        pid = service.pid()
        problem = service.probe()
        unhealthy |= problem is not None
        rows.append((service.name, str(pid) if pid else "-", str(service.port), _health(pid, problem)))
    header = ("NAME", "PID", "PORT", "HEALTH")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 1 if unhealthy and args.check else 0


def _health(pid: int | None, problem: str | None) -> str:
    if problem is None:
        return "ok" if pid else "ok (not started by this stack)"
    return f"down ({problem})" if pid is None else f"starting/unhealthy ({problem})"


def _log_files(name: str | None) -> list[Path]:
    if name is None:
        files = [log for e in engines.ENGINES for log in e.logs] + [s.log for s in services.SERVICES]
        return [f for f in files if f.exists()]
    engine = engines.by_name(name)
    if engine is not None:
        return engine.logs
    service = services.by_name(name)
    if service is not None:
        return [service.log]
    known = [e.name for e in engines.ENGINES] + [s.name for s in services.SERVICES]
    raise StackError(f"no component called {name!r}", "choose one of: " + ", ".join(known))


def cmd_logs(args: argparse.Namespace) -> int:
    files = [f for f in _log_files(args.name) if f.exists()]
    if not files:
        raise StackError("no logs yet", "run `python -m stack up` first")
    if args.follow:
        tail = procs.which("tail")
        if tail is None:
            raise StackError("`tail` is not installed", "install coreutils")
        sys.stdout.flush()
        os.execv(tail, [tail, "-n", str(args.lines), "-F", *map(str, files)])
    for path in files:
        print(f"==> {path.relative_to(ROOT)} <==")
        for line in procs.tail(path, args.lines):
            print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="start engines, create topics, migrate, start services")
    up.add_argument("--engines-only", action="store_true", help="skip the Kicau services")
    up.set_defaults(func=cmd_up)
    sub.add_parser("engines-up", help="same as `up --engines-only`").set_defaults(func=cmd_engines_up)
    sub.add_parser("migrate", help="apply pending Cassandra migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("down", help="stop services, then engines (data kept)").set_defaults(func=cmd_down)
    sub.add_parser("reset", help="down, then delete .stack/ data (classpath cache kept)").set_defaults(func=cmd_reset)
    status = sub.add_parser("status", help="pid, port and health of every engine and service")
    status.add_argument("--check", action="store_true", help="exit 1 if anything is unhealthy")
    status.set_defaults(func=cmd_status)
    logs = sub.add_parser("logs", help="tail logs of one component or all")
    logs.add_argument("name", nargs="?", help="kafka, cassandra, redis or a service name")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.set_defaults(func=cmd_logs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: not an error. Point stdout at /dev/null so the exit flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted (anything already started keeps running; `python -m stack down` stops it)",
              file=sys.stderr)  # fmt: skip
        return 130
    except Exception as exc:
        if os.environ.get("KICAU_STACK_DEBUG"):
            traceback.print_exc()
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        print("hint: rerun with KICAU_STACK_DEBUG=1 for the traceback", file=sys.stderr)
        return 1

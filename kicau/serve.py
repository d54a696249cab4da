"""Running a service's ASGI app: uvloop, httptools, no access log on the hot path."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import resource
import socket
import stat
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.importer import import_from_string

from kicau.coalesced_writes import CoalescingHttpProtocol
from kicau.internal_rpc import CallServer
from kicau.metrics import time_garbage_collections
from kicau.web import configure_logging

GC_FIRST_GENERATION_THRESHOLD = 50_000
# Where the hard limit of open files is "unlimited", the soft one is raised this far: Linux refuses more than its
# ``fs.nr_open`` (1,048,576 by default) anyway.
OPEN_FILES_WHEN_UNLIMITED = 1_048_576

log = logging.getLogger("kicau")


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, unix_socket: str = "", call_socket: str = "") -> None:
        super().__init__(config)
        self._unix_socket = unix_socket
        self._call_socket = call_socket
        self._call_server: asyncio.AbstractServer | None = None
        # The socket files this process bound, by path: its own inode each (``unlink_if_ours``).
        self._bound: dict[str, int] = {}

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._call_server is not None:
            self._call_server.close()  # no new callers; calls in flight are answered
        await super().shutdown(sockets)
        # Here rather than after ``run``: uvicorn re-raises the SIGTERM it caught once serving ends, which ends
        # the process before anything after ``run`` would execute.
        for path, inode in self._bound.items():
            unlink_if_ours(path, inode)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self._unix_socket and not self.should_exit:
            # Listening only once the application has started, as uvicorn does on its port: until then a caller
            # is refused at once rather than left waiting.
            config = self.config
            protocol: Any = config.http_protocol_class
            self.servers.append(await asyncio.get_running_loop().create_unix_server(
                functools.partial(protocol, config=config, server_state=self.server_state,
                                  app_state=self.lifespan.state),
                sock=self._listener(self._unix_socket), backlog=config.backlog))
        if self._call_socket and not self.should_exit:
            # The same application answers internal calls as frames (kicau/internal_rpc.py) on its call socket.
            app: ASGIApp = import_from_string(self.config.app)
            self._call_server = await asyncio.get_running_loop().create_unix_server(
                functools.partial(CallServer, app), sock=self._listener(self._call_socket),
                backlog=self.config.backlog)
        # Everything alive once the application has started (modules, settings, clients, prepared statements)
        # lives as long as the process: moved out of the collector's sight, a full collection no longer walks
        # it. Measured: a full collection over the ~90,000 objects of a started service took 75-220 ms here,
        # a pause every open stream and every request in flight waited out (kicau_gc_pause_seconds).
        gc.collect()
        gc.freeze()
        # The collector's first generation runs whenever tracked allocations outnumber frees by the threshold.
        # At the default 700, the objects of requests in flight alone crossed it every few requests; collections
        # were ~8% of the gateway's time under load. Cyclic garbage is rare once requests leave none (see
        # services/gateway/app.py), so collecting after 50,000 costs at most a few MB.
        gc.set_threshold(GC_FIRST_GENERATION_THRESHOLD, 10, 10)


    def _listener(self, path: str) -> socket.socket:
        listener = unix_listener(path)
        self._bound[path] = os.stat(path).st_ino
        return listener


def unlink_if_ours(path: str, inode: int) -> None:
    """Remove the socket file at ``path`` if it is still the one this process bound (``inode``): a successor
    started while this process was exiting may already have bound its own there, which must stay (a bench run
    right after another lost its floor's call socket so, 2026-12-03)."""
    with contextlib.suppress(FileNotFoundError):
        if os.stat(path).st_ino == inode:
            os.unlink(path)


def unix_listener(path: str) -> socket.socket:
    """A Unix socket bound at ``path``, reachable by this user only: internal services trust the caller's
    account header, so no other local user may connect. A socket file left by a killed process is replaced;
    any other file there is refused."""
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise SystemExit(f"{path} exists and is not a socket: refusing to replace it")
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # created 0600, never briefly open to others
    try:
        listener.bind(path)
    finally:
        os.umask(old_umask)
    return listener


# How long an idle keep-alive connection is held open. uvicorn's own 5 s equals httpx's idle expiry, so a client
# could send on a connection at the very moment the server closed it and get no answer ("Server disconnected
# without sending a response": CI at stop 52). Holding it longer than the clients and proxies in front (httpx 5 s,
# ingress-nginx's upstream keep-alive and AWS ALB's idle timeout 60 s) means the client side always lets go
# first. An idle connection costs a socket and a few KiB; uvicorn closes idle ones at once when it shuts down.
KEEP_ALIVE_SECONDS = 75


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; the soft limit now in force.

    Every connection a service holds is a descriptor: a gateway's open streams above all. Many hosts start a process
    with a soft limit of 1,024 under a far higher hard one (systemd's default for services and logins; Docker's for
    containers since 25.0), and asyncio never raises it, so past ~1,000 connections every accept failed with EMFILE
    and the clients beyond were reset (tests/kicau/test_serve.py). The JVMs, Redis and Go programs raise theirs
    themselves; Locust raises its own to 10,000. A host that wants a lower bound sets the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES_WHEN_UNLIMITED if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as refused:
            log.warning("open files: the soft limit stays at %d (raising it to %d was refused: %s)",
                        soft, wanted, refused)
            return soft
        log.info("open files: soft limit raised from %d to %d", soft, wanted)
        return wanted
    return soft


def run(app_path: str, *, host: str, port: int, unix_socket: str = "", call_socket: str = "") -> None:
    """Serve ``app_path`` on ``host:port``; when ``unix_socket`` is a path, HTTP on that Unix socket too: callers
    on the same host skip the TCP stack on both ends of every request: ~6% less CPU per home page for the
    timeline's (bench/README.md); and when ``call_socket`` is a path, internal calls as frames on it
    (kicau/internal_rpc.py: what the gateway uses under the stack)."""
    configure_logging()
    raise_open_files_limit()
    time_garbage_collections()
    config = uvicorn.Config(
        app_path,
        host=host,
        port=port,
        loop="uvloop",
        # httptools, with a response's head and body written in one system call (kicau/coalesced_writes.py).
        http=CoalescingHttpProtocol,
        access_log=False,
        # Client addresses are the gateway's own business (``KICAU_GATEWAY_TRUSTED_PROXIES``, ratelimit.py):
        # uvicorn's proxy-header middleware would also rewrite them, trusting any X-Forwarded-For from
        # 127.0.0.1, and it costs every request of every service a pass over the headers.
        proxy_headers=False,
        log_level="info",
        timeout_graceful_shutdown=10,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        # No permessage-deflate: a stream event is then the same frame bytes for every connection, encoded once
        # and written straight onto each (services/gateway/streaming.py), where compression would deflate it
        # again for each of a thousand readers. Mastodon's own streaming server does not compress either.
        ws_per_message_deflate=False,
    )
    _Server(config, unix_socket, call_socket).run()

"""Running a service's ASGI app: uvloop, httptools, no access log on the hot path."""

from __future__ import annotations

import gc
import socket

import uvicorn

from kicau.coalesced_writes import CoalescingHttpProtocol
from kicau.metrics import time_garbage_collections
from kicau.web import configure_logging

GC_FIRST_GENERATION_THRESHOLD = 50_000


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
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


def run(app_path: str, *, host: str, port: int) -> None:
    configure_logging()
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
        # No permessage-deflate: a stream event is then the same frame bytes for every connection, encoded once
        # and written straight onto each (services/gateway/streaming.py), where compression would deflate it
        # again for each of a thousand readers. Mastodon's own streaming server does not compress either.
        ws_per_message_deflate=False,
    )
    _Server(config).run()

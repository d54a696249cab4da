"""Running a service's ASGI app: uvloop, httptools, no access log on the hot path."""

from __future__ import annotations

import uvicorn

from kicau.web import configure_logging


def run(app_path: str, *, host: str, port: int) -> None:
    configure_logging()
    uvicorn.run(
        app_path,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        # Client addresses are the gateway's own business (``KICAU_GATEWAY_TRUSTED_PROXIES``, ratelimit.py):
        # uvicorn's proxy-header middleware would also rewrite them, trusting any X-Forwarded-For from
        # 127.0.0.1, and it costs every request of every service a pass over the headers.
        proxy_headers=False,
        log_level="info",
        timeout_graceful_shutdown=10,
    )

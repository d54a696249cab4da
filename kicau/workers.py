"""What every background consumer (the fanout's, the push service's) does alike: a batch is held and retried,
never skipped, while an engine is away; a worker task that dies takes its process with it; readiness means the
worker still runs."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

from fastapi import FastAPI

from kicau.web import ReadinessCheck

log = logging.getLogger(__name__)

FIRST_PAUSE_SECONDS = 0.1
LONGEST_PAUSE_SECONDS = 5.0


async def until_done(attempt: Callable[[], Awaitable[object]], what: str) -> None:
    """Run ``attempt`` until it succeeds, pausing longer after each failure (Redis or Cassandra unavailable: the
    batch stays uncommitted and is applied once they answer again)."""
    pause = FIRST_PAUSE_SECONDS
    while True:
        try:
            await attempt()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("%s failed; retrying in %.1fs", what, pause, exc_info=True)
            await asyncio.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE_SECONDS)


def exit_if_it_dies(task: asyncio.Task[None], name: str) -> None:
    """A worker that stopped consuming must not look healthy: its process exits so the supervisor restarts it."""

    def check(done: asyncio.Task[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            log.critical("%s worker died", name, exc_info=done.exception())
            os._exit(1)

    task.add_done_callback(check)


def worker_running(app: FastAPI) -> ReadinessCheck:
    """Readiness: the worker task (``app.state.task``) still runs. An idle member of a larger consumer group may
    hold no partitions; a live consume loop is what readiness means."""

    async def check() -> None:
        if app.state.task.done():
            raise RuntimeError("worker stopped")

    return check

"""One run of a job at a time in a process: a caller arriving while it runs waits for that run instead of starting
another (a rebuild of a Redis index read by many requests at once, kicau/directory.py, kicau/lex_index.py).
A caller cancelled while it waits leaves the run going for the others."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class SingleFlight:
    def __init__(self, job: Callable[[], Awaitable[None]]) -> None:
        self._job = job
        self._running: asyncio.Future[None] | None = None

    async def __call__(self) -> None:
        if self._running is None:
            self._running = asyncio.ensure_future(self._job())
            self._running.add_done_callback(self._done)
        await asyncio.shield(self._running)

    def _done(self, _: asyncio.Future[None]) -> None:
        self._running = None

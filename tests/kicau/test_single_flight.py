"""kicau/single_flight.py: callers arriving while a run is going wait for it; the next call after it starts anew;
a waiter cancelled does not cancel the run."""

from __future__ import annotations

import asyncio

from kicau.single_flight import SingleFlight


def test_one_run_at_a_time() -> None:
    async def scenario() -> None:
        runs = 0
        release = asyncio.Event()

        async def job() -> None:
            nonlocal runs
            runs += 1
            await release.wait()

        flight = SingleFlight(job)
        waiters = [asyncio.create_task(flight()) for _ in range(5)]
        await asyncio.sleep(0)
        waiters[0].cancel()  # one caller gives up: the run goes on for the others
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(*waiters[1:])
        assert runs == 1
        await flight()  # after the run ended, a new one
        assert runs == 2

    asyncio.run(scenario())

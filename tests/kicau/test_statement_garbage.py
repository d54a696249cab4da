"""A statement run through ``kicau.clients.execute`` leaves no reference cycle behind on a real Cassandra: the
driver's ResponseFuture, its callbacks and its request timer are freed by reference counting alone. Left to the
garbage collector, the ~30 objects of every statement made the post service stand still ~110 ms every second or
two under load."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from cassandra import InvalidRequest

from kicau import clients

STATEMENTS = 50


@pytest.fixture(scope="module")
def session(stack_cassandra: Any) -> Any:
    return stack_cassandra


async def _unreachable_after(run: Any) -> int:
    """Objects only the collector could free, left by ``run()`` with the collector off."""
    gc.collect()
    gc.disable()
    try:
        await run()
        return gc.collect()
    finally:
        gc.enable()


async def test_statements_leave_no_cycles(session: Any) -> None:
    select = session.prepare("SELECT release_version FROM system.local")

    async def run() -> None:
        for _ in range(STATEMENTS):
            rows = await clients.execute(session, select)
            assert rows and rows[0]["release_version"].startswith("5.")

    # Without the cycles broken this was ~30 objects per statement.
    assert await _unreachable_after(run) < STATEMENTS


async def test_failed_statements_leave_no_cycles(session: Any) -> None:
    async def run() -> None:
        for _ in range(STATEMENTS):
            with pytest.raises(InvalidRequest):
                await clients.execute(session, "SELECT * FROM no_such_table_kicau")

    # None was left in the last run, against ~30 per failure before.
    assert await _unreachable_after(run) < STATEMENTS

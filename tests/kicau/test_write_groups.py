"""Group commit (kicau/write_groups.py) on the stack's real Cassandra: concurrent writes leave in fewer batches
and all land; a lone write goes at once; a bad value fails only its own write, also when Cassandra refuses it
inside a batch; a batch that fails fails each of its writes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cassandra import InvalidRequest
from prometheus_client import REGISTRY

from kicau import clients
from kicau.write_groups import GroupedWrite

KEYSPACE = "kicau_test_scratch"


@pytest.fixture(scope="module")
def session(stack_cassandra: Any) -> Iterator[Any]:
    stack_cassandra.execute(f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication ="
                            " {'class': 'SimpleStrategy', 'replication_factor': 1}")
    stack_cassandra.execute(f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.rows (k bigint PRIMARY KEY, v text)")
    stack_cassandra.execute(f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.index_rows (g bigint, k bigint,"
                            " PRIMARY KEY (g, k))")
    yield stack_cassandra


def _name() -> str:
    return f"test_{uuid.uuid4().hex[:8]}"


def _sizes(name: str) -> tuple[float, float]:
    """(batches sent, writes they carried) for one GroupedWrite's name."""
    count = REGISTRY.get_sample_value("kicau_cassandra_write_group_size_count", {"statement": name}) or 0.0
    total = REGISTRY.get_sample_value("kicau_cassandra_write_group_size_sum", {"statement": name}) or 0.0
    return count, total


def _rows(session: Any, keys: list[int]) -> dict[int, str]:
    found = session.execute(f"SELECT k, v FROM {KEYSPACE}.rows WHERE k IN ({','.join(map(str, keys))})")
    return {row["k"]: row["v"] for row in found}


def _insert(session: Any, name: str, **options: Any) -> GroupedWrite:
    return GroupedWrite(session, session.prepare(f"INSERT INTO {KEYSPACE}.rows (k, v) VALUES (?, ?)"),
                        name=name, **options)


async def test_concurrent_writes_leave_together_and_all_land(session: Any) -> None:
    name = _name()
    rows = _insert(session, name, max_group=10)
    keys = [uuid.uuid4().int >> 65 for _ in range(40)]
    await asyncio.gather(*[rows.write((key, f"value {key}")) for key in keys])
    assert _rows(session, keys) == {key: f"value {key}" for key in keys}
    batches, carried = _sizes(name)
    assert carried == 40
    # The first write leaves alone at once; the 39 that queued behind it leave at most 10 a batch.
    assert batches == 1 + 4


async def test_a_lone_write_leaves_at_once_and_groups_stay_under_their_byte_limit(session: Any) -> None:
    name = _name()
    rows = _insert(session, name, max_group_bytes=3000)
    key = uuid.uuid4().int >> 65
    await rows.write((key, "alone"))
    assert _sizes(name) == (1.0, 1.0)
    keys = [uuid.uuid4().int >> 65 for _ in range(7)]
    # 998 bytes each with the key: three fit under 3,000, so the 6 queued behind the first leave as 3 + 3.
    await asyncio.gather(*[rows.write((k, "x" * 990)) for k in keys])
    assert _sizes(name) == (1.0 + 1 + 2, 1.0 + 7)
    assert set(_rows(session, keys)) == set(keys)


async def test_a_value_that_cannot_be_bound_fails_only_its_own_write(session: Any) -> None:
    rows = _insert(session, _name())
    keys = [uuid.uuid4().int >> 65 for _ in range(4)]
    outcomes = await asyncio.gather(rows.write((keys[0], "first")), rows.write((keys[1], "ok")),
                                    rows.write(("not a bigint", "bad")), rows.write((keys[2], "ok too")),
                                    return_exceptions=True)
    assert outcomes[0] is None and outcomes[1] is None and outcomes[3] is None
    assert isinstance(outcomes[2], TypeError)
    assert set(_rows(session, keys[:3])) == set(keys[:3])


async def test_a_write_cassandra_refuses_in_a_batch_fails_alone(session: Any) -> None:
    """A null partition key passes binding but not Cassandra: the batch is refused whole, then each write goes
    alone, so the others still land and only the bad one fails."""
    rows = _insert(session, _name())
    keys = [uuid.uuid4().int >> 65 for _ in range(3)]
    outcomes = await asyncio.gather(rows.write((keys[0], "first")), rows.write((keys[1], "ok")),
                                    rows.write((None, "no key")), rows.write((keys[2], "ok too")),
                                    return_exceptions=True)
    assert [outcome is None for outcome in outcomes] == [True, True, False, True]
    assert isinstance(outcomes[2], InvalidRequest)
    assert set(_rows(session, keys)) == set(keys)


async def test_a_batch_that_fails_fails_each_of_its_writes(session: Any) -> None:
    """A client-side timeout shorter than any round trip: the first write (alone) and the batch behind it fail,
    and every caller hears so; the group then carries on with later writes."""
    rows = _insert(session, _name())
    original = clients.execute

    async def timing_out(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return await original(*args, **kwargs, request_timeout=0.000001)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("kicau.write_groups.execute", timing_out)
        outcomes = await asyncio.gather(*[rows.write((uuid.uuid4().int >> 65, "late")) for _ in range(5)],
                                        return_exceptions=True)
    assert all(isinstance(outcome, Exception) for outcome in outcomes), outcomes
    key = uuid.uuid4().int >> 65
    await rows.write((key, "after"))
    assert _rows(session, [key]) == {key: "after"}


async def test_with_grouping_off_each_write_is_its_own_statement(session: Any) -> None:
    name = _name()
    rows = _insert(session, name, max_group=1)
    keys = [uuid.uuid4().int >> 65 for _ in range(5)]
    await asyncio.gather(*[rows.write((key, "single")) for key in keys])
    assert set(_rows(session, keys)) == set(keys)
    assert _sizes(name) == (0.0, 0.0)  # no group was ever formed


def _pair(session: Any, name: str, **options: Any) -> GroupedWrite:
    """A row and its entry in a second table, written together (as a status and its place in a list)."""
    return GroupedWrite(session, [session.prepare(f"INSERT INTO {KEYSPACE}.rows (k, v) VALUES (?, ?)"),
                                  session.prepare(f"INSERT INTO {KEYSPACE}.index_rows (g, k) VALUES (?, ?)")],
                        name=name, **options)


def _indexed(session: Any, group: int) -> set[int]:
    return {row["k"] for row in session.execute(f"SELECT k FROM {KEYSPACE}.index_rows WHERE g = {group}")}


async def test_a_write_of_two_statements_leaves_whole_in_one_batch(session: Any) -> None:
    """``max_group`` counts callers: 21 writes of two statements leave as 1 + 10 + 10 batches, and each caller's
    row and entry both land."""
    name = _name()
    pairs = _pair(session, name, max_group=10)
    group = uuid.uuid4().int >> 65
    keys = [uuid.uuid4().int >> 65 for _ in range(21)]
    await asyncio.gather(*[pairs.write((key, f"row {key}"), (group, key)) for key in keys])
    assert _rows(session, keys) == {key: f"row {key}" for key in keys}
    assert _indexed(session, group) == set(keys)
    assert _sizes(name) == (3.0, 21.0)


async def test_a_write_of_two_statements_fails_whole_and_alone(session: Any) -> None:
    """One caller's second statement is refused by Cassandra (a null partition key): the group goes again one
    caller at a time, that caller fails and nothing of its write lands; the others land whole. A caller giving
    the wrong number of value sets fails at once."""
    pairs = _pair(session, _name())
    group = uuid.uuid4().int >> 65
    keys = [uuid.uuid4().int >> 65 for _ in range(4)]
    outcomes = await asyncio.gather(pairs.write((keys[0], "first"), (group, keys[0])),
                                    pairs.write((keys[1], "ok"), (group, keys[1])),
                                    pairs.write((keys[2], "bad"), (None, keys[2])),
                                    pairs.write((keys[3], "ok too"), (group, keys[3])),
                                    return_exceptions=True)
    assert [outcome is None for outcome in outcomes] == [True, True, False, True]
    assert isinstance(outcomes[2], InvalidRequest)
    assert set(_rows(session, keys)) == {keys[0], keys[1], keys[3]}
    assert _indexed(session, group) == {keys[0], keys[1], keys[3]}
    with pytest.raises(ValueError):
        await pairs.write((keys[0], "one set only"))
    with pytest.raises(ValueError):
        GroupedWrite(session, [], name=_name())


async def test_with_grouping_off_a_write_of_two_statements_is_one_batch_each(session: Any) -> None:
    name = _name()
    pairs = _pair(session, name, max_group=1)
    group = uuid.uuid4().int >> 65
    keys = [uuid.uuid4().int >> 65 for _ in range(3)]
    await asyncio.gather(*[pairs.write((key, "single"), (group, key)) for key in keys])
    assert set(_rows(session, keys)) == set(keys) and _indexed(session, group) == set(keys)
    assert _sizes(name) == (0.0, 0.0)

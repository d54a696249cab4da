"""Per-account copies readers keep (kicau/reader_copies.py), on the real Redis: a copy is built once and then read;
a change drops it and moves the version, so a build that read the record before the change never stores what it
read; a copy lives no longer than its build allows. And what an account's reads leave out (``Hides``,
kicau/blocks_and_mutes.py) as its copy holds it: the rule, the form, the end of a mute."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from kicau.blocks_and_mutes import NO_HIDES, Hides, decode_hides, encode_hides
from kicau.reader_copies import COPY_SECONDS, ReaderCopies, change_commands
from kicau.resp import round_trip

REDIS_PORT = int(os.environ.get("KICAU_REDIS_PORT", "6379"))


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis(port=REDIS_PORT)
    yield client
    await client.aclose()


class Record:
    """A stand-in for Cassandra's side of one account's value, counting builds; ``gate`` holds a build between
    its read of the record and its return, as a slow Cassandra read would."""

    def __init__(self, value: bytes, seconds: int = COPY_SECONDS) -> None:
        self.value, self.seconds, self.builds = value, seconds, 0
        self.gate: asyncio.Event | None = None
        self.read = asyncio.Event()

    async def build(self, account_id: int) -> tuple[bytes, int]:
        self.builds += 1
        read = self.value
        self.read.set()
        if self.gate is not None:
            await self.gate.wait()
        return read, self.seconds


def copies_of(redis: Redis, record: Record) -> tuple[ReaderCopies[bytes], str]:
    prefix = f"test-copies:{uuid.uuid4().hex}"
    made = ReaderCopies(redis, None, key=lambda a: f"{prefix}:{a}", version=lambda a: f"{prefix}:v:{a}",
                        build=record.build, decode=bytes)
    return made, prefix


async def test_a_copy_is_built_once_and_a_change_retires_it(redis: Redis) -> None:
    record = Record(b"first")
    copies, prefix = copies_of(redis, record)
    assert await copies.of(7) == b"first" and await copies.of(7) == b"first"
    assert record.builds == 1
    assert COPY_SECONDS * 0.8 - 5 <= await redis.ttl(f"{prefix}:7") <= COPY_SECONDS  # drawn from its last fifth
    record.value = b"second"
    assert await copies.of(7) == b"first"  # the copy, until the change is announced
    await round_trip(redis, change_commands((f"{prefix}:7", f"{prefix}:v:7")))
    assert await copies.of(7) == b"second" and record.builds == 2


async def test_a_build_that_read_before_a_change_stores_nothing(redis: Redis) -> None:
    record = Record(b"old")
    copies, prefix = copies_of(redis, record)
    record.gate = asyncio.Event()
    building = asyncio.create_task(copies.of(8))
    await record.read.wait()
    # The change: before its write, then the write, then again after it (here, while the build waits).
    await round_trip(redis, change_commands((f"{prefix}:8", f"{prefix}:v:8")))
    record.value = b"new"
    await round_trip(redis, change_commands((f"{prefix}:8", f"{prefix}:v:8")))
    record.gate.set()
    assert await building == b"old"  # what it read, for the read under way only
    assert await redis.get(f"{prefix}:8") is None
    record.gate = None
    assert await copies.of(8) == b"new"


async def test_a_copy_lives_no_longer_than_its_build_allows(redis: Redis) -> None:
    record = Record(b"brief", seconds=1)
    copies, prefix = copies_of(redis, record)
    await copies.of(9)
    assert await redis.ttl(f"{prefix}:9") == 1
    record.seconds = -5  # a value already past its end is still stored, for a second
    await redis.delete(f"{prefix}:9")
    await copies.of(9)
    assert await redis.ttl(f"{prefix}:9") == 1


def test_what_a_readers_pages_leave_out() -> None:
    hides = Hides(hidden=frozenset({1, 2}), blockers=frozenset({3}))
    # An author that blocks the reader is left out everywhere; one the reader hides, only where asked.
    assert hides.hides(3, hidden_too=False) and hides.hides(3, hidden_too=True)
    assert not hides.hides(1, hidden_too=False) and hides.hides(1, hidden_too=True)
    assert not hides.hides(4, hidden_too=True)
    assert hides.unwanted() == {1, 2, 3}
    assert not NO_HIDES and hides


def test_the_form_readers_keep() -> None:
    ends = time.time() + 60
    for hides in (Hides(frozenset({5, 1}), frozenset({9}), frozenset({5}), ends), Hides(frozenset(), frozenset({2}))):
        assert decode_hides(encode_hides(hides)) == hides
    assert decode_hides(encode_hides(NO_HIDES)) is NO_HIDES
    assert encode_hides(Hides(frozenset({5, 1}), frozenset())) == b"[[1,5],[],[],null]"

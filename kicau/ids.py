"""Time-ordered 64-bit ids in Mastodon's snowflake layout: ``(unix_ms << 16) | low16``.

Mastodon fills the low 16 bits with a hashed sequence; Kicau splits them into a 6-bit worker number and a
10-bit per-millisecond sequence, so ids are unique across up to 64 concurrent generators and up to 1,024 ids
per millisecond per generator. Keeping the layout lets Mastodon.py turn ids into datetimes and back.
"""

from __future__ import annotations

import struct
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from redis.asyncio import Redis

WORKER_BITS = 6
SEQUENCE_BITS = 10
MAX_WORKER = (1 << WORKER_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
# Bounds that take in every id (ids are positive 63-bit numbers): a page that names no cursor reads below
# ABOVE_EVERY_ID and above BELOW_EVERY_ID.
ABOVE_EVERY_ID: Final = (1 << 63) - 1
BELOW_EVERY_ID: Final = -1

_PACK = struct.Struct(">Q")


class SnowflakeGenerator:
    """Generates strictly increasing ids for one worker number; safe across threads."""

    def __init__(self, worker: int) -> None:
        if not 0 <= worker <= MAX_WORKER:
            raise ValueError(f"worker must be in 0..{MAX_WORKER}")
        self._worker = worker
        self._last_ms = 0
        self._sequence = 0
        self._lock = threading.Lock()

    def next_id(self) -> int:
        with self._lock:
            now = int(time.time() * 1000)
            # A clock that steps backwards must not reuse ids: keep counting from the last millisecond.
            if now <= self._last_ms:
                now = self._last_ms
                self._sequence += 1
                if self._sequence > MAX_SEQUENCE:
                    now += 1
                    self._sequence = 0
            else:
                self._sequence = 0
            self._last_ms = now
            return (now << 16) | (self._worker << SEQUENCE_BITS) | self._sequence


def id_from_ms(unix_ms: int) -> int:
    """The smallest id of a millisecond: a cursor that sorts before every id generated at that time."""
    return unix_ms << 16


def ms_from_id(snowflake: int) -> int:
    return snowflake >> 16


def time_of_id(snowflake: int) -> datetime:
    """When an id was made (UTC, to the millisecond): the creation time of whatever it names."""
    return datetime.fromtimestamp(ms_from_id(snowflake) / 1000, UTC)


def pack_id(snowflake: int) -> bytes:
    """Big-endian bytes, so byte order equals numeric order (Redis lexicographic ranges rely on it)."""
    return _PACK.pack(snowflake)


def unpack_id(raw: bytes) -> int:
    return int(_PACK.unpack(raw)[0])


def parse_id(value: str | int | None) -> int | None:
    """A client-supplied id, or None when it is absent or not a non-negative 63-bit integer. A string must be ASCII
    digits only: ``int()`` alone would also take " 7", "+7", "7_0" and other scripts' digits for ids."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()) or len(value.lstrip("0")) > 19:
            return None  # beyond 19 digits it cannot fit, and int() refuses over 4,300 digits
        number = int(value)
    else:
        number = value
    if number < 0 or number >= 1 << 63:
        return None
    return number


def is_digits(value: object) -> bool:
    """A non-negative integer, or a string of ASCII digits: the shape of an id, whether or not it fits 63 bits."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, str) and value.isascii() and value.isdigit()


async def lease_worker(redis: Redis) -> int:
    """A worker number for this process, handed out round-robin by Redis.

    Up to 64 live generators never share a number; with more, two would have to issue ids in the same
    millisecond with the same sequence to collide.
    """
    counter = await redis.incr(_WORKER_COUNTER)
    return int(counter) % (MAX_WORKER + 1)


_WORKER_COUNTER = "ids:worker-counter"

"""Staff's dashboard breakdowns: Mastodon's ``POST /api/v1/admin/dimensions`` (services/graph/measures.py serves
it, beside the measures of kicau/instance_measures.py).

A dimension is a list of named values, most first: Mastodon's Admin::Dimension, ``{"key", "data": [{"key",
"human_key", "value", ...}]}``, values as strings. Kicau's:

* ``languages``: the statuses posted in the period in each language their authors gave (the fanout's daily counts,
  kicau/instance_usage.py), most first, ``limit`` of them. Mastodon's counts its users' interface languages, which
  Kicau does not keep; what its readers write in is what a Kicau operator can see.
* ``software_versions``: Kicau's, Python's, Redis's and Cassandra's, as the running processes report them.
* ``space_usage``: Redis's memory in use, Cassandra's disk for Kicau's keyspace (its ``disk_usage`` virtual table,
  a mebibyte at least a table), and of it the media's (attachments' files and page pictures, kept in Cassandra),
  in bytes, with a human reading.

Mastodon's ``sources``, ``servers``, ``tag_servers``, ``tag_languages`` and ``instance_*`` dimensions are left out
of the answer, as Mastodon leaves out a key it does not know: Kicau does not federate, and keeps no sign-up
sources or languages per hashtag.
"""

from __future__ import annotations

import platform
from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

from redis.asyncio import Redis

import kicau
from kicau import keys
from kicau.instance_measures import Period
from kicau.languages import ISO_639_1
from kicau.resp import command, round_trip

DIMENSIONS: Final = ("languages", "software_versions", "space_usage")
MAX_LIMIT: Final = 100
# Cassandra's tables that hold media: attachments' files and rows, and the pictures of link previews.
MEDIA_TABLES: Final = frozenset({"media_files", "media_attachments", "page_pictures"})
_UNITS: Final = ("B", "KB", "MB", "GB", "TB", "PB")


async def languages(redis: Redis, period: Period, limit: int) -> dict[str, Any]:
    """The period's statuses by language, most first (then by code), ``limit`` at most; one round trip."""
    days = await round_trip(redis, [command(b"HGETALL", keys.daily_languages(day).encode()) for day in period.days])
    counts: Counter[str] = Counter()
    for day in days:
        pairs = list(day.items()) if isinstance(day, dict) else list(zip(day[::2], day[1::2], strict=True))
        for code, count in pairs:
            counts[bytes(code).decode()] += int(count)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return {"key": "languages", "data": [{"key": code, "human_key": ISO_639_1.get(code, code), "value": str(count)}
                                         for code, count in ranked]}


def software_versions(redis_version: str, cassandra_version: str) -> dict[str, Any]:
    versions = [("kicau", "Kicau", kicau.__version__), ("python", "Python", platform.python_version()),
                ("redis", "Redis", redis_version), ("cassandra", "Cassandra", cassandra_version)]
    return {"key": "software_versions", "data": [
        {"key": key, "human_key": name, "value": version, "human_value": version} for key, name, version in versions]}


def human_size(size: int) -> str:
    """Bytes as a person reads them, in powers of 1,024 (Mastodon's ``number_to_human_size``: "1.5 MB")."""
    value, unit = float(size), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    if unit == 0:
        return f"{size} Bytes"
    shown = f"{value:.3g}" if value < 1000 else f"{value:.0f}"
    return f"{shown} {_UNITS[unit]}"


def space_usage(redis_bytes: int, cassandra_mebibytes: Mapping[str, int]) -> dict[str, Any]:
    """Redis's memory in use, and Cassandra's disk by table (its ``disk_usage``, in mebibytes)."""
    cassandra = sum(cassandra_mebibytes.values()) * 1024 * 1024
    media = sum(size for table, size in cassandra_mebibytes.items() if table in MEDIA_TABLES) * 1024 * 1024
    return {"key": "space_usage", "data": [
        {"key": key, "human_key": name, "value": str(size), "unit": "bytes", "human_value": human_size(size)}
        for key, name, size in (("cassandra", "Cassandra", cassandra), ("redis", "Redis", redis_bytes),
                                ("media", "Media storage (in Cassandra)", media))]}

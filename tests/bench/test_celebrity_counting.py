"""The celebrity section counts the Redis commands a status costs the fanout; the fanout's presence mirror
re-reads who streams where every few seconds whatever is posted, and such a read inside the window is left out
(bench/celebrity.py). Pure logic: which logged commands are those reads."""

from __future__ import annotations

from bench.celebrity import _is_presence_read
from kicau import presence


def test_the_presence_mirrors_periodic_reads_are_recognised() -> None:
    gateway = "67f5e73db689"
    for command in (f"SMEMBERS {presence.GATEWAYS}", f"EXISTS online:{{g:{gateway}}}:alive",
                    f"HGETALL online:{{g:{gateway}}}", f"hgetall online:{{g:{gateway}}}"):
        assert _is_presence_read(command), command


def test_the_status_s_own_commands_are_counted() -> None:
    for command in ("GET account:{u:8000000000000000005}", "PUBLISH stream:large {}",
                    "SET status2:{s:1} x", "EVALSHA 7f71 1 feed3:{h:1}:2:home 800 851 3",
                    "SCRIPT LOAD for _, key in ipairs(KEYS)", "EXISTS feed3:{h:1}:2:home",
                    "HGETALL account:{u:1}", "PUBLISH online:changes x"):
        assert not _is_presence_read(command), command

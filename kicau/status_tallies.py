"""The head of a status's cached value: its counts (``favourites_count``, ``replies_count``, ``reblogs_count``,
``quotes_count``), for a reblog the status it reblogs, and the root of its thread.

A cached status (kicau/status_cards.py) is its author's id (8 bytes, big-endian), who may see it (1 byte), the
four counts (4 bytes each, big-endian), the id of the status it reblogs (8 bytes, 0 for any other status), the
root of its thread (8 bytes, kicau/conversations.py; 0 for a status that is its own root: ``muted``, through the
reader's muted threads, kicau/reader_marks.py), a byte of flags (``HAS_POLL``: its fragment carries a poll, which
every read replaces with the poll as it is now, kicau/polls.py; ``HAS_QUOTE``: it quotes a status, which every
read renders for its reader; ``QUOTED_BY_ANYONE``, ``QUOTED_BY_FOLLOWERS``: its quote policy, kicau/quotes.py) and
then the Status fragment, which never changes.
The counts do change, so they live beside the fragment and are spliced into it when it is rendered.

The writer of what a count counts (the post service: a favourite, a reply, a reblog, a quote) moves the count of a
cached status by one in place (``MOVE``, one script call that keeps the value's expiry): a viral status favourited or
answered a hundred times a second is not counted again each time. A status cached from Cassandra is counted there
(kicau/favourites.py, kicau/replies.py, kicau/reblogs.py). Where a crash may have come between the record's change
and the count's, the writer drops the cached value instead (``RECOUNT``), and the next read counts it again. What is
left: a count read from Cassandra just before a change landed and cached just after it stays one off until the value
is cached again, at most a day (``kicau.status_cards.STATUS_CACHE_SECONDS``).
"""

from __future__ import annotations

import enum
import struct
from typing import Final

from kicau import keys
from kicau.resp import command

# The author id, who may see the status, favourites_count, replies_count, reblogs_count, quotes_count, the reblogged
# status's id, the root of its thread, flags.
HEAD: Final = struct.Struct(">QBIIIIQQB")
COUNTS: Final = struct.Struct(">IIII")
COUNTS_AT: Final = 9  # after the author id and the audience
REBLOG_OF_AT: Final = COUNTS_AT + COUNTS.size  # the reblogged status's id (8 bytes)
ROOT_AT: Final = REBLOG_OF_AT + 8  # the root of its thread (8 bytes)
FLAGS_AT: Final = ROOT_AT + 8  # one byte
HAS_POLL: Final = 1
HAS_QUOTE: Final = 2  # an accepted quote of another status (kicau/quotes.py)
QUOTED_BY_ANYONE: Final = 4  # its quote policy is ``public``
QUOTED_BY_FOLLOWERS: Final = 8  # its quote policy is ``followers``
# What follows the audience in the head of the usual status, up to its thread's root: no counts, no reblog.
PLAIN: Final = bytes(ROOT_AT - COUNTS_AT)


class Tally(enum.IntEnum):
    """A count in the head, by where it begins."""

    FAVOURITES = COUNTS_AT
    REPLIES = COUNTS_AT + 4
    REBLOGS = COUNTS_AT + 8
    QUOTES = COUNTS_AT + 12


# KEYS[1] = a status's cached value; ARGV[1] = +1 or -1; ARGV[2] = where the count begins (a Tally). Moves it,
# never below zero, unless the value is missing or a tombstone (empty). SETRANGE changes the value in place and
# keeps its expiry.
MOVE: Final = """
local at = tonumber(ARGV[2])
local head = redis.call('GETRANGE', KEYS[1], at, at + 3)
if #head < 4 then return false end
local count = struct.unpack('>I4', head) + tonumber(ARGV[1])
if count < 0 then count = 0 end
redis.call('SETRANGE', KEYS[1], at, struct.pack('>I4', count))
return count
"""
# KEYS[1] = a status's cached value. Drops it, unless it is a tombstone (which must stay): the next read caches the
# status again with its counts read from Cassandra.
RECOUNT: Final = """
if redis.call('STRLEN', KEYS[1]) > 0 then return redis.call('DEL', KEYS[1]) end
return 0
"""


def move_command(status_id: int, tally: Tally, delta: int) -> bytes:
    """``MOVE`` by ``delta`` (no hot path: the script goes whole, never missing from Redis)."""
    return command(b"EVAL", MOVE.encode(), b"1", keys.status_cache(status_id).encode(), b"%d" % delta,
                   b"%d" % tally)


def recount_command(status_id: int) -> bytes:
    return command(b"EVAL", RECOUNT.encode(), b"1", keys.status_cache(status_id).encode())

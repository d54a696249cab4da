"""Polls: a status may carry one (``poll[options][]``, ``poll[expires_in]``, ``poll[multiple]``,
``poll[hide_totals]``), its readers vote once each (``POST /api/v1/polls/:id/votes``) until it ends, and every read
of the status shows the Poll as its reader sees it: the counts so far (none, for ``hide_totals``, until it ends),
whether it ended, and the reader's own votes.

A poll's id is its status's: a status has at most one poll, and a poll lives and dies with its status.

* **Its definition** (options, multiple, hide_totals, when it ends) is written with the status, in the
  ``statuses`` row's ``poll`` column (JSON), and never changes (an edit may not change it). The status's cached
  fragment carries the Poll as it was when posted (no votes); every read replaces that with the Poll now (``live``).
* **The votes** are Cassandra's (``poll_votes``, a row per voter, claimed with a lightweight transaction, so one
  account votes once however often it asks). Their tallies, and each voter's choices, are kept in Redis (a hash a
  poll, ``keys.poll_tallies``), built from the poll's rows when a read misses it and moved in place by each vote
  (``VOTE``: once per voter, whoever calls it, so a retry after a crash moves nothing twice). A vote that finds no
  hash waits in a short list beside it that the next build takes in (``BUILD``), so a build that read Cassandra
  just before the vote does not lose it.
* **Limits** are Mastodon's defaults: 2 to 4 options of at most 50 characters, no two the same, ending between five
  minutes and a month after posting; the instance's ``configuration.polls`` says so.

When a poll ends, its author and voters are notified (``poll``, services/post/poll_endings.py). A scheduled status
may carry one (services/post/scheduled.py: kept as asked, its end counted from when it is posted). Not done: polls
changed by edits (an edit keeps the poll; naming other options is a 422).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec
from cassandra.cluster import Session
from redis.asyncio import Redis

from kicau import keys
from kicau.clients import execute, write_preparer
from kicau.crash_points import crash_point
from kicau.durations import whole_seconds
from kicau.resp import command, round_trip
from kicau.web import ApiError

MAX_OPTIONS: Final = 4
MAX_OPTION_CHARS: Final = 50
MIN_EXPIRATION: Final = 300  # seconds
MAX_EXPIRATION: Final = 2_629_746  # a month
# How long a built hash of tallies lives unread... or read: rebuilt from Cassandra a day later at most.
TALLIES_SECONDS: Final = 24 * 3600
_PENDING_SECONDS: Final = 60  # votes waiting for a build (one is under way, or the next read makes one)
CONFIGURATION: Final = {"max_options": MAX_OPTIONS, "max_characters_per_option": MAX_OPTION_CHARS,
                        "min_expiration": MIN_EXPIRATION, "max_expiration": MAX_EXPIRATION}


class Definition(msgspec.Struct, frozen=True):
    """What the ``statuses`` row keeps of a poll."""

    options: list[str]
    expires_at: str  # ISO 8601, as Mastodon writes times
    multiple: bool = False
    hide_totals: bool = False

    def ends(self) -> datetime:
        return datetime.fromisoformat(self.expires_at.replace("Z", "+00:00"))

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.ends()


_encode = msgspec.json.Encoder().encode
_decode_definition = msgspec.json.Decoder(Definition).decode


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool) or value is None:
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "1", "on", "false", "0", "off", ""):
        return value.lower() in ("true", "1", "on")
    raise ApiError(422, f"Validation failed: poll {name} must be a boolean")


def definition(options: Any, expires_in: Any, multiple: Any = False, hide_totals: Any = False,
               now: datetime | None = None) -> Definition:
    """A poll as a status's author asks for it, checked as Mastodon checks it (422s with its messages)."""
    if not isinstance(options, list) or not all(isinstance(option, str) for option in options):
        raise ApiError(422, "Validation failed: Poll options must be a list of texts")
    if len(options) < 2:
        raise ApiError(422, "Validation failed: Poll options must have more than one item")
    if len(options) > MAX_OPTIONS:
        raise ApiError(422, f"Validation failed: Poll options can't contain more than {MAX_OPTIONS} items")
    if any(not option.strip() for option in options):
        raise ApiError(422, "Validation failed: Poll options can't be blank")
    if any(len(option) > MAX_OPTION_CHARS for option in options):
        raise ApiError(422, f"Validation failed: Poll options cannot be longer than {MAX_OPTION_CHARS} characters "
                            "each")
    if len({option.strip() for option in options}) < len(options):
        raise ApiError(422, "Validation failed: Poll options contain duplicate items")
    seconds = whole_seconds(expires_in)
    if seconds is None:
        raise ApiError(422, "Validation failed: Poll expires_in must be a number of seconds")
    if seconds < MIN_EXPIRATION:
        raise ApiError(422, "Validation failed: Poll expiration date is too soon")
    if seconds > MAX_EXPIRATION:
        raise ApiError(422, "Validation failed: Poll expiration date is too far into the future")
    ends = (now or datetime.now(UTC)) + timedelta(seconds=seconds)
    # As Mastodon writes times (kicau/entities.py's iso_time, which imports this module).
    expires_at = ends.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return Definition([option.strip() for option in options], expires_at, _flag(multiple, "multiple"),
                      _flag(hide_totals, "hide_totals"))


def stored(definition: Definition) -> str:
    """The ``statuses`` row's ``poll`` column."""
    return _encode(definition).decode()


def read(column: str | None) -> Definition | None:
    return _decode_definition(column) if column else None


@dataclass(frozen=True, slots=True)
class Tallies:
    """A poll's votes so far: per option, the accounts that voted, and (for one reader) its own choices."""

    counts: list[int]
    voters: int
    own: list[int] | None = None  # None: the reader did not vote (or no one reads)


def entity(status_id: int, poll: Definition, tallies: Tallies | None = None, *, reader: int | None = None,
           author: int | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Mastodon's Poll, as a reader sees it (``reader``: a signed-in one, who is told ``voted`` and ``own_votes``;
    its author counts as having voted, as on Mastodon, whose clients then show it the results). Without tallies:
    as posted, no votes."""
    tallies = tallies or Tallies([0] * len(poll.options), 0)
    expired = poll.expired(now)
    shown = expired or not poll.hide_totals
    body: dict[str, Any] = {
        "id": str(status_id),
        "expires_at": poll.expires_at,
        "expired": expired,
        "multiple": poll.multiple,
        "votes_count": sum(tallies.counts),
        "voters_count": tallies.voters,
        "options": [{"title": title, "votes_count": count if shown else None}
                    for title, count in zip(poll.options, tallies.counts, strict=True)],
        "emojis": [],
    }
    if reader is not None:
        body["voted"] = tallies.own is not None or reader == author
        body["own_votes"] = tallies.own or []
    return body


def encoded(poll: dict[str, Any]) -> bytes:
    return _encode(poll)


# The Poll in a cached fragment (kicau/entities.py writes it between these two: "card" always follows "poll"). A
# key's quotes are bare, a string's are escaped, so neither run of bytes can occur inside a text.
_POLL_KEY: Final = b'"poll":'
_AFTER_POLL: Final = b',"card":'
_decode_poll = msgspec.json.Decoder(dict[str, Any]).decode


def poll_in(fragment: bytes | memoryview) -> tuple[int, int] | None:
    """Where the Poll object of a Status fragment starts and ends (None: it has none)."""
    raw = bytes(fragment)
    start = raw.find(_POLL_KEY)
    if start < 0 or raw.startswith(b"null", start + len(_POLL_KEY)):
        return None
    end = raw.find(_AFTER_POLL, start)
    return (start + len(_POLL_KEY), end) if end > 0 else None


def definition_in(fragment: bytes | memoryview) -> Definition | None:
    """The poll of a Status fragment, as it was posted (what the cached fragment says of it)."""
    found = poll_in(fragment)
    if found is None:
        return None
    posted = _decode_poll(bytes(fragment)[found[0]:found[1]])
    hidden = bool(posted["options"]) and posted["options"][0]["votes_count"] is None and not posted["expired"]
    return Definition([option["title"] for option in posted["options"]], posted["expires_at"],
                      bool(posted["multiple"]), hidden)


def with_poll(fragment: bytes | memoryview, poll: bytes) -> bytes:
    """The fragment with its Poll replaced by ``poll``."""
    raw = bytes(fragment)
    found = poll_in(raw)
    if found is None:
        return raw
    return raw[:found[0]] + poll + raw[found[1]:]


# KEYS[1] = a poll's tallies, KEYS[2] = votes waiting for a build; ARGV = the voter, its choices ("0,2"), and how
# long a waiting vote waits. Counts the vote once per voter, if the tallies are built; else leaves it waiting.
VOTE: Final = """
if redis.call('HEXISTS', KEYS[1], 'built') == 1 then
  if redis.call('HSETNX', KEYS[1], 'a' .. ARGV[1], ARGV[2]) == 1 then
    for choice in string.gmatch(ARGV[2], '%d+') do redis.call('HINCRBY', KEYS[1], 'n' .. choice, 1) end
    redis.call('HINCRBY', KEYS[1], 'voters', 1)
  end
  return 1
end
redis.call('RPUSH', KEYS[2], ARGV[1] .. ':' .. ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 0
"""
# KEYS as VOTE's; ARGV = the lifetime, then voter and choices pairs as Cassandra holds them. Builds the tallies
# unless they are built, then counts the votes that waited (each once, as VOTE does).
BUILD: Final = """
if redis.call('HEXISTS', KEYS[1], 'built') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'voters', 0)
local function count(voter, choices)
  if redis.call('HSETNX', KEYS[1], 'a' .. voter, choices) == 1 then
    for choice in string.gmatch(choices, '%d+') do redis.call('HINCRBY', KEYS[1], 'n' .. choice, 1) end
    redis.call('HINCRBY', KEYS[1], 'voters', 1)
  end
end
for i = 2, #ARGV, 2 do count(ARGV[i], ARGV[i + 1]) end
for _, waiting in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local at = string.find(waiting, ':', 1, true)
  count(string.sub(waiting, 1, at - 1), string.sub(waiting, at + 1))
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'built', 1)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


def _choices_text(choices: Sequence[int]) -> bytes:
    return ",".join(map(str, choices)).encode()


class PollVotes:
    """The votes (Cassandra's ``poll_votes``) and their tallies (Redis), module doc."""

    def __init__(self, redis: Redis, session: Session, write_consistency: int) -> None:
        self._redis = redis
        self._session = session
        write = write_preparer(session, write_consistency)
        self._claim = write("INSERT INTO poll_votes (status_id, account_id, choices) VALUES (?, ?, ?) IF NOT EXISTS")
        self._all = session.prepare("SELECT account_id, choices FROM poll_votes WHERE status_id = ?")

    async def vote(self, status_id: int, account_id: int, choices: list[int]) -> bool:
        """Record the account's vote; False if it had voted already (its tallies are made whole either way: a
        retry after a crash between the two counts the vote then)."""
        row = (await execute(self._session, self._claim, (status_id, account_id, choices)))[0]
        crash_point("post.poll_vote.claimed")
        counted = choices if row["[applied]"] else [int(c) for c in row["choices"] or ()]
        await round_trip(self._redis, [self._vote_command(status_id, account_id, counted)])
        return bool(row["[applied]"])

    @staticmethod
    def _vote_command(status_id: int, account_id: int, choices: Sequence[int]) -> bytes:
        return command(b"EVAL", VOTE.encode(), b"2", keys.poll_tallies(status_id).encode(),
                       keys.poll_waiting(status_id).encode(), b"%d" % account_id, _choices_text(choices),
                       b"%d" % _PENDING_SECONDS)

    async def voters(self, status_id: int) -> list[int]:
        """Everyone who voted in the poll (told when it ends)."""
        return [int(row["account_id"]) for row in await execute(self._session, self._all, (status_id,))]

    async def tallies(self, polls: Mapping[int, int], reader: int | None) -> dict[int, Tallies]:
        """For each poll (status id -> its number of options), its tallies and the reader's own choices: one
        round trip for them all, and a build from Cassandra for each that Redis does not hold."""
        wanted = list(polls)
        fields = [b"built", b"voters", *(b"n%d" % n for n in range(MAX_OPTIONS))]
        if reader is not None:
            fields.append(b"a%d" % reader)
        replies = await round_trip(self._redis, [command(b"HMGET", keys.poll_tallies(s).encode(), *fields)
                                                 for s in wanted])
        found: dict[int, Tallies] = {}
        for status_id, reply in zip(wanted, replies, strict=True):
            if reply[0] is None:
                found[status_id] = await self._build(status_id, polls[status_id], reader)
                continue
            own = reply[2 + MAX_OPTIONS] if reader is not None else None
            found[status_id] = Tallies([int(count or 0) for count in reply[2:2 + polls[status_id]]],
                                       int(reply[1] or 0), _parse_choices(own))
        return found

    async def _build(self, status_id: int, options: int, reader: int | None) -> Tallies:
        rows = await execute(self._session, self._all, (status_id,))
        votes = [(int(row["account_id"]), [int(c) for c in row["choices"] or ()]) for row in rows]
        pairs = [part for voter, choices in votes for part in (b"%d" % voter, _choices_text(choices))]
        await round_trip(self._redis, [command(b"EVAL", BUILD.encode(), b"2", keys.poll_tallies(status_id).encode(),
                                               keys.poll_waiting(status_id).encode(), b"%d" % TALLIES_SECONDS,
                                               *pairs)])
        counts = [0] * options
        own = None
        for voter, choices in votes:
            for choice in choices:
                if 0 <= choice < options:
                    counts[choice] += 1
            if voter == reader:
                own = choices
        return Tallies(counts, len(votes), own)


def _parse_choices(raw: bytes | str | None) -> list[int] | None:
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    return [int(part) for part in text.split(",") if part]


def choices_of(raw: Any, poll: Definition) -> list[int]:
    """The options a vote picks (``choices[]``), checked as Mastodon checks them."""
    values = raw if isinstance(raw, list) else [raw] if raw is not None else []
    try:
        picked = [int(value) for value in values if not isinstance(value, bool)]
    except (TypeError, ValueError) as exc:
        raise ApiError(422, "Validation failed: The chosen vote option does not exist") from exc
    if not picked or len(picked) != len(values):
        raise ApiError(422, "Validation failed: The chosen vote option does not exist")
    if any(not 0 <= choice < len(poll.options) for choice in picked):
        raise ApiError(422, "Validation failed: The chosen vote option does not exist")
    if len(set(picked)) != len(picked) or (len(picked) > 1 and not poll.multiple):
        raise ApiError(422, "Validation failed: You have already voted on this poll")
    return sorted(picked)

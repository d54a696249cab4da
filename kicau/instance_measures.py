"""Staff's dashboard figures: Mastodon's ``POST /api/v1/admin/measures`` (services/graph/measures.py serves it).

A measure is one number a day over a period of whole days (UTC), from ``start_at``'s day to ``end_at``'s, with its
total over the period and over the period of the same length just before (``previous_total``), all as strings,
as Mastodon gives them. Kicau's measures and where each comes from:

* ``new_users``: the accounts registered each day (the profile directory's registration times, kicau/directory.py);
* ``active_users``: the accounts that posted each day (the fanout's daily posters, kicau/instance_usage.py); the
  total counts an account once over the whole period (the days' HyperLogLogs merged, within ~1%);
* ``interactions``: favourites, reblogs and replies of another account's status (kicau/instance_usage.py);
* ``opened_reports``, ``resolved_reports``: the reports filed, and resolved, each day (Cassandra ``reports``, read
  by the graph service: a report filed more than ``REPORTS_LOOKBACK_DAYS`` before the period and resolved in it is
  not counted);
* ``tag_uses``, ``tag_accounts``, ``tag_servers`` (with ``{"id": <hashtag>}``; a hashtag's id is its name): the
  statuses that used the hashtag, the accounts that did, and the servers they came from (this one, or none),
  from the hashtag's history (kicau/tag_history.py), which keeps a week: older days count nothing.

Mastodon's ``instance_*`` measures (about another server's accounts) are left out of the answer, as Mastodon leaves
out a key it does not know: Kicau does not federate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from redis.asyncio import Redis

from kicau import keys
from kicau.resp import command, round_trip
from kicau.tag_timeline import DAY_MS
from kicau.web import ApiError

REDIS_MEASURES: Final = ("active_users", "new_users", "interactions")
REPORT_MEASURES: Final = ("opened_reports", "resolved_reports")
TAG_MEASURES: Final = ("tag_accounts", "tag_uses", "tag_servers")
MEASURES: Final = (*REDIS_MEASURES, *REPORT_MEASURES, *TAG_MEASURES)
# The longest period asked for at once (a year, and a day for a leap year); twice as many days are read.
MAX_DAYS: Final = 366
REPORTS_LOOKBACK_DAYS: Final = 90
_EPOCH: Final = date(1970, 1, 1)


@dataclass(frozen=True)
class Period:
    """Whole days since the epoch (UTC), first to last, both counted."""

    first: int
    last: int

    @property
    def days(self) -> range:
        return range(self.first, self.last + 1)

    def before(self) -> Period:
        """The period of the same length that ends the day before this one starts."""
        length = self.last - self.first + 1
        return Period(self.first - length, self.first - 1)


def day_number(raw: Any, name: str) -> int:
    """The day (since the epoch, UTC) of a date or a moment in ISO 8601, as Mastodon takes ``start_at`` and
    ``end_at``; a 400 when absent, a 422 when it names no day."""
    if raw is None or raw == "":
        raise ApiError(400, f"Missing parameter: {name}")
    if not isinstance(raw, str) or len(raw) > 40:
        raise ApiError(422, f"Validation failed: {name} must be a date or a time in ISO 8601")
    try:
        if len(raw) == 10:
            return (date.fromisoformat(raw) - _EPOCH).days
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(422, f"Validation failed: {name} must be a date or a time in ISO 8601") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return (moment.date() - _EPOCH).days


def period_of(start_at: Any, end_at: Any) -> Period:
    period = Period(day_number(start_at, "start_at"), day_number(end_at, "end_at"))
    if period.last < period.first:
        raise ApiError(422, "Validation failed: end_at is before start_at")
    if period.last - period.first + 1 > MAX_DAYS:
        raise ApiError(422, f"Validation failed: a period of at most {MAX_DAYS} days")
    if period.first - (period.last - period.first + 1) < 0:
        raise ApiError(422, "Validation failed: start_at is too early")
    return period


def day_iso(day: int) -> str:
    """A day as Mastodon's measures write it: its midnight, UTC."""
    return (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT00:00:00.000+00:00")


def entity(key: str, period: Period, per_day: Sequence[int], total: int, previous_total: int) -> dict[str, Any]:
    """Mastodon's Admin::Measure."""
    return {"key": key, "unit": None, "total": str(total), "human_value": str(total),
            "previous_total": str(previous_total),
            "data": [{"date": day_iso(day), "value": str(value)}
                     for day, value in zip(period.days, per_day, strict=True)]}


async def redis_measures(redis: Redis, wanted: Sequence[str], period: Period,
                         tags: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The measures of ``wanted`` read from Redis (``REDIS_MEASURES``, and ``TAG_MEASURES`` for the hashtag each
    names in ``tags``), over the period and the one before, in one round trip."""
    both = Period(period.before().first, period.last)
    packed: list[bytes] = []
    layout: list[tuple[str, int]] = []  # (measure, how many replies: a day each, and the two totals if counted)
    directory = keys.directory_new().encode()
    for key in wanted:
        if key == "new_users":
            # The directory's scores are registration times in milliseconds (its marker's is 0).
            packed += [command(b"ZCOUNT", directory, b"%d" % (day * DAY_MS), b"(%d" % ((day + 1) * DAY_MS))
                       for day in both.days]
            layout.append((key, len(both.days)))
        elif key == "active_users":
            packed += [command(b"PFCOUNT", keys.daily_posters(day).encode()) for day in both.days]
            packed += [command(b"PFCOUNT", *(keys.daily_posters(day).encode() for day in p.days))
                       for p in (period, period.before())]
            layout.append((key, len(both.days) + 2))
        elif key == "interactions":
            packed.append(command(b"MGET", *(keys.daily_interactions(day).encode() for day in both.days)))
            layout.append((key, 1))
        elif key in TAG_MEASURES and key in tags:
            tag = tags[key]
            if key == "tag_uses":
                packed += [command(b"PFCOUNT", keys.tag_uses(tag, day).encode()) for day in both.days]
                layout.append((key, len(both.days)))
            else:  # an account or server counted once over the period: the days' HyperLogLogs merged
                packed += [command(b"PFCOUNT", keys.tag_accounts(tag, day).encode()) for day in both.days]
                packed += [command(b"PFCOUNT", *(keys.tag_accounts(tag, day).encode() for day in p.days))
                           for p in (period, period.before())]
                layout.append((key, len(both.days) + 2))
    replies = await round_trip(redis, packed) if packed else []
    found: dict[str, dict[str, Any]] = {}
    at = 0
    length = len(period.days)
    for key, count in layout:
        answered = replies[at:at + count]
        at += count
        if key == "interactions":
            answered = [int(v or 0) for v in answered[0]]
        values = [int(v) for v in answered[:len(both.days)]]
        earlier, per_day = values[:length], values[length:]
        if count == len(both.days) + 2:
            total, previous = int(answered[-2]), int(answered[-1])
        else:
            total, previous = sum(per_day), sum(earlier)
        if key == "tag_servers":  # the accounts that used it are all this server's: one server, or none
            per_day, total, previous = [min(v, 1) for v in per_day], min(total, 1), min(previous, 1)
        found[key] = entity(key, period, per_day, total, previous)
    return found


def report_measures(wanted: Sequence[str], period: Period,
                    reports: Sequence[tuple[int, datetime | None]]) -> dict[str, dict[str, Any]]:
    """``opened_reports`` and ``resolved_reports`` from the reports of the period, the one before and
    ``REPORTS_LOOKBACK_DAYS`` before that: (the day each was filed, when it was resolved or None)."""
    both = Period(period.before().first, period.last)
    opened = dict.fromkeys(both.days, 0)
    resolved = dict.fromkeys(both.days, 0)
    for filed, resolved_at in reports:
        if filed in opened:
            opened[filed] += 1
        if resolved_at is not None:
            day = (resolved_at.astimezone(UTC).date() - _EPOCH).days if resolved_at.tzinfo else \
                (resolved_at.date() - _EPOCH).days
            if day in resolved:
                resolved[day] += 1
    found = {}
    for key, counts in (("opened_reports", opened), ("resolved_reports", resolved)):
        if key in wanted:
            per_day = [counts[day] for day in period.days]
            found[key] = entity(key, period, per_day, sum(per_day),
                                sum(counts[day] for day in period.before().days))
    return found

"""How much the server is used, for what ``/api/v1/instance`` (``stats``) and ``/api/v2/instance`` (``usage``) report:
its accounts, its statuses, and its accounts active in the last 30 days.

* **Accounts**: the profile directory's set of every account (kicau/directory.py), less its marker. An id left by
  a registration that failed after it was added is counted too (rare: readers of the directory skip it).
* **Statuses**, as Mastodon counts them (every local status but direct ones, reblogs included): a counter the fanout
  moves as it applies each status's events, in the batch's own Redis round trip. A batch applied again after a
  crash of the fanout (Kafka gives it again) counts its statuses again: a statistic that may drift by a crash's
  batch, never below zero. Redis's append-only file keeps it through a restart; lost with Redis, it starts again
  at zero.
* **Active in the last 30 days** (and, for NodeInfo, 180): the accounts that posted since (the directory's
  ``active`` scores). Mastodon counts sign-ins; Kicau records no sign-in time, and a post is what the directory
  calls activity.

``/api/v1/instance/activity`` reports the last 12 weeks (from Monday, UTC, as Mastodon's weeks), each week's:

* **statuses** posted (reblogs left out, direct ones in, as Mastodon's activity counts them; deletions do not take
  them back): a field a week of one hash, which the fanout moves with the same round trip as the count above (and
  which a replayed batch counts again, as it does);
* **logins**: the accounts given a token that week (a password or an authorization code grant: signing in), a
  HyperLogLog a week (kept 13 weeks) the graph service adds to;
* **registrations**: the directory's accounts whose registration falls in the week (its scores).

Each day's (UTC) activity, for staff's dashboard (``/api/v1/admin/measures``, kicau/instance_measures.py), counted by
the fanout with each batch's other writes and kept ``DAILY_KEPT_DAYS``:

* **posters**: a HyperLogLog of the accounts that posted that day (Kicau's measure of an active account, as for
  ``active_month`` above; Mastodon's counts the accounts that used the server);
* **interactions**: the favourites, reblogs and replies of another account's status made that day (Mastodon's
  ``interactions``); a replayed batch counts its interactions again, as it does its statuses;
* **languages**: the statuses posted that day in each language their authors gave (reblogs and statuses without
  one left out), for ``/api/v1/admin/dimensions`` (kicau/instance_dimensions.py).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import Final, NamedTuple

from redis.asyncio import Redis

from kicau import keys
from kicau.resp import command, round_trip

ACTIVE_DAYS: Final = 30
HALFYEAR_DAYS: Final = 180
_STATUSES: Final = keys.statuses_count().encode()
_WEEKLY: Final = keys.weekly_statuses().encode()
WEEK_SECONDS: Final = 7 * 86400
_FIRST_MONDAY: Final = 4 * 86400  # 1970-01-05, the first Monday after the epoch (a Thursday)
ACTIVITY_WEEKS: Final = 12


class Usage(NamedTuple):
    accounts: int
    statuses: int
    active_month: int
    active_halfyear: int = 0  # posted in the last 180 days (NodeInfo's ``activeHalfyear``)


def statuses_command(change: int) -> bytes:
    """The count of statuses moved by ``change`` (a batch's posted less its deleted)."""
    return command(b"INCRBY", _STATUSES, b"%d" % change)


async def usage(redis: Redis) -> Usage:
    """One round trip."""
    now = time.time()
    month_ms, halfyear_ms = (int((now - days * 86400) * 1000) for days in (ACTIVE_DAYS, HALFYEAR_DAYS))
    registered, marker, statuses, active, halfyear = await round_trip(redis, [
        command(b"ZCARD", keys.directory_new().encode()),
        command(b"ZSCORE", keys.directory_new().encode(), b""),
        command(b"GET", _STATUSES),
        command(b"ZCOUNT", keys.directory_active().encode(), b"%d" % month_ms, b"+inf"),
        command(b"ZCOUNT", keys.directory_active().encode(), b"%d" % halfyear_ms, b"+inf"),
    ])
    return Usage(int(registered) - (marker is not None), max(0, int(statuses or 0)), int(active), int(halfyear))


def week_of(seconds: float) -> int:
    """The start (Monday 00:00 UTC, epoch seconds) of the week holding the moment ``seconds``."""
    return int((seconds - _FIRST_MONDAY) // WEEK_SECONDS * WEEK_SECONDS + _FIRST_MONDAY)


def weekly_statuses_commands(posted_ms: Iterable[int]) -> list[bytes]:
    """The commands counting statuses posted at ``posted_ms`` into their weeks (one a week, nearly always one)."""
    weeks = Counter(week_of(ms / 1000) for ms in posted_ms)
    return [command(b"HINCRBY", _WEEKLY, b"%d" % week, b"%d" % count) for week, count in sorted(weeks.items())]


# How long a day's posters and interactions are kept: a year's dashboard, and the year before it for comparison.
DAILY_KEPT_DAYS: Final = 800


def daily_activity_commands(posters: Iterable[tuple[int, int]], interactions: Iterable[int],
                            languages: Iterable[tuple[int, str]] = ()) -> list[bytes]:
    """The commands counting (day, account) posts into their days' posters, one interaction for each day in
    ``interactions`` and one status for each (day, language) (days since the epoch, UTC): a few commands a day the
    batch touches, nearly always one day."""
    kept = b"%d" % (DAILY_KEPT_DAYS * 86400)
    by_day: dict[int, set[int]] = {}
    for day, account_id in posters:
        by_day.setdefault(day, set()).add(account_id)
    packed: list[bytes] = []
    for day, accounts in sorted(by_day.items()):
        key = keys.daily_posters(day).encode()
        packed += (command(b"PFADD", key, *(b"%d" % a for a in sorted(accounts))), command(b"EXPIRE", key, kept))
    for day, count in sorted(Counter(interactions).items()):
        key = keys.daily_interactions(day).encode()
        packed += (command(b"INCRBY", key, b"%d" % count), command(b"EXPIRE", key, kept))
    for (day, language), count in sorted(Counter(languages).items()):
        key = keys.daily_languages(day).encode()
        packed += (command(b"HINCRBY", key, language.encode(), b"%d" % count), command(b"EXPIRE", key, kept))
    return packed


def login_commands(account_id: int, now: float | None = None) -> list[bytes]:
    """The commands recording a sign-in of the account in this week's logins (kept one week past the report's)."""
    key = keys.weekly_logins(week_of(time.time() if now is None else now)).encode()
    return [command(b"PFADD", key, b"%d" % account_id),
            command(b"EXPIRE", key, b"%d" % ((ACTIVITY_WEEKS + 1) * WEEK_SECONDS))]


async def activity(redis: Redis, now: float | None = None) -> list[dict[str, str]]:
    """Mastodon's instance activity: the last ``ACTIVITY_WEEKS`` weeks, this one first (module doc); one round
    trip."""
    this_week = week_of(time.time() if now is None else now)
    weeks = [this_week - n * WEEK_SECONDS for n in range(ACTIVITY_WEEKS)]
    directory = keys.directory_new().encode()
    replies = await round_trip(redis, [
        command(b"HMGET", _WEEKLY, *(b"%d" % week for week in weeks)),
        *(command(b"PFCOUNT", keys.weekly_logins(week).encode()) for week in weeks),
        # Registrations: the directory's scores are registration times in milliseconds (its marker's is 0).
        *(command(b"ZCOUNT", directory, b"%d" % (week * 1000), b"(%d" % ((week + WEEK_SECONDS) * 1000))
          for week in weeks),
    ])
    statuses, logins, registrations = replies[0], replies[1:1 + len(weeks)], replies[1 + len(weeks):]
    return [{"week": str(week), "statuses": str(int(posted or 0)), "logins": str(int(signed_in)),
             "registrations": str(int(registered))}
            for week, posted, signed_in, registered in zip(weeks, statuses, logins, registrations, strict=True)]

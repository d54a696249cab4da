"""The hourly runner's own rules (services/post/due_hours.py), apart from any table: where it starts, what a failed
entry keeps, when the progress moves. The scheduled statuses and polls' ends it runs are tested on the real
engines (tests/post/test_scheduled_statuses.py, tests/timeline/test_polls.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.post.due_hours import FIRST_LOOK_BACK_HOURS, DueRunner, hour_of

NOW = datetime(2026, 12, 4, 21, 30, tzinfo=UTC)


class Hours:
    """Due entries by hour, as a table would answer them, and the progress row."""

    def __init__(self, recorded: int | None) -> None:
        self.recorded = recorded
        self.entries: dict[int, list[datetime]] = {}
        self.asked: list[int] = []

    def add(self, moment: datetime) -> None:
        self.entries.setdefault(hour_of(moment), []).append(moment)

    async def due(self, hour: int, now: datetime) -> list[datetime]:
        self.asked.append(hour)
        return [moment for moment in self.entries.get(hour, []) if moment <= now]

    async def first_hour(self) -> int | None:
        return self.recorded

    async def advance(self, hour: int) -> None:
        self.recorded = hour


def test_hour_of_is_hours_since_the_epoch() -> None:
    assert hour_of(datetime(1970, 1, 1, 0, 59, 59, tzinfo=UTC)) == 0
    assert hour_of(datetime(1970, 1, 1, 1, tzinfo=UTC)) == 1
    assert hour_of(NOW) == int(NOW.timestamp()) // 3600


async def test_first_start_looks_back_a_day_and_then_starts_from_the_current_hour() -> None:
    hours = Hours(recorded=None)
    late = NOW - timedelta(hours=5)
    hours.add(late)
    hours.add(NOW + timedelta(minutes=1))  # not due yet
    done: list[datetime] = []

    async def handle(moment: datetime) -> int:
        done.append(moment)
        hours.entries[hour_of(moment)].remove(moment)
        return 1

    runner = DueRunner("test", hours, hours, handle)
    assert await runner.tick(NOW) == 1
    assert done == [late]
    assert hours.asked == list(range(hour_of(NOW) - FIRST_LOOK_BACK_HOURS, hour_of(NOW) + 1))
    assert hours.recorded == hour_of(NOW)
    hours.asked.clear()
    assert await runner.tick(NOW + timedelta(minutes=2)) == 1  # the one due a minute after
    assert hours.asked == [hour_of(NOW)]


async def test_a_failed_entry_keeps_its_hour_until_it_is_done() -> None:
    start = hour_of(NOW) - 2
    hours = Hours(recorded=start)
    stuck = NOW - timedelta(hours=2)
    hours.add(stuck)
    failing = True

    async def handle(moment: datetime) -> int:
        if failing:
            raise RuntimeError("the engines are away")
        hours.entries[hour_of(moment)].remove(moment)
        return 1

    runner = DueRunner("test", hours, hours, handle)
    assert await runner.tick(NOW) == 0
    assert hours.recorded == start  # not moved past the hour still holding it
    hours.asked.clear()
    failing = False
    assert await runner.tick(NOW) == 1
    assert hours.asked == [start, start + 1, start + 2]
    assert hours.recorded == hour_of(NOW)


async def test_a_stale_entry_counts_as_done_but_not_as_published() -> None:
    hours = Hours(recorded=hour_of(NOW) - 1)
    hours.add(NOW - timedelta(hours=1))

    async def handle(moment: datetime) -> int:
        hours.entries[hour_of(moment)].remove(moment)
        return 0

    assert await DueRunner("test", hours, hours, handle).tick(NOW) == 0
    assert hours.recorded == hour_of(NOW)

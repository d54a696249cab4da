"""Reports: ``POST /api/v1/reports``, an account telling the operator about another account, and about some of its
statuses, as Mastodon's report button does (Tusky, Elk, Phanpy, Mastodon.py's ``report``).

A report names its target account (it must exist), any of that account's statuses (each must be one of its: a
report never points at another's), a comment (1,000 characters at most), a category (``spam``, ``legal``,
``violation``, ``other``; ``violation`` when it names rules and no category, ``other`` otherwise, as Mastodon
reads it) and the instance's rules it breaks (the gateway checks them against its own ``instance_rules``).
``forward`` is accepted and never acted on: there is no other server to forward to, so ``forwarded`` is false.

The graph service keeps them in Cassandra ``reports`` (migration 0038, a partition a day, newest first), and the
open ones by their target in ``open_reports_by_target`` (migration 0057: the staff are told of the first open report
against an account only, services/graph/service.py); the operator reads and resolves them with ``python -m
services.graph.reports list|resolve``. The reporter gets the Report entity back; Mastodon's API gives accounts no way
to list their reports, and neither does Kicau's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

import msgspec
from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.entities import iso_time
from kicau.ids import ms_from_id, time_of_id
from kicau.time_partitions import PartitionedRows

Category = Literal["spam", "legal", "violation", "other"]
CATEGORIES: Final[tuple[str, ...]] = get_args(Category)
MAX_COMMENT: Final = 1000
MAX_STATUSES: Final = 100  # a report names this many statuses at most (Mastodon sets no number; Kicau bounds it)
_DAY_MS: Final = 86_400_000
# The admin API's listing (``ReportStore.page``): how many day partitions it reads at once, how far back it reads,
# and how many rows of one day it takes at a time (a day's reports past it wait for the next page).
SCAN_DAYS: Final = 31
LISTED_DAYS: Final = 366
PER_DAY_READ: Final = 400
# An action on an account resolves at most this many of its open reports at once (a moderator acting again takes
# the rest).
OPEN_READ: Final = 1000


def day_of(report_id: int) -> int:
    """Days since the epoch of the report's moment: its partition."""
    return ms_from_id(report_id) // _DAY_MS


@dataclass(frozen=True, slots=True)
class Report:
    id: int
    account_id: int  # who reported
    target_account_id: int
    status_ids: tuple[int, ...]
    rule_ids: tuple[int, ...]
    comment: str
    category: str
    action_taken_at: datetime | None = None
    # Handled through the admin API (services/graph/admin.py): the moderator who took the report on, the one who
    # resolved it, and when it last changed (None: never since it was filed).
    assigned_account_id: int | None = None
    action_taken_by_account_id: int | None = None
    updated_at: datetime | None = None

    @property
    def created_at(self) -> datetime:
        return time_of_id(self.id)


def category_of(given: str | None, rule_ids: tuple[int, ...]) -> str:
    """The category a report is filed under (module doc); ``given`` was checked against ``CATEGORIES``."""
    return given or ("violation" if rule_ids else "other")


def shared_fields(report: Report) -> dict[str, Any]:
    """What Mastodon's Report and Admin::Report (services/graph/admin.py) both say of a report."""
    return {
        "id": str(report.id),
        "action_taken": report.action_taken_at is not None,
        "action_taken_at": iso_time(report.action_taken_at),
        "category": report.category,
        "comment": report.comment,
        "forwarded": False,
        "created_at": iso_time(report.created_at),
    }


def entity(report: Report, target: dict[str, Any]) -> dict[str, Any]:
    """Mastodon's Report entity, with the target's Account entity."""
    return {
        **shared_fields(report),
        "status_ids": [str(s) for s in report.status_ids] or None,
        "rule_ids": [str(r) for r in report.rule_ids] or None,
        "target_account": target,
    }


def rendered_entity(report: Report, target_card: bytes) -> bytes:
    """``entity`` as JSON, with the target's cached card (Account JSON) spliced in undecoded: an ``admin.report``
    notification's report, as the timeline service renders it (kicau/notifications.py)."""
    return msgspec.json.encode({**entity(report, {}), "target_account": msgspec.Raw(target_card)})


class ReportStore:
    """Cassandra ``reports``."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._add = write("INSERT INTO reports (day, id, account_id, target_account_id, status_ids, rule_ids, comment,"
                          " category, forwarded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, false)")
        self._resolve = write("UPDATE reports SET action_taken_at = ?, action_taken_by_account_id = ?, updated_at = ?"
                              " WHERE day = ? AND id = ?")
        self._assign = write("UPDATE reports SET assigned_account_id = ?, updated_at = ? WHERE day = ? AND id = ?")
        self._classify = write("UPDATE reports SET category = ?, rule_ids = ?, updated_at = ? WHERE day = ? AND id = ?")
        self._day = session.prepare("SELECT * FROM reports WHERE day = ? LIMIT ?")
        self._older = session.prepare("SELECT * FROM reports WHERE day = ? AND id < ? AND id > ? LIMIT ?")
        self._newer = session.prepare("SELECT * FROM reports WHERE day = ? AND id > ? AND id < ? ORDER BY id ASC"
                                      " LIMIT ?")
        self._one = session.prepare("SELECT * FROM reports WHERE day = ? AND id = ?")
        self._filed = session.prepare("SELECT action_taken_at FROM reports WHERE day = ?")
        self._authors = session.prepare("SELECT id, account_id FROM statuses WHERE id IN ?")
        self._pages = PartitionedRows(session, self._older, self._newer, _from_row, PER_DAY_READ, SCAN_DAYS)
        self._opened = write("INSERT INTO open_reports_by_target (target_account_id, report_id) VALUES (?, ?)")
        self._closed = write("DELETE FROM open_reports_by_target WHERE target_account_id = ? AND report_id = ?")
        self._open_against = session.prepare("SELECT report_id FROM open_reports_by_target"
                                             " WHERE target_account_id = ? LIMIT ?")

    async def add(self, report: Report) -> None:
        await asyncio.gather(
            execute(self._session, self._add, (
                day_of(report.id), report.id, report.account_id, report.target_account_id, list(report.status_ids),
                list(report.rule_ids), report.comment, report.category)),
            execute(self._session, self._opened, (report.target_account_id, report.id)))

    async def any_open_against(self, target_account_id: int) -> bool:
        """Whether a report against the account is open (of those filed since migration 0057)."""
        return bool(await execute(self._session, self._open_against, (target_account_id, 1)))

    async def open_against(self, target_account_id: int) -> list[Report]:
        """The open reports against the account (of those filed since migration 0057; ``OPEN_READ`` at most), in no
        order: an action taken on the account resolves them all, as Mastodon's does."""
        rows = await execute(self._session, self._open_against, (target_account_id, OPEN_READ))
        found = await self.some(int(row["report_id"]) for row in rows)
        return [report for report in found.values() if report.action_taken_at is None]

    async def authors(self, status_ids: tuple[int, ...]) -> dict[int, int]:
        """The author of each of ``status_ids`` that exists."""
        if not status_ids:
            return {}
        rows = await execute(self._session, self._authors, (sorted(set(status_ids)),))
        return {int(row["id"]): int(row["account_id"]) for row in rows if row["account_id"] is not None}

    async def one(self, report_id: int) -> Report | None:
        rows = await execute(self._session, self._one, (day_of(report_id), report_id))
        return _from_row(rows[0]) if rows else None

    async def some(self, report_ids: Iterable[int]) -> dict[int, Report]:
        """Those of ``report_ids`` that exist, by id: one read each, all at once (a page of notifications names a
        few)."""
        wanted = sorted(set(report_ids))
        found = await asyncio.gather(*(self.one(report_id) for report_id in wanted))
        return {report.id: report for report in found if report is not None}

    async def newest(self, days: int, limit: int, *, today: int | None = None) -> list[Report]:
        """The newest reports of the last ``days`` days, ``limit`` at most, newest first."""
        first = today if today is not None else _today()
        pages = await asyncio.gather(*(execute(self._session, self._day, (day, limit))
                                       for day in range(first, first - days, -1)))
        return [_from_row(row) for rows in pages for row in rows][:limit]

    async def page(self, wanted: Callable[[Report], bool], limit: int, *, below: int | None = None,
                   above: int | None = None, oldest_first: bool = False) -> tuple[list[Report], int | None]:
        """Up to ``limit`` reports that ``wanted`` keeps, with ids between ``above`` and ``below`` (both excluded),
        newest first; with ``oldest_first``, the oldest such (Mastodon's ``min_id``), still listed newest first.
        And where the next page in the same direction starts (the last id read), or None when nothing is left.

        Reads the day partitions (kicau/time_partitions.py), ``SCAN_DAYS`` at a time, back at most ``LISTED_DAYS``
        days from the newest one it may list (the operator's tool lists older ones), ``PER_DAY_READ`` rows of a day
        at a time."""
        newest_day = day_of(below) if below is not None else _today()
        oldest_day = max(newest_day - LISTED_DAYS + 1, day_of(above) if above is not None else 0)
        return await self._pages.page(list(range(newest_day, oldest_day - 1, -1)), wanted, limit, below=below,
                                      above=above, oldest_first=oldest_first, id_of=_id_of)

    async def filed_between(self, first_day: int, last_day: int) -> list[tuple[int, datetime | None]]:
        """Every report filed from ``first_day`` to ``last_day`` (days since the epoch, both counted): the day it
        was filed and when it was resolved (None while open), for staff's dashboard (kicau/instance_measures.py).
        ``SCAN_DAYS`` partitions at a time."""
        days = list(range(first_day, last_day + 1))
        found: list[tuple[int, datetime | None]] = []
        for start in range(0, len(days), SCAN_DAYS):
            pages = await asyncio.gather(*(execute(self._session, self._filed, (day,))
                                           for day in days[start:start + SCAN_DAYS]))
            found += [(day, row["action_taken_at"]) for day, rows in zip(days[start:start + SCAN_DAYS], pages,
                                                                         strict=True) for row in rows]
        return found

    async def resolve(self, report: Report, at: datetime, by: int | None = None) -> None:
        await asyncio.gather(execute(self._session, self._resolve, (at, by, at, day_of(report.id), report.id)),
                             execute(self._session, self._closed, (report.target_account_id, report.id)))

    async def reopen(self, report: Report, at: datetime) -> None:
        await asyncio.gather(execute(self._session, self._resolve, (None, None, at, day_of(report.id), report.id)),
                             execute(self._session, self._opened, (report.target_account_id, report.id)))

    async def assign(self, report: Report, to: int | None, at: datetime) -> None:
        await execute(self._session, self._assign, (to, at, day_of(report.id), report.id))

    async def classify(self, report: Report, category: str, rule_ids: tuple[int, ...], at: datetime) -> None:
        await execute(self._session, self._classify, (category, list(rule_ids), at, day_of(report.id), report.id))


def _id_of(report: Report) -> int:
    return report.id


def _today() -> int:
    return int(datetime.now(UTC).timestamp() * 1000) // _DAY_MS


def _from_row(row: dict[str, Any]) -> Report:
    taken = row.get("action_taken_at")
    return Report(int(row["id"]), int(row["account_id"]), int(row["target_account_id"]),
                  tuple(int(s) for s in row.get("status_ids") or ()), tuple(int(r) for r in row.get("rule_ids") or ()),
                  row.get("comment") or "", row.get("category") or "other", _utc(taken),
                  _optional_id(row.get("assigned_account_id")), _optional_id(row.get("action_taken_by_account_id")),
                  _utc(row.get("updated_at")))


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None else None


def _optional_id(value: Any) -> int | None:
    return int(value) if value is not None else None

"""Reports: ``POST /api/v1/reports``, an account telling the operator about another account, and about some of its
statuses, as Mastodon's report button does (Tusky, Elk, Phanpy, Mastodon.py's ``report``).

A report names its target account (it must exist), any of that account's statuses (each must be one of its: a
report never points at another's), a comment (1,000 characters at most), a category (``spam``, ``legal``,
``violation``, ``other``; ``violation`` when it names rules and no category, ``other`` otherwise, as Mastodon
reads it) and the instance's rules it breaks (the gateway checks them against its own ``instance_rules``).
``forward`` is accepted and never acted on: there is no other server to forward to, so ``forwarded`` is false.

The graph service keeps them in Cassandra ``reports`` (migration 0038, a partition a day, newest first); the
operator reads and resolves them with ``python -m services.graph.reports list|resolve``. The reporter gets the
Report entity back; Mastodon's API gives accounts no way to list their reports, and neither does Kicau's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.entities import iso_time
from kicau.ids import ms_from_id

Category = Literal["spam", "legal", "violation", "other"]
CATEGORIES: Final[tuple[str, ...]] = get_args(Category)
MAX_COMMENT: Final = 1000
MAX_STATUSES: Final = 100  # a report names this many statuses at most (Mastodon sets no number; Kicau bounds it)
_DAY_MS: Final = 86_400_000


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

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(ms_from_id(self.id) / 1000, UTC)


def category_of(given: str | None, rule_ids: tuple[int, ...]) -> str:
    """The category a report is filed under (module doc); ``given`` was checked against ``CATEGORIES``."""
    return given or ("violation" if rule_ids else "other")


def entity(report: Report, target: dict[str, Any]) -> dict[str, Any]:
    """Mastodon's Report entity, with the target's Account entity."""
    return {
        "id": str(report.id),
        "action_taken": report.action_taken_at is not None,
        "action_taken_at": iso_time(report.action_taken_at),
        "category": report.category,
        "comment": report.comment,
        "forwarded": False,
        "created_at": iso_time(report.created_at),
        "status_ids": [str(s) for s in report.status_ids] or None,
        "rule_ids": [str(r) for r in report.rule_ids] or None,
        "target_account": target,
    }


class ReportStore:
    """Cassandra ``reports``."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._add = write("INSERT INTO reports (day, id, account_id, target_account_id, status_ids, rule_ids, comment,"
                          " category, forwarded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, false)")
        self._resolve = write("UPDATE reports SET action_taken_at = ? WHERE day = ? AND id = ?")
        self._day = session.prepare("SELECT * FROM reports WHERE day = ? LIMIT ?")
        self._one = session.prepare("SELECT * FROM reports WHERE day = ? AND id = ?")
        self._authors = session.prepare("SELECT id, account_id FROM statuses WHERE id IN ?")

    async def add(self, report: Report) -> None:
        await execute(self._session, self._add, (
            day_of(report.id), report.id, report.account_id, report.target_account_id, list(report.status_ids),
            list(report.rule_ids), report.comment, report.category))

    async def authors(self, status_ids: tuple[int, ...]) -> dict[int, int]:
        """The author of each of ``status_ids`` that exists."""
        if not status_ids:
            return {}
        rows = await execute(self._session, self._authors, (sorted(set(status_ids)),))
        return {int(row["id"]): int(row["account_id"]) for row in rows if row["account_id"] is not None}

    async def one(self, report_id: int) -> Report | None:
        rows = await execute(self._session, self._one, (day_of(report_id), report_id))
        return _from_row(rows[0]) if rows else None

    async def newest(self, days: int, limit: int, *, today: int | None = None) -> list[Report]:
        """The newest reports of the last ``days`` days, ``limit`` at most, newest first."""
        first = today if today is not None else int(datetime.now(UTC).timestamp() * 1000) // _DAY_MS
        pages = await asyncio.gather(*(execute(self._session, self._day, (day, limit))
                                       for day in range(first, first - days, -1)))
        return [_from_row(row) for rows in pages for row in rows][:limit]

    async def resolve(self, report: Report, at: datetime) -> None:
        await execute(self._session, self._resolve, (at, day_of(report.id), report.id))


def _from_row(row: dict[str, Any]) -> Report:
    taken = row.get("action_taken_at")
    return Report(int(row["id"]), int(row["account_id"]), int(row["target_account_id"]),
                  tuple(int(s) for s in row.get("status_ids") or ()), tuple(int(r) for r in row.get("rule_ids") or ()),
                  row.get("comment") or "", row.get("category") or "other",
                  taken.replace(tzinfo=UTC) if taken is not None else None)

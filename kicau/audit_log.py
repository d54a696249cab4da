"""The audit log: what staff did through the admin API, who did it and when (Mastodon's ``GET
/api/v1/admin/audit_logs``, its Admin::ActionLog).

Each moderation action that changes something leaves one entry, written after the change (an action that failed
halfway leaves none; an entry that cannot be written is logged and counted, never a failed request, which staff
would repeat). The entries and their Mastodon action types:

* on accounts (services/graph/admin.py): ``sensitive_account``, ``disable_user``, ``silence_account``,
  ``suspend_account`` (and ``create_account_warning`` for ``none``: a warning alone), ``unsensitive_account``,
  ``enable_user``, ``unsilence_account``, ``unsuspend_account``, and for sign-ups held for approval ``approve_user``
  and ``reject_user``;
* on reports: ``assigned_to_self_report``, ``unassigned_report``, ``resolve_report``, ``reopen_report``,
  ``update_report`` (its category or rules);
* on blocks: ``create_``/``destroy_email_domain_block``, ``create_``/``destroy_canonical_email_block``,
  ``create_``/``update_``/``destroy_ip_block``;
* on trends (the timeline service, kicau/trend_reviews.py): ``approve_``/``reject_tag``, ``_status``,
  ``_preview_card``.

An entry keeps the block it concerns as it was then (a destroyed block can still be read), and names an account it
concerns (``target_account``, shown as it is now). Kept in Cassandra ``admin_action_logs`` (migration 0064), a
partition a month, newest first, for good (as Mastodon keeps them); the listing reads back ``LISTED_MONTHS``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.entities import iso_time
from kicau.ids import id_from_ms, time_of_id
from kicau.metrics import AUDIT_LOG_UNWRITTEN
from kicau.time_partitions import PartitionedRows

log = logging.getLogger(__name__)

LISTED_MONTHS: Final = 36
PER_MONTH_READ: Final = 400
MONTHS_AT_ONCE: Final = 6
# Whose entity an entry keeps as it was (the others are named by id and ``human_identifier``).
KEPT_TARGETS: Final = frozenset({"email_domain_block", "canonical_email_block", "ip_block"})
# The targets that concern an account (their ``target_account``).
ACCOUNT_TARGETS: Final = frozenset({"account", "user", "account_warning", "report"})


def unclaimed_id() -> int:
    """An entry's id for a service that claims no snowflake worker (the timeline service's trend reviews): this
    millisecond and 16 random bits, so two staff acting in the same millisecond are told apart but for a 1 in 65,536
    chance."""
    return id_from_ms(int(time.time() * 1000)) | secrets.randbits(16)


def month_of(moment: datetime) -> int:
    """The partition of a moment: months since the epoch (UTC)."""
    return (moment.year - 1970) * 12 + moment.month - 1


@dataclass(frozen=True)
class ActionLog:
    id: int
    account_id: int  # who acted
    action: str
    target_type: str
    target_id: str
    human_identifier: str = ""
    target_account_id: int | None = None
    target: dict[str, Any] | None = None  # the target's entity then (``KEPT_TARGETS``)

    @property
    def action_type(self) -> str:
        return f"{self.action}_{self.target_type}"

    @property
    def created_at(self) -> datetime:
        return time_of_id(self.id)


def entity(entry: ActionLog, accounts: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mastodon's Admin::ActionLog; ``accounts``: Admin::Accounts by id (the actor's, the target account's), a
    missing one shown as null."""
    moment = iso_time(entry.created_at)
    body: dict[str, Any] = {
        "id": str(entry.id), "account": accounts.get(entry.account_id), "action_type": entry.action_type,
        "target_type": entry.target_type, "target_id": entry.target_id, "created_at": moment, "updated_at": moment,
        "human_identifier": entry.human_identifier or None, "link": None}
    if entry.target_account_id is not None:
        body["target_account"] = accounts.get(entry.target_account_id)
    if entry.target is not None and entry.target_type in KEPT_TARGETS:
        body[entry.target_type] = entry.target
    return body


def _from_row(row: dict[str, Any]) -> ActionLog:
    target = row.get("target_json")
    return ActionLog(int(row["id"]), int(row["account_id"]), row["action"], row["target_type"], row["target_id"],
                     row.get("human_identifier") or "", row.get("target_account_id"),
                     msgspec.json.decode(target) if target else None)


class AuditLogStore:
    """Cassandra ``admin_action_logs``."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._add = write("INSERT INTO admin_action_logs (month, id, account_id, action, target_type, target_id, "
                          "human_identifier, target_account_id, target_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        older = session.prepare("SELECT * FROM admin_action_logs WHERE month = ? AND id < ? AND id > ? LIMIT ?")
        newer = session.prepare("SELECT * FROM admin_action_logs WHERE month = ? AND id > ? AND id < ? "
                                "ORDER BY id ASC LIMIT ?")
        self._pages = PartitionedRows(session, older, newer, _from_row, PER_MONTH_READ, MONTHS_AT_ONCE)

    async def add(self, entry: ActionLog) -> None:
        """Keep an entry; an entry that cannot be kept is logged and counted (module doc), never raised."""
        try:
            await execute(self._session, self._add, (
                month_of(entry.created_at), entry.id, entry.account_id, entry.action, entry.target_type,
                entry.target_id, entry.human_identifier, entry.target_account_id,
                msgspec.json.encode(entry.target).decode() if entry.target is not None else None))
        except Exception:
            AUDIT_LOG_UNWRITTEN.inc()
            log.warning("the audit log lost %s of %s by %s", entry.action_type, entry.target_id, entry.account_id,
                        exc_info=True)

    async def page(self, wanted: Callable[[ActionLog], bool], limit: int, *, below: int | None = None,
                   above: int | None = None, oldest_first: bool = False) -> tuple[list[ActionLog], int | None]:
        """Up to ``limit`` entries ``wanted`` keeps between the cursors, newest first (kicau/time_partitions.py),
        back ``LISTED_MONTHS`` from the newest month it may list."""
        newest = month_of(time_of_id(below) if below is not None else datetime.now(UTC))
        oldest = max(newest - LISTED_MONTHS + 1, month_of(time_of_id(above)) if above is not None else 0)
        return await self._pages.page(list(range(newest, oldest - 1, -1)), wanted, limit, below=below, above=above,
                                      oldest_first=oldest_first, id_of=_id_of)


def _id_of(entry: ActionLog) -> int:
    return entry.id

"""Account warnings: what an account is told of a moderation action taken on it (Mastodon's strikes, its
AccountWarning entity and its ``moderation_warning`` notification).

Every action of the admin API on an account (services/graph/admin.py: ``none``, ``sensitive``, ``disable``,
``silence``, ``suspend``) leaves a warning: the action, the moderator's ``text``, and the statuses of the report it
was taken on, if any. Unless the moderator sets ``send_email_notification`` to false, the account is told of it: the
graph service publishes ``account.warned`` and the fanout records and streams a ``moderation_warning`` notification,
its id the warning's and its account the warned account's own (Mastodon's: a warning has no sender to show). Kicau
sends no e-mail; the notification is the telling. Kept in Cassandra ``account_warnings`` (migration 0060); appeals
are not taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import msgspec
from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.entities import iso_time
from kicau.ids import time_of_id

# Mastodon's limit on a warning's text is its form's; Kicau's gateway takes this many characters at most.
MAX_TEXT: Final = 5000


@dataclass(frozen=True, slots=True)
class AccountWarning:
    id: int
    account_id: int  # the warned account
    action: str  # none, sensitive, disable, silence or suspend
    text: str
    status_ids: tuple[int, ...] = ()
    report_id: int | None = None
    by_account_id: int | None = None  # the moderator, never shown to the account

    @property
    def created_at(self) -> datetime:
        return time_of_id(self.id)


def entity(warning: AccountWarning, target: dict[str, Any] | msgspec.Raw) -> dict[str, Any]:
    """Mastodon's AccountWarning, with the warned account's Account (a dict, or its cached card undecoded)."""
    return {
        "id": str(warning.id),
        "action": warning.action,
        "text": warning.text,
        "status_ids": [str(s) for s in warning.status_ids] or None,
        "target_account": target,
        "appeal": None,
        "created_at": iso_time(warning.created_at),
    }


def rendered_entity(warning: AccountWarning, target_card: bytes) -> bytes:
    """``entity`` as JSON, with the warned account's cached card spliced in undecoded: a ``moderation_warning``
    notification's, as the timeline service renders it (kicau/notifications.py)."""
    return msgspec.json.encode(entity(warning, msgspec.Raw(target_card)))


class WarningStore:
    """Cassandra ``account_warnings``."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        self._add = write_preparer(session, write_consistency)(
            "INSERT INTO account_warnings (account_id, id, action, text, status_ids, report_id, by_account_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)")
        self._one = session.prepare("SELECT * FROM account_warnings WHERE account_id = ? AND id = ?")

    async def add(self, warning: AccountWarning) -> None:
        await execute(self._session, self._add, (warning.account_id, warning.id, warning.action, warning.text,
                                                 list(warning.status_ids), warning.report_id, warning.by_account_id))

    async def some(self, account_id: int, warning_ids: Iterable[int]) -> dict[int, AccountWarning]:
        """Those of the account's ``warning_ids`` that exist, by id: one read each, all at once (a page of
        notifications names a few)."""
        wanted = sorted(set(warning_ids))
        rows = await asyncio.gather(*(execute(self._session, self._one, (account_id, w)) for w in wanted))
        found = [_from_row(found[0]) for found in rows if found]
        return {warning.id: warning for warning in found}


def _from_row(row: dict[str, Any]) -> AccountWarning:
    report_id, by = row.get("report_id"), row.get("by_account_id")
    return AccountWarning(int(row["id"]), int(row["account_id"]), str(row["action"]), str(row.get("text") or ""),
                          tuple(int(s) for s in row.get("status_ids") or ()),
                          int(report_id) if report_id is not None else None, int(by) if by is not None else None)

"""Mastodon's admin API, the graph service's side (the gateway's is services/gateway/routes/admin.py): staff read
and act on accounts and reports (``/internal/admin/...``).

Who may: the gateway has checked the token's ``admin:*`` scope; here the acting account's role (kicau/staff.py) must
hold the permission (``manage_users`` for accounts, ``manage_reports`` for reports), else 403 "This action is not
allowed", as Mastodon answers. Acting on an account (disabling, silencing, suspending, or undoing any) also needs a
role above the account's own: a moderator cannot disable an admin, nor anyone their own account.

What Kicau's accounts can be: disabled or not, suspended or not, limited (silenced) or not, marked sensitive or not
(kicau/account_standing.py). A suspended account cannot sign in, and its profile, statuses and notifications are
left out of every read (migration 0058, ``services.graph.accounts.set_suspended``); ``unsuspend`` gives them all
back, as nothing of it was deleted. A limited account's statuses are left out of the public reads and streams, and
its notifications to those who do not follow it go by their policies (migration 0059, ``set_silenced``). A marked
sensitive account's statuses read ``sensitive: true`` to everyone but their author and never trend (migration 0067,
``set_sensitized``); ``unsensitive`` gives each its own flag back. An action other than ``none`` resolves every open
report against the account, as Mastodon's does; ``none`` resolves the report it names. A sign-up held for approval
(services/graph/sign_ups.py) is listed by the ``pending`` filter, and among the others in its place by registration
time (merged from the waiting list: the directory and the names hold it only once approved), and ``approve`` lets it
in, ``reject`` deletes it (403 for an account not waiting, as Mastodon answers). ``unsensitive`` and ``unsilence``
of an account not so marked change nothing, as on Mastodon; ``unsuspend`` of an account not suspended is 403, as
Mastodon answers it.

How accounts are listed: newest registration first, as the profile directory keeps them (kicau/directory.py), from
a cursor's rank. A filtered page reads at most ``SCAN_BUDGET`` accounts; if it found fewer than asked, its next
cursor is the last account it read, so a client paging on finds the rest. Staff and role filters read the staff
table, and ``username`` the index of names (the accounts whose username begins with it, in any case, as Mastodon
matches it; the first ``NAMES_READ`` such names in the index's order): both list by id, newest first, which is the
order of registration for every account the API registered (seeded accounts have ids of no clock).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, get_args
from urllib.parse import urlsplit

import msgspec
from cassandra.cluster import Session
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from kicau.account_warnings import MAX_TEXT, AccountWarning
from kicau.account_warnings import entity as warning_entity
from kicau.audit_log import ActionLog
from kicau.audit_log import entity as audit_entity
from kicau.clients import execute
from kicau.entities import iso_time
from kicau.events import AccountWarned
from kicau.ids import ms_from_id
from kicau.ip_blocks import parsed_network
from kicau.reports import MAX_STATUSES, Category, Report, shared_fields
from kicau.staff import EVERYONE, Role, role_entity
from kicau.web import ACCOUNT_HEADER, NEXT_CURSOR_HEADER, PREV_CURSOR_HEADER, ApiError, acting_account_id
from services.graph import sign_ups
from services.graph.accounts import set_disabled, set_sensitized, set_silenced, set_suspended
from services.graph.service import GraphService

NOT_ALLOWED: Final = "This action is not allowed"
# A page of accounts or reports: Mastodon's default and most.
PAGE_DEFAULT: Final = 100
PAGE_MOST: Final = 200
# A filtered page of accounts reads at most this many, this many at a time.
SCAN_BUDGET: Final = 2000
SCAN_CHUNK: Final = 200
# ``username``: how many entries of the index of names a page reads at most.
NAMES_READ: Final = 2000
Action = Literal["none", "sensitive", "disable", "silence", "suspend"]
AccountChange = Literal["enable", "unsilence", "unsuspend", "unsensitive", "approve", "reject"]
ReportChange = Literal["assign_to_self", "unassign", "resolve", "reopen"]
ReportState = Literal["open", "resolved", "all"]
ACTIONS: Final = get_args(Action)

Id = Annotated[int, Field(ge=0, lt=1 << 63)]
Limit = Annotated[int, Query(ge=1, le=PAGE_MOST)]

_loads = msgspec.json.decode


@dataclass(frozen=True, slots=True)
class AccountFilter:
    """What an accounts page keeps (the gateway reads Mastodon's v1 and v2 parameters into it)."""

    status: str | None = None  # active, pending, disabled, suspended, silenced or sensitized
    remote: bool = False
    by_domain: str | None = None
    staff: bool = False
    role_ids: tuple[int, ...] = ()
    username: str | None = None
    display_name: str | None = None
    email: str | None = None
    ip: str | None = None
    invited_by: int | None = None

    def matches_nothing(self, local_domain: str) -> bool:
        return (self.remote or self.invited_by is not None
                or (self.by_domain is not None and self.by_domain.lower() != local_domain))

    def keeps(self, row: dict[str, Any], role: Role) -> bool:
        if self.status == "disabled" and not row.get("disabled"):
            return False
        if self.status == "pending" and not row.get("approval_pending"):
            return False
        if self.status in ("active", "suspended") and (self.status == "suspended") != (row.get("suspended_at")
                                                                                       is not None):
            return False  # Mastodon's ``active``: not suspended
        if self.status == "silenced" and row.get("silenced_at") is None:
            return False
        if self.status == "sensitized" and row.get("sensitized_at") is None:
            return False
        if (self.staff and role == EVERYONE) or (self.role_ids and role.id not in self.role_ids):
            return False
        if self.username is not None and not str(row["username"]).lower().startswith(self.username.lower()):
            return False
        if self.display_name is not None and self.display_name.lower() not in (row.get("display_name") or "").lower():
            return False
        return self.email is None or (row.get("email") or "").lower().startswith(self.email.lower())


@dataclass(frozen=True, slots=True)
class Cursors:
    max_id: int | None = None
    since_id: int | None = None
    min_id: int | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """Entities newest first, and where the pages after (older) and before (newer) them start."""

    items: list[dict[str, Any]]
    next_max_id: int | None
    prev_min_id: int | None


class Admin:
    def __init__(self, graph: GraphService, session: Session) -> None:
        self._graph = graph
        self._session = session
        self._rows = session.prepare(
            "SELECT id, username, email, display_name, created_at, disabled, suspended_at, silenced_at,"
            " sensitized_at, approval_pending, sign_up_reason FROM accounts WHERE id IN ?")
        self._local_domain = (urlsplit(graph.settings.public_url).hostname or "").lower()

    # Who may -----------------------------------------------------------------------------------------------

    async def staff_role(self, actor: int, permission: str) -> Role:
        role = await self._graph.staff.role_of(actor)
        if not role.can(permission):
            raise ApiError(403, NOT_ALLOWED)
        return role

    # Accounts ----------------------------------------------------------------------------------------------

    async def accounts(self, actor: int, wanted: AccountFilter, cursors: Cursors, limit: int) -> Page:
        await self.staff_role(actor, "manage_users")
        if wanted.matches_nothing(self._local_domain):
            return Page([], None, None)
        roles = await self._graph.staff.every()
        # The accounts a filter names, when one does (the others keep or drop each row): those that used the
        # address or network (kicau/account_ips.py), those whose name starts so, the staff.
        named: list[set[int]] = []
        if wanted.ip is not None:
            network = parsed_network(wanted.ip)
            if network is None:
                raise ApiError(422, "Validation failed: ip is not an address or a network")
            used = await self._graph.ips.accounts_in(network)
            if used is None:
                raise ApiError(422, "Validation failed: ip names too wide a network (at most an IPv4 /8 or an "
                                    "IPv6 /24)")
            named.append(used)
        # The sign-ups waiting for staff are in neither the directory nor the names until approved.
        waiting = set(await self._graph.pending_sign_ups.every()) if wanted.status == "pending" \
            or wanted.username is not None else set()
        if wanted.status == "pending":
            named.append(waiting)
        if wanted.username is not None and wanted.status != "pending":
            entries = await self._graph.names.starting_with(wanted.username.lower(), NAMES_READ)
            named.append({account_id for _, account_id in entries} | waiting)
        elif wanted.staff or wanted.role_ids:
            named.append(set(roles))
        if named:
            candidates = set.intersection(*named)
            return await self._by_id(sorted(candidates, reverse=True), wanted, roles, cursors, limit)
        return await self._by_rank(wanted, roles, cursors, limit)

    async def account(self, actor: int, account_id: int) -> dict[str, Any]:
        await self.staff_role(actor, "manage_users")
        return await self._one_account(account_id)

    async def act(self, actor: int, account_id: int, kind: str, report_id: int | None, *, text: str = "",
                  notify: bool = True) -> None:
        """A moderation action on the account (``none``, ``sensitive``, ``disable``, ``silence`` or ``suspend``),
        resolving ``report_id`` if given (a report against this account) and, for an action other than ``none``,
        every open report against it. It leaves a warning (kicau/account_warnings.py: the action, ``text`` and the
        report's statuses), which the account is told of with ``notify``."""
        role = await self.staff_role(actor, "manage_users")
        target_role, row = await self._target(account_id)
        report = await self._graph.reports.one(report_id) if report_id is not None else None
        if report_id is not None and (report is None or report.target_account_id != account_id):
            raise ApiError(404, "Record not found")
        if kind != "none" and not role.overrides(target_role):
            raise ApiError(403, NOT_ALLOWED)
        graph = self._graph
        if kind == "disable":
            await set_disabled(graph.store, graph.standing, graph.redis, account_id, True)
        elif kind == "silence" and row.get("silenced_at") is None:
            await set_silenced(graph.standing, graph.cards, account_id, datetime.now(UTC))
        elif kind == "sensitive" and row.get("sensitized_at") is None:
            await set_sensitized(graph.standing, graph.cards, account_id, datetime.now(UTC))
        elif kind == "suspend" and row.get("suspended_at") is None:
            await set_suspended(graph.store, graph.standing, graph.cards, graph.redis, account_id, datetime.now(UTC))
        # Resolved once the action is done: a report is never closed for an action that failed halfway.
        resolved = {report.id: report} if report is not None else {}
        if kind != "none":
            resolved.update((found.id, found) for found in await graph.reports.open_against(account_id))
        now = datetime.now(UTC)
        await asyncio.gather(*(graph.reports.resolve(found, now, actor) for found in resolved.values()))
        warning = AccountWarning(graph.ids.next_id(), account_id, kind, text,
                                 report.status_ids if report is not None else (), report_id, actor)
        await graph.warnings.add(warning)
        # The audit log (kicau/audit_log.py): the action, as Mastodon names it, and each report it resolved.
        human = str(row.get("username") or "")
        if kind == "none":
            await graph.log_action(actor, "create", "account_warning", warning.id, human=human,
                                   target_account_id=account_id)
        else:
            await graph.log_action(actor, kind, "user" if kind == "disable" else "account", account_id, human=human,
                                   target_account_id=account_id)
        for found in resolved.values():
            await graph.log_action(actor, "resolve", "report", found.id, human=str(found.id),
                                   target_account_id=account_id)
        if notify:
            # The account as it is now (limited, suspended: as the action left it).
            card = await graph.cards.entity(account_id)
            if card is not None:
                await graph.tell(AccountWarned(warning_id=warning.id, account_id=account_id,
                                               warning_json=json.dumps(warning_entity(warning, card),
                                                                       separators=(",", ":"))))

    async def change_account(self, actor: int, account_id: int, change: str) -> dict[str, Any]:
        """The Admin::Account after the change; ``{}`` after ``reject``, as Mastodon answers (it is gone)."""
        role = await self.staff_role(actor, "manage_users")
        target_role, row = await self._target(account_id)
        graph = self._graph
        if change in ("approve", "reject"):
            await (sign_ups.approve if change == "approve" else sign_ups.reject)(graph, row)
            await graph.log_action(actor, change, "user", account_id, human=str(row.get("username") or ""),
                                   target_account_id=account_id)
            return {} if change == "reject" else await self._one_account(account_id)
        if change == "unsuspend" and row.get("suspended_at") is None:
            raise ApiError(403, NOT_ALLOWED)  # Mastodon's answer for an account not suspended
        if change in ("enable", "unsuspend", "unsilence", "unsensitive") and not role.overrides(target_role):
            raise ApiError(403, NOT_ALLOWED)
        if change == "enable":
            await set_disabled(graph.store, graph.standing, graph.redis, account_id, False)
        elif change == "unsuspend":
            await set_suspended(graph.store, graph.standing, graph.cards, graph.redis, account_id, None)
        elif change == "unsilence" and row.get("silenced_at") is not None:
            await set_silenced(graph.standing, graph.cards, account_id, None)
        elif change == "unsensitive" and row.get("sensitized_at") is not None:
            await set_sensitized(graph.standing, graph.cards, account_id, None)
        if change in ("enable", "unsuspend", "unsilence", "unsensitive"):
            await graph.log_action(actor, change, "user" if change == "enable" else "account", account_id,
                                   human=str(row.get("username") or ""), target_account_id=account_id)
        return await self._one_account(account_id)

    async def _target(self, account_id: int) -> tuple[Role, dict[str, Any]]:
        """The role and the row (``_account_rows``'s: its standing too) of an account acted on (404 if there is no
        such account)."""
        rows, role = await asyncio.gather(self._account_rows([account_id]), self._graph.staff.role_of(account_id))
        if not rows:
            raise ApiError(404, "Record not found")
        found: Role = role
        return found, rows[0]

    async def _one_account(self, account_id: int) -> dict[str, Any]:
        rows = await self._account_rows([account_id])
        found = await self._render(rows, {account_id: await self._graph.staff.role_of(account_id)})
        if not found:
            raise ApiError(404, "Record not found")
        return found[0]

    async def _by_id(self, candidates: list[int], wanted: AccountFilter, roles: dict[int, Role], cursors: Cursors,
                     limit: int) -> Page:
        """A page of ``candidates`` (ids, newest first) by id cursors."""
        if cursors.max_id is not None:
            candidates = [c for c in candidates if c < cursors.max_id]
        lower = cursors.min_id if cursors.min_id is not None else cursors.since_id
        if lower is not None:
            candidates = [c for c in candidates if c > lower]
        if cursors.min_id is not None:
            candidates.reverse()  # the nearest above min_id first
        kept: list[dict[str, Any]] = []
        for start in range(0, len(candidates), SCAN_CHUNK):
            rows = {int(row["id"]): row for row in await self._account_rows(candidates[start:start + SCAN_CHUNK])}
            kept.extend(row for account_id in candidates[start:start + SCAN_CHUNK]
                        if (row := rows.get(account_id)) is not None
                        and wanted.keeps(row, roles.get(account_id, EVERYONE)))
            if len(kept) >= limit:
                break
        kept = sorted(kept[:limit], key=lambda row: int(row["id"]), reverse=True)
        return await self._page(kept, roles)

    async def _by_rank(self, wanted: AccountFilter, roles: dict[int, Role], cursors: Cursors, limit: int) -> Page:
        """A page of every account, newest registration first, by the ranks of the cursors (module doc)."""
        directory = self._graph.directory_index
        await directory.ensure()
        start, stop = 0, None
        if cursors.max_id is not None:
            start = (await directory.around(cursors.max_id))[1]
        lower = cursors.min_id if cursors.min_id is not None else cursors.since_id
        if lower is not None:
            stop = (await directory.around(lower))[0]
        upward = cursors.min_id is not None
        kept: list[dict[str, Any]] = []
        read, last_read, exhausted = 0, None, False
        while read < SCAN_BUDGET and len(kept) < limit:
            if upward:
                assert stop is not None
                chunk_stop = stop - read
                ids = list(reversed(await directory.ranked(max(start, chunk_stop - SCAN_CHUNK), chunk_stop)))
                exhausted = chunk_stop - SCAN_CHUNK <= start
            else:
                chunk_start = start + read
                chunk_stop = chunk_start + SCAN_CHUNK if stop is None else min(stop, chunk_start + SCAN_CHUNK)
                ids = await directory.ranked(chunk_start, chunk_stop)
                exhausted = chunk_stop - chunk_start < SCAN_CHUNK or len(ids) < chunk_stop - chunk_start
            read += SCAN_CHUNK
            rows = {int(row["id"]): row for row in await self._account_rows(ids)}
            for account_id in ids:
                last_read = account_id
                row = rows.get(account_id)
                if row is not None and wanted.keeps(row, roles.get(account_id, EVERYONE)):
                    kept.append(row)
                    if len(kept) == limit:
                        break
            if exhausted:
                break
        # The sign-ups waiting for staff, which the directory holds only once approved, in their places.
        ended = exhausted and len(kept) < limit
        edge = None if ended else int(kept[-1]["id"]) if len(kept) == limit else last_read
        before = len(kept)
        kept = await self._with_waiting(kept, wanted, roles, Cursors(cursors.max_id, lower, None), edge, upward,
                                        limit)
        if upward:
            kept.reverse()
        page = await self._page(kept, roles)
        if before < limit and len(kept) < limit and not exhausted and last_read is not None:
            # The budget ran out before the page filled: page on from the last account read.
            if upward:
                return Page(page.items, page.next_max_id, last_read)
            return Page(page.items, last_read, page.prev_min_id)
        return page

    async def _with_waiting(self, kept: list[dict[str, Any]], wanted: AccountFilter, roles: dict[int, Role],
                            bounds: Cursors, edge: int | None, upward: bool, limit: int) -> list[dict[str, Any]]:
        """``kept`` (a page read from the directory, in its order: newest first, or nearest ``since_id`` first
        ``upward``) with the waiting sign-ups the filter keeps merged in by registration time: those between the
        cursors (``bounds``: ``max_id`` and the lower one) and short of the page's ``edge`` (the last account it
        kept or read; None when the directory had no more), as Mastodon lists them among the others; ``limit`` at
        most."""
        waiting = [account_id for account_id in await self._graph.pending_sign_ups.every()
                   if (bounds.max_id is None or account_id < bounds.max_id)
                   and (bounds.since_id is None or account_id > bounds.since_id)
                   and (edge is None or (account_id < edge if upward else account_id > edge))]
        if not waiting:
            return kept
        rows = [row for row in await self._account_rows(waiting)
                if row.get("approval_pending") and wanted.keeps(row, roles.get(int(row["id"]), EVERYONE))]
        merged = list(kept)
        for row in sorted(rows, key=_registered_ms, reverse=not upward):
            moment = _registered_ms(row)
            at = next((i for i, other in enumerate(merged)
                       if (_registered_ms(other) > moment if upward else _registered_ms(other) < moment)), len(merged))
            merged.insert(at, row)
        return merged[:limit]

    async def _page(self, rows: list[dict[str, Any]], roles: dict[int, Role]) -> Page:
        items = await self._render(rows, roles)
        if not items:
            return Page([], None, None)
        return Page(items, int(items[-1]["id"]), int(items[0]["id"]))

    async def _account_rows(self, account_ids: Sequence[int]) -> list[dict[str, Any]]:
        if not account_ids:
            return []
        rows = await execute(self._session, self._rows, (list(account_ids),))
        return [row for row in rows if row.get("username") is not None]

    async def _render(self, rows: list[dict[str, Any]], roles: dict[int, Role]) -> list[dict[str, Any]]:
        """Mastodon's Admin::Account of each row, in order (one whose card cannot be had is left out), with the
        addresses it signed up and in from (kicau/account_ips.py: a read an account, all at once)."""
        ids = [int(row["id"]) for row in rows]
        cards, used = await asyncio.gather(self._graph.cards.cards(set(ids)),
                                           asyncio.gather(*(self._graph.ips.of(account_id) for account_id in ids)))
        return [admin_account_entity(row, _loads(cards[account_id]), roles.get(account_id, EVERYONE), ips)
                for row, account_id, ips in zip(rows, ids, used, strict=True) if account_id in cards]

    # Reports -----------------------------------------------------------------------------------------------

    async def reports(self, actor: int, *, state: ReportState, account_id: int | None, target_account_id: int | None,
                      cursors: Cursors, limit: int) -> Page:
        await self.staff_role(actor, "manage_reports")

        def wanted(report: Report) -> bool:
            return ((state == "all" or (report.action_taken_at is not None) == (state == "resolved"))
                    and account_id in (None, report.account_id)
                    and target_account_id in (None, report.target_account_id))

        upward = cursors.min_id is not None
        found, resume = await self._graph.reports.page(
            wanted, limit, below=cursors.max_id,
            above=cursors.min_id if upward else cursors.since_id, oldest_first=upward)
        items = await self._render_reports(found)
        next_max_id = int(items[-1]["id"]) if items else None
        prev_min_id = int(items[0]["id"]) if items else None
        if resume is not None and len(found) < limit:  # a day's many reports ended the read: page on from there
            if upward:
                prev_min_id = resume
            else:
                next_max_id = resume
        return Page(items, next_max_id, prev_min_id)

    # The audit log (kicau/audit_log.py) ------------------------------------------------------------------------

    async def audit_log(self, actor: int, *, action_type: str | None, account_id: int | None,
                        target_account_id: int | None, cursors: Cursors, limit: int) -> Page:
        """Staff's actions, newest first, filtered as Mastodon's (``action_type``, who acted, whom it concerned),
        by the entries' id cursors."""
        await self.staff_role(actor, "view_audit_log")

        def wanted(entry: ActionLog) -> bool:
            return (action_type in (None, entry.action_type) and account_id in (None, entry.account_id)
                    and target_account_id in (None, entry.target_account_id))

        upward = cursors.min_id is not None
        found, resume = await self._graph.audit.page(
            wanted, limit, below=cursors.max_id, above=cursors.min_id if upward else cursors.since_id,
            oldest_first=upward)
        people = sorted({p for entry in found for p in (entry.account_id, entry.target_account_id) if p is not None})
        rows, roles = await asyncio.gather(self._account_rows(people), self._graph.staff.every()) if people \
            else ([], {})
        accounts = {int(shown["id"]): shown for shown in await self._render(rows, roles)} if rows else {}
        items = [audit_entity(entry, accounts) for entry in found]
        next_max_id = found[-1].id if found else None
        prev_min_id = found[0].id if found else None
        if resume is not None and len(found) < limit:  # a month's many entries ended the read: page on from there
            if upward:
                prev_min_id = resume
            else:
                next_max_id = resume
        return Page(items, next_max_id, prev_min_id)

    async def report(self, actor: int, report_id: int) -> dict[str, Any]:
        await self.staff_role(actor, "manage_reports")
        return (await self._render_reports([await self._report(report_id)]))[0]

    async def change_report(self, actor: int, report_id: int, change: str) -> dict[str, Any]:
        await self.staff_role(actor, "manage_reports")
        report, now = await self._report(report_id), datetime.now(UTC)
        store = self._graph.reports
        if change == "assign_to_self":
            await store.assign(report, actor, now)
        elif change == "unassign":
            await store.assign(report, None, now)
        elif change == "resolve":
            await store.resolve(report, now, actor)
        else:
            await store.reopen(report, now)
        logged = {"assign_to_self": "assigned_to_self", "unassign": "unassigned"}.get(change, change)
        await self._graph.log_action(actor, logged, "report", report.id, human=str(report.id),
                                     target_account_id=report.target_account_id)
        return await self.report(actor, report_id)

    async def classify_report(self, actor: int, report_id: int, category: str | None,
                              rule_ids: tuple[int, ...] | None) -> dict[str, Any]:
        """A report's category and rules changed (either kept if not given); rules only under ``violation``, as
        Mastodon keeps them."""
        await self.staff_role(actor, "manage_reports")
        report = await self._report(report_id)
        new_category = category or report.category
        new_rules = (rule_ids if rule_ids is not None else report.rule_ids) if new_category == "violation" else ()
        await self._graph.reports.classify(report, new_category, tuple(dict.fromkeys(new_rules)), datetime.now(UTC))
        await self._graph.log_action(actor, "update", "report", report.id, human=str(report.id),
                                     target_account_id=report.target_account_id)
        return await self.report(actor, report_id)

    async def _report(self, report_id: int) -> Report:
        report = await self._graph.reports.one(report_id)
        if report is None:
            raise ApiError(404, "Record not found")
        return report

    async def _render_reports(self, reports: list[Report]) -> list[dict[str, Any]]:
        people = {person for report in reports for person in (
            report.account_id, report.target_account_id, report.assigned_account_id, report.action_taken_by_account_id)
            if person is not None}
        rows, roles = await asyncio.gather(self._account_rows(sorted(people)), self._graph.staff.every())
        accounts = {int(entity["id"]): entity for entity in await self._render(rows, roles)}
        return [admin_report_entity(report, accounts) for report in reports]


def _registered_ms(row: dict[str, Any]) -> int:
    """When an account registered, as the directory ranks it (kicau/directory.py): its row's time, else its id's."""
    created = row.get("created_at")
    return int(created.replace(tzinfo=UTC).timestamp() * 1000) if created is not None else ms_from_id(int(row["id"]))


def admin_account_entity(row: dict[str, Any], card: dict[str, Any], role: Role,
                         ips: Sequence[tuple[str, datetime]] = ()) -> dict[str, Any]:
    """Mastodon's Admin::Account; ``ips``: the addresses it signed up and in from, the latest first
    (kicau/account_ips.py). Kicau keeps no invitations or locale."""
    created = row.get("created_at")
    return {
        "id": str(row["id"]),
        "username": row["username"],
        "domain": None,
        "created_at": iso_time(created) if created is not None else card.get("created_at"),
        "email": row.get("email") or "",
        "ip": ips[0][0] if ips else None,
        "ips": [{"ip": address, "used_at": iso_time(used_at)} for address, used_at in ips],
        "locale": "",
        "invite_request": row.get("sign_up_reason"),
        "role": role_entity(role),
        "confirmed": True,
        "approved": not row.get("approval_pending"),
        "disabled": bool(row.get("disabled")),
        "sensitized": row.get("sensitized_at") is not None,
        "silenced": row.get("silenced_at") is not None,
        "suspended": row.get("suspended_at") is not None,
        "account": card,
        "created_by_application_id": None,
        "invited_by_account_id": None,
    }


def admin_report_entity(report: Report, accounts: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mastodon's Admin::Report, with the ids of its statuses and rules (``status_ids``, ``rule_ids``) where the
    gateway puts the statuses and rules themselves."""
    def person(account_id: int | None) -> dict[str, Any] | None:
        return accounts.get(account_id) if account_id is not None else None

    return {
        **shared_fields(report),
        "updated_at": iso_time(report.updated_at or report.created_at),
        "account": person(report.account_id),
        "target_account": person(report.target_account_id),
        "assigned_account": person(report.assigned_account_id),
        "action_taken_by_account": person(report.action_taken_by_account_id),
        "status_ids": [str(s) for s in report.status_ids],
        "rule_ids": [str(r) for r in report.rule_ids],
    }


# HTTP ----------------------------------------------------------------------------------------------------------

router = APIRouter(prefix="/internal/admin")


async def _admin(request: Request) -> Admin:
    admin: Admin = request.app.state.admin
    return admin


AdminDep = Annotated[Admin, Depends(_admin)]
OptionalId = Annotated[int | None, Query(ge=0, lt=1 << 63)]


async def _page_cursors(max_id: OptionalId = None, since_id: OptionalId = None,
                        min_id: OptionalId = None) -> Cursors:
    return Cursors(max_id, since_id, min_id)


# A listing's id cursors, as every admin listing takes them (Mastodon's ``max_id``, ``since_id``, ``min_id``).
PageCursors = Annotated[Cursors, Depends(_page_cursors)]
Actor = Annotated[str | None, Header(alias=ACCOUNT_HEADER)]


def paged(page: Page) -> JSONResponse:
    headers = {}
    if page.next_max_id is not None:
        headers[NEXT_CURSOR_HEADER] = str(page.next_max_id)
    if page.prev_min_id is not None:
        headers[PREV_CURSOR_HEADER] = str(page.prev_min_id)
    return JSONResponse(page.items, headers=headers)


@router.get("/accounts")
async def accounts(
    admin: AdminDep, cursors: PageCursors, actor: Actor = None,
    status: Literal["active", "disabled", "pending", "silenced", "suspended", "sensitized"] | None = None,
    remote: bool = False, by_domain: Annotated[str | None, Query(max_length=300)] = None, staff: bool = False,
    role_ids: Annotated[list[Annotated[int, Field(ge=-(1 << 31), lt=1 << 31)]], Query(max_length=40)] = [],  # noqa: B006
    username: Annotated[str | None, Query(max_length=300)] = None,
    display_name: Annotated[str | None, Query(max_length=300)] = None,
    email: Annotated[str | None, Query(max_length=300)] = None, ip: Annotated[str | None, Query(max_length=300)] = None,
    invited_by: OptionalId = None,
    limit: Limit = PAGE_DEFAULT,
) -> JSONResponse:
    wanted = AccountFilter(status=status, remote=remote, by_domain=by_domain, staff=staff, role_ids=tuple(role_ids),
                           username=username, display_name=display_name, email=email, ip=ip, invited_by=invited_by)
    return paged(await admin.accounts(acting_account_id(actor), wanted, cursors, limit))


@router.get("/accounts/{account_id}")
async def account(account_id: Annotated[int, Path(ge=0, lt=1 << 63)], admin: AdminDep,
                  actor: Actor = None) -> dict[str, Any]:
    return await admin.account(acting_account_id(actor), account_id)


class ActionForm(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Action = "none"
    report_id: Annotated[StrictInt, Field(ge=0, lt=1 << 63)] | None = None
    # The warning's text, and whether the account is told of it (Mastodon's ``send_email_notification``).
    text: Annotated[str, Field(max_length=MAX_TEXT)] = ""
    notify: bool = True


@router.post("/accounts/{account_id}/action")
async def act(account_id: Annotated[int, Path(ge=0, lt=1 << 63)], form: ActionForm, admin: AdminDep,
              actor: Actor = None) -> dict[str, Any]:
    await admin.act(acting_account_id(actor), account_id, form.type, form.report_id, text=form.text,
                    notify=form.notify)
    return {}


@router.post("/accounts/{account_id}/{change}")
async def change_account(account_id: Annotated[int, Path(ge=0, lt=1 << 63)],
                         change: AccountChange,
                         admin: AdminDep, actor: Actor = None) -> dict[str, Any]:
    return await admin.change_account(acting_account_id(actor), account_id, change)


@router.get("/reports")
async def reports(
    admin: AdminDep, cursors: PageCursors, actor: Actor = None, state: ReportState = "open",
    account_id: OptionalId = None, target_account_id: OptionalId = None,
    limit: Limit = PAGE_DEFAULT,
) -> JSONResponse:
    return paged(await admin.reports(acting_account_id(actor), state=state, account_id=account_id,
                                      target_account_id=target_account_id, cursors=cursors, limit=limit))


@router.get("/audit_logs")
async def audit_logs(
    admin: AdminDep, cursors: PageCursors, actor: Actor = None,
    action_type: Annotated[str | None, Query(max_length=100)] = None, account_id: OptionalId = None,
    target_account_id: OptionalId = None, limit: Limit = PAGE_DEFAULT,
) -> JSONResponse:
    return paged(await admin.audit_log(acting_account_id(actor), action_type=action_type, account_id=account_id,
                                       target_account_id=target_account_id, cursors=cursors, limit=limit))


@router.get("/reports/{report_id}")
async def report(report_id: Annotated[int, Path(ge=0, lt=1 << 63)], admin: AdminDep,
                 actor: Actor = None) -> dict[str, Any]:
    return await admin.report(acting_account_id(actor), report_id)


RuleId = Annotated[StrictInt, Field(ge=1, lt=1 << 31)]


class ReportChanges(BaseModel):
    model_config = ConfigDict(extra="ignore")
    category: Category | None = None
    rule_ids: Annotated[list[RuleId], Field(max_length=MAX_STATUSES)] | None = None


@router.put("/reports/{report_id}")
async def classify_report(report_id: Annotated[int, Path(ge=0, lt=1 << 63)], changes: ReportChanges,
                          admin: AdminDep, actor: Actor = None) -> dict[str, Any]:
    return await admin.classify_report(acting_account_id(actor), report_id, changes.category,
                                       tuple(changes.rule_ids) if changes.rule_ids is not None else None)


@router.post("/reports/{report_id}/{change}")
async def change_report(report_id: Annotated[int, Path(ge=0, lt=1 << 63)],
                        change: ReportChange,
                        admin: AdminDep, actor: Actor = None) -> dict[str, Any]:
    return await admin.change_report(acting_account_id(actor), report_id, change)



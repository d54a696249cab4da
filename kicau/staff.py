"""Staff: the accounts the operator made moderators, admins or owners, and what each role may do through Mastodon's
admin API (services/graph/admin.py, services/gateway/routes/admin.py).

Roles are Mastodon's three defaults, with Mastodon's permission bits (``UserRole::FLAGS``), so clients that read
``role.permissions`` (Elk's and Phanpy's moderation menus, Mastodon.py's ``AdminAccount``) see what they expect:

* Moderator: the dashboard, the audit log, users, reports and hashtags;
* Admin: every permission but ``administrator``;
* Owner: ``administrator``, which holds every permission, now and later.

Every other account has Mastodon's "everyone" role (id -99, ``invite_users`` only). A role is given and taken
with ``python -m services.graph.accounts role USERNAME Moderator|Admin|Owner|none``; it is kept in Cassandra
``staff`` (migration 0054), a row per staff account: the graph service reads one row per admin request, and the
staff listing reads the whole (small) table.

An admin request needs both an ``admin:*`` scope on its token (the gateway checks it, as for every scope) and a
role with the permission (the graph service checks it): a token's scopes say what an app may do for its user,
the role what the user may do at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer

# Mastodon's permission bits (app/models/user_role.rb), by name.
FLAGS: Final[dict[str, int]] = {name: 1 << bit for bit, name in enumerate((
    "administrator", "view_devops", "view_audit_log", "view_dashboard", "manage_reports", "manage_federation",
    "manage_settings", "manage_blocks", "manage_taxonomies", "manage_appeals", "manage_users", "manage_invites",
    "manage_rules", "manage_announcements", "manage_custom_emojis", "manage_webhooks", "invite_users",
    "manage_roles", "manage_user_access", "delete_user_data",
))}
ALL_PERMISSIONS: Final = sum(FLAGS.values())


@dataclass(frozen=True, slots=True)
class Role:
    id: int
    name: str
    permissions: int
    # Who outranks whom: a role acts only on accounts of a lower position (Mastodon's ``overrides?``).
    position: int
    highlighted: bool

    def can(self, permission: str) -> bool:
        """Whether the role holds ``permission`` (``administrator`` holds all)."""
        return bool(self.permissions & (FLAGS["administrator"] | FLAGS[permission]))

    def overrides(self, other: Role) -> bool:
        return self.position > other.position


EVERYONE: Final = Role(-99, "", FLAGS["invite_users"], -1, False)
MODERATOR: Final = Role(1, "Moderator", sum(FLAGS[name] for name in (
    "view_dashboard", "view_audit_log", "manage_users", "manage_reports", "manage_taxonomies")), 10, True)
ADMIN: Final = Role(2, "Admin", ALL_PERMISSIONS & ~FLAGS["administrator"], 100, True)
OWNER: Final = Role(3, "Owner", FLAGS["administrator"], 1000, True)
ROLES: Final[dict[str, Role]] = {role.name: role for role in (MODERATOR, ADMIN, OWNER)}

# Mastodon's admin scopes. None is granted by ``read`` or ``write``: an app asks for them by name.
ADMIN_RESOURCES: Final = ("accounts", "reports", "domain_allows", "domain_blocks", "ip_blocks", "email_domain_blocks",
                          "canonical_email_blocks")
ADMIN_SCOPES: Final[tuple[str, ...]] = (
    "admin:read", "admin:write",
    *(f"admin:read:{resource}" for resource in ADMIN_RESOURCES),
    *(f"admin:write:{resource}" for resource in ADMIN_RESOURCES),
)


# An account's role, read by the staff store and by the account cards (kicau/account_cards.py).
ROLE_OF: Final = "SELECT role FROM staff WHERE account_id = ?"


def role_entity(role: Role) -> dict[str, Any]:
    """Mastodon's Role entity (``permissions`` is a string of the bits' sum, as Mastodon serialises it)."""
    return {"id": str(role.id), "name": role.name, "color": "", "permissions": str(role.permissions),
            "highlighted": role.highlighted}


def profile_roles(role: Role) -> list[dict[str, str]]:
    """An Account entity's ``roles``: the highlighted role a profile shows (Mastodon's AccountRole), if any."""
    return [{"id": str(role.id), "name": role.name, "color": ""}] if role.highlighted else []


class StaffStore:
    """Cassandra ``staff``: an account's role, if it has one."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._read = session.prepare(ROLE_OF)
        self._every = session.prepare("SELECT account_id, role FROM staff")
        self._give = write("INSERT INTO staff (account_id, role) VALUES (?, ?)")
        self._take = write("DELETE FROM staff WHERE account_id = ?")

    async def role_of(self, account_id: int) -> Role:
        """The account's role (``EVERYONE`` for an account that is not staff)."""
        rows = await execute(self._session, self._read, (account_id,))
        return role_named(rows[0]["role"]) if rows else EVERYONE

    async def every(self) -> dict[int, Role]:
        """Every staff account's role (a few rows: the staff of one instance)."""
        rows = await execute(self._session, self._every)
        return {int(row["account_id"]): role_named(row["role"]) for row in rows}

    async def set(self, account_id: int, role: Role) -> None:
        """Give the account ``role`` (``EVERYONE``: take its role away)."""
        if role == EVERYONE:
            await execute(self._session, self._take, (account_id,))
        else:
            await execute(self._session, self._give, (account_id, role.name))


def role_named(name: str | None) -> Role:
    """The role of a ``staff`` row; a name no longer known (a role renamed by a later version) grants nothing."""
    return ROLES.get(name or "", EVERYONE)

"""Roles and admin scopes (kicau/staff.py, kicau/tokens.py's ``granted``, the graph service's ``parse_scopes``):
pure logic, no stack."""

from __future__ import annotations

import pytest

from kicau.staff import (
    ADMIN,
    ADMIN_SCOPES,
    EVERYONE,
    FLAGS,
    MODERATOR,
    OWNER,
    ROLES,
    profile_roles,
    role_entity,
    role_named,
)
from kicau.tokens import TokenInfo, granted
from kicau.web import ApiError
from services.graph.service import parse_scopes


@pytest.mark.parametrize(("scope", "scopes", "expected"), [
    ("read:statuses", ["read"], True),
    ("read:statuses", ["read:statuses"], True),
    ("read:statuses", ["write"], False),
    ("read", ["read:statuses"], False),
    ("admin:read:reports", ["admin:read"], True),
    ("admin:read:reports", ["admin:read:reports"], True),
    ("admin:read:reports", ["admin:read:accounts"], False),
    ("admin:read:reports", ["read"], False),  # ``read`` grants no admin scope
    ("admin:read:reports", ["admin:write"], False),
    ("admin:write:accounts", ["admin:write"], True),
    ("admin:read", ["admin:read:reports"], False),
])
def test_scopes_grant_what_lies_under_them(scope: str, scopes: list[str], expected: bool) -> None:
    assert granted(scope, scopes) is expected
    assert granted(scope, set(scopes)) is expected
    assert TokenInfo(account_id=1, client_id="c", scopes=scopes).allows(scope) is expected


def test_apps_may_ask_for_mastodons_admin_scopes_and_no_others() -> None:
    assert parse_scopes(" ".join(ADMIN_SCOPES)) == set(ADMIN_SCOPES)
    assert parse_scopes("read admin:read:reports+admin:write") == {"read", "admin:read:reports", "admin:write"}
    for bad in ("admin", "admin:read:statuses", "admin:delete", "administrator"):
        with pytest.raises(ApiError) as refused:
            parse_scopes(bad)
        assert refused.value.status_code == 400


def test_roles_hold_mastodons_permissions() -> None:
    assert (FLAGS["manage_reports"], FLAGS["manage_users"], FLAGS["delete_user_data"]) == (1 << 4, 1 << 10, 1 << 19)
    assert MODERATOR.permissions == 1308  # dashboard, audit log, users, reports, hashtags
    assert MODERATOR.can("manage_reports") and MODERATOR.can("manage_users") and not MODERATOR.can("manage_roles")
    assert ADMIN.can("manage_roles") and not ADMIN.permissions & FLAGS["administrator"]
    assert all(OWNER.can(name) for name in FLAGS)  # ``administrator`` holds every permission
    assert not EVERYONE.can("manage_reports") and EVERYONE.can("invite_users")
    assert OWNER.overrides(ADMIN) and ADMIN.overrides(MODERATOR) and MODERATOR.overrides(EVERYONE)
    assert not MODERATOR.overrides(MODERATOR) and not MODERATOR.overrides(ADMIN)


def test_roles_read_back_and_render_as_mastodon_does() -> None:
    assert {name: role_named(name) for name in ROLES} == ROLES
    assert role_named(None) == EVERYONE and role_named("Janitor") == EVERYONE  # an unknown name grants nothing
    assert role_entity(EVERYONE) == {"id": "-99", "name": "", "color": "", "permissions": "65536",
                                     "highlighted": False}
    assert role_entity(OWNER)["permissions"] == "1"
    assert profile_roles(EVERYONE) == [] and profile_roles(ADMIN) == [{"id": "2", "name": "Admin", "color": ""}]

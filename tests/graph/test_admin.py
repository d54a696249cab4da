"""Mastodon's admin API for accounts and reports (services/graph/admin.py, services/gateway/routes/admin.py,
kicau/staff.py) against the running system: the operator's tool makes staff, a token's ``admin:*`` scope and the
role's permissions both gate every route, moderators page through accounts and reports, take reports on, classify,
resolve and reopen them, and disable and enable accounts (whose tokens are refused at once); Mastodon.py's admin
methods work unchanged; bad input is a 4xx with a Mastodon error and changes nothing."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from mastodon import Mastodon

from stack.config import ROOT
from stack.services import service_env
from tests.conftest import User, eventually
from tests.graph.test_reports import RULES, ruled  # noqa: F401  (the gateway with two rules, a fixture)
from tests.timeline.test_visibility import post

NOT_ALLOWED = {"error": "This action is not allowed"}
OUT_OF_SCOPE = {"error": "This action is outside the authorized scopes"}
DISABLED = {"error": "Your login is currently disabled"}
ADMIN_SCOPES = "read write follow push admin:read admin:write"


def accounts_tool(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "services.graph.accounts", *args], cwd=ROOT, env=service_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def admin_app(http: httpx.Client) -> dict[str, Any]:
    """An app that may ask for the admin scopes (the suite's own app may not)."""
    answer = http.post("/api/v1/apps", data={"client_name": "kicau-moderation", "scopes": ADMIN_SCOPES,
                                             "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"})
    assert answer.status_code == 200, answer.text
    assert {"admin:read", "admin:write"} <= set(answer.json()["scopes"])
    return dict(answer.json())


def token(http: httpx.Client, app: dict[str, Any], user: User, scope: str) -> dict[str, str]:
    answer = http.post("/oauth/token", data={
        "grant_type": "password", "client_id": app["client_id"], "client_secret": app["client_secret"],
        "username": user.email, "password": user.password, "scope": scope})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture
def staff(http: httpx.Client, admin_app: dict[str, Any],
          make_user: Callable[..., User]) -> Callable[[str, str], tuple[User, dict[str, str]]]:
    """A new account of a role (``none``: not staff) and a token of it with the admin scopes."""
    def make(prefix: str, role: str) -> tuple[User, dict[str, str]]:
        user = make_user(prefix)
        if role != "none":
            accounts_tool("role", user.username, role)
        return user, token(http, admin_app, user, ADMIN_SCOPES)

    return make


def signed_in_client(gateway_url: str, app: dict[str, Any], user: User) -> Mastodon:
    """Mastodon.py signed in as ``user`` through the admin app, with the admin scopes."""
    client = Mastodon(client_id=app["client_id"], client_secret=app["client_secret"], api_base_url=gateway_url,
                      version_check_mode="none")
    client.log_in(user.email, user.password, scopes=ADMIN_SCOPES.split())
    return client


def next_link(answer: httpx.Response) -> str | None:
    found = re.search(r'<([^>]+)>; rel="next"', answer.headers.get("link", ""))
    return found.group(1) if found else None


def test_scopes_and_roles_both_gate_the_admin_api(http: httpx.Client, admin_app: dict[str, Any],
                                                  app_credentials: dict[str, Any],
                                                  staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:
    nobody, nobody_admin = staff("adm_n", "none")
    moderator, moderator_admin = staff("adm_m", "Moderator")
    routes = [("GET", "/api/v1/admin/accounts"), ("GET", "/api/v2/admin/accounts"),
              ("GET", f"/api/v1/admin/accounts/{nobody.id}"), ("GET", "/api/v1/admin/reports"),
              ("POST", f"/api/v1/admin/accounts/{nobody.id}/enable")]
    for method, path in routes:
        # An admin scope without a role: Mastodon's 403.
        assert (http.request(method, path, headers=nobody_admin).json(), method, path) == (NOT_ALLOWED, method, path)
        # A role without an admin scope (``read write`` grants none): the scope's 403.
        refused = http.request(method, path, headers=moderator.auth)
        assert (refused.status_code, refused.json()) == (403, OUT_OF_SCOPE), (method, path)
        assert http.request(method, path).status_code == 401
    # A read scope reads and does not write; the narrowest scopes do what they name only.
    reader = token(http, admin_app, moderator, "admin:read")
    assert http.get("/api/v1/admin/reports", headers=reader).status_code == 200
    assert http.post(f"/api/v1/admin/accounts/{nobody.id}/enable", headers=reader).json() == OUT_OF_SCOPE
    accounts_only = token(http, admin_app, moderator, "admin:read:accounts")
    assert http.get(f"/api/v1/admin/accounts/{nobody.id}", headers=accounts_only).status_code == 200
    assert http.get("/api/v1/admin/reports", headers=accounts_only).json() == OUT_OF_SCOPE
    # An app registered without the admin scopes cannot hand them out; ``admin`` alone is no scope.
    refused = http.post("/oauth/token", data={
        "grant_type": "password", "client_id": app_credentials["client_id"],
        "client_secret": app_credentials["client_secret"], "username": moderator.email,
        "password": moderator.password, "scope": "admin:read"})
    assert refused.status_code == 400, refused.text
    for scopes in ("admin", "admin:read:statuses"):
        bad = http.post("/api/v1/apps", data={"client_name": "x", "scopes": scopes,
                                              "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"})
        assert bad.status_code == 400, (scopes, bad.text)
    # The role shows on the account's own credentials and, highlighted, on its profile; ``none`` takes it away.
    me = http.get("/api/v1/accounts/verify_credentials", headers=moderator.auth).json()
    assert me["role"] == {"id": "1", "name": "Moderator", "color": "", "permissions": "1308", "highlighted": True}
    assert http.get(f"/api/v1/accounts/{moderator.id}").json()["roles"] == [
        {"id": "1", "name": "Moderator", "color": ""}]
    assert http.get("/api/v1/accounts/verify_credentials", headers=nobody.auth).json()["role"]["id"] == "-99"
    assert f"@{moderator.username}\tid {moderator.id}\tModerator" in accounts_tool("staff")
    accounts_tool("role", moderator.username, "none")
    assert http.get("/api/v1/admin/reports", headers=moderator_admin).json() == NOT_ALLOWED
    assert http.get(f"/api/v1/accounts/{moderator.id}").json()["roles"] == []


def test_a_moderator_works_a_report_through(ruled: httpx.Client,  # noqa: F811
                                            staff: Callable[[str, str], tuple[User, dict[str, str]]],
                                            make_user: Callable[..., User]) -> None:
    moderator, auth = staff("adr_m", "Moderator")
    reporter, target = make_user("adr_r"), make_user("adr_t")
    first, second = post(ruled, target, "buy now"), post(ruled, target, "buy again")
    filed = ruled.post("/api/v1/reports", headers=reporter.auth, json={
        "account_id": target.id, "status_ids": [first, second], "comment": "selling", "rule_ids": ["2"]})
    assert filed.status_code == 200, filed.text
    report_id = filed.json()["id"]

    listed = ruled.get("/api/v1/admin/reports", headers=auth, params={"target_account_id": target.id})
    assert listed.status_code == 200, listed.text
    assert [r["id"] for r in listed.json()] == [report_id]
    report = listed.json()[0]
    assert (report["account"]["username"], report["target_account"]["username"]) == (reporter.username,
                                                                                      target.username)
    assert report["target_account"]["account"]["id"] == target.id and report["target_account"]["email"] == target.email
    assert [s["id"] for s in report["statuses"]] == [first, second]
    assert report["rules"] == [{"id": "2", "text": RULES[1], "hint": ""}]
    assert (report["action_taken"], report["assigned_account"], report["action_taken_by_account"]) == (
        False, None, None)
    assert "status_ids" not in report and "rule_ids" not in report
    by_reporter = ruled.get("/api/v1/admin/reports", headers=auth, params={"account_id": reporter.id}).json()
    assert [r["id"] for r in by_reporter] == [report_id]

    taken = ruled.post(f"/api/v1/admin/reports/{report_id}/assign_to_self", headers=auth).json()
    assert taken["assigned_account"]["id"] == moderator.id and taken["updated_at"] >= taken["created_at"]
    assert ruled.post(f"/api/v1/admin/reports/{report_id}/unassign", headers=auth).json()["assigned_account"] is None
    # A category other than ``violation`` names no rules; back to ``violation`` with a rule of the instance.
    assert ruled.put(f"/api/v1/admin/reports/{report_id}", headers=auth,
                     json={"category": "spam"}).json()["rules"] == []
    changed = ruled.put(f"/api/v1/admin/reports/{report_id}", headers=auth,
                        data={"category": "violation", "rule_ids[]": ["1"]}).json()
    assert (changed["category"], changed["rules"]) == ("violation", [{"id": "1", "text": RULES[0], "hint": ""}])
    for bad in ({"category": "boring"}, {"rule_ids": ["3"]}, {"rule_ids": ["x"]}):
        refused = ruled.put(f"/api/v1/admin/reports/{report_id}", headers=auth, json=bad)
        assert refused.status_code == 422 and "error" in refused.json(), (bad, refused.text)
    assert ruled.get(f"/api/v1/admin/reports/{report_id}", headers=auth).json()["category"] == "violation"

    resolved = ruled.post(f"/api/v1/admin/reports/{report_id}/resolve", headers=auth).json()
    assert resolved["action_taken"] and resolved["action_taken_at"]
    assert resolved["action_taken_by_account"]["id"] == moderator.id

    def ids(**params: str) -> list[str]:
        answer = ruled.get("/api/v1/admin/reports", headers=auth, params={"target_account_id": target.id, **params})
        assert answer.status_code == 200, answer.text
        return [r["id"] for r in answer.json()]

    assert ids() == [] and ids(resolved="true") == [report_id] and ids(resolved="true", unresolved="true") == [
        report_id]
    reopened = ruled.post(f"/api/v1/admin/reports/{report_id}/reopen", headers=auth).json()
    assert (reopened["action_taken"], reopened["action_taken_by_account"]) == (False, None)
    assert ids() == [report_id]
    # A status its author deleted since leaves the report.
    assert ruled.delete(f"/api/v1/statuses/{first}", headers=target.auth).status_code == 200
    assert [s["id"] for s in ruled.get(f"/api/v1/admin/reports/{report_id}", headers=auth).json()["statuses"]] == [
        second]
    for missing in ("/api/v1/admin/reports/123", "/api/v1/admin/reports/x", "/api/v1/admin/reports/123/resolve"):
        method = "POST" if missing.endswith("resolve") else "GET"
        answer = ruled.request(method, missing, headers=auth)
        assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), missing
    for params in ({"resolved": "perhaps"}, {"account_id": "me"}, {"limit": "many"}, {"max_id": "x"}):
        answer = ruled.get("/api/v1/admin/reports", headers=auth, params=params)
        assert 400 <= answer.status_code < 500 and "error" in answer.json(), (params, answer.text)


def test_a_moderator_disables_and_enables_an_account(
        http: httpx.Client, staff: Callable[[str, str], tuple[User, dict[str, str]]],
        make_user: Callable[..., User]) -> None:
    moderator, auth = staff("add_m", "Moderator")
    admin, admin_auth = staff("add_a", "Admin")
    target, other = make_user("add_t"), make_user("add_o")
    filed = http.post("/api/v1/reports", headers=other.auth, json={"account_id": target.id}).json()
    elsewhere = http.post("/api/v1/reports", headers=target.auth, json={"account_id": other.id}).json()

    # Bad input first: nothing changes.
    cases: list[tuple[str, dict[str, Any], int]] = [
        (target.id, {"type": "ban"}, 422),
        (target.id, {"type": "disable", "report_id": "x"}, 422),
        (target.id, {"type": "disable", "report_id": elsewhere["id"]}, 404),  # a report against another account
        ("123", {"type": "disable"}, 404), ("me", {"type": "disable"}, 404),
        (admin.id, {"type": "disable"}, 403),  # a moderator does not outrank an admin
        (moderator.id, {"type": "disable"}, 403),  # nor anyone their own account
    ]
    for account_id, body, status in cases:
        answer = http.post(f"/api/v1/admin/accounts/{account_id}/action", headers=auth, json=body)
        assert (answer.status_code, "error" in answer.json()) == (status, True), (account_id, body, answer.text)
    assert http.get("/api/v1/timelines/home", headers=target.auth).status_code == 200
    assert http.get(f"/api/v1/admin/accounts/{target.id}", headers=auth).json()["disabled"] is False
    for change, status in (("unsuspend", 403), ("approve", 403), ("reject", 403), ("unsilence", 200),
                           ("unsensitive", 200)):
        answer = http.post(f"/api/v1/admin/accounts/{target.id}/{change}", headers=auth)
        assert answer.status_code == status, (change, answer.text)
        assert (answer.json() == NOT_ALLOWED) if status == 403 else answer.json()["silenced"] is False

    # Disabled with the report: its tokens are refused at once, the report is resolved by the moderator.
    done = http.post(f"/api/v1/admin/accounts/{target.id}/action", headers=auth,
                     data={"type": "disable", "report_id": filed["id"], "text": "no spam",
                           "send_email_notification": "1"})
    assert (done.status_code, done.json()) == (200, {})
    refused = http.get("/api/v1/timelines/home", headers=target.auth)
    assert (refused.status_code, refused.json()) == (403, DISABLED)
    report = http.get(f"/api/v1/admin/reports/{filed['id']}", headers=auth).json()
    assert report["action_taken"] and report["action_taken_by_account"]["id"] == moderator.id
    assert report["target_account"]["disabled"] is True
    shown = http.get(f"/api/v1/admin/accounts/{target.id}", headers=auth).json()
    assert (shown["disabled"], shown["account"]["id"], shown["username"]) == (True, target.id, target.username)
    v1 = http.get("/api/v1/admin/accounts", headers=auth, params={"disabled": "true", "username": "add_t"}).json()
    v2 = http.get("/api/v2/admin/accounts", headers=auth, params={"status": "disabled", "username": "add_t"}).json()
    assert target.id in [a["id"] for a in v1] and target.id in [a["id"] for a in v2]
    assert all(a["disabled"] for a in v1 + v2)

    # An admin outranks a moderator; enabling gives the target its tokens back.
    assert http.post(f"/api/v1/admin/accounts/{moderator.id}/action", headers=admin_auth,
                     json={"type": "none"}).json() == {}
    enabled = http.post(f"/api/v1/admin/accounts/{target.id}/enable", headers=auth)
    assert (enabled.status_code, enabled.json()["disabled"]) == (200, False)
    assert http.get("/api/v1/timelines/home", headers=target.auth).status_code == 200


def test_accounts_are_listed_newest_first_and_paged(
        http: httpx.Client, staff: Callable[[str, str], tuple[User, dict[str, str]]],
        make_user: Callable[..., User]) -> None:
    _, auth = staff("adl_m", "Moderator")
    prefix = f"adl{uuid.uuid4().hex[:6]}"
    made = [make_user(prefix) for _ in range(3)]
    newest_first = [user.id for user in reversed(made)]

    def listed(version: str = "v2", **params: str) -> httpx.Response:
        answer = http.get(f"/api/{version}/admin/accounts", headers=auth, params=params)
        assert answer.status_code == 200, answer.text
        return answer

    assert [a["id"] for a in listed(username=prefix).json()] == newest_first
    assert [a["id"] for a in listed("v1", username=prefix.upper()).json()] == newest_first
    first = listed(username=prefix, limit="2")
    assert [a["id"] for a in first.json()] == newest_first[:2]
    link = next_link(first)
    assert link is not None and f"max_id={newest_first[1]}" in link and f"username={prefix}" in link
    rest = http.get(link, headers=auth).json()
    assert [a["id"] for a in rest] == newest_first[2:]
    assert [a["id"] for a in listed(username=prefix, min_id=newest_first[2], limit="1").json()] == [newest_first[1]]
    assert [a["id"] for a in listed(username=prefix, since_id=newest_first[2]).json()] == newest_first[:2]
    assert [a["id"] for a in listed(email=made[1].email.upper()).json()] == [made[1].id]
    assert [a["id"] for a in listed(display_name=made[0].username[3:]).json()] == [made[0].id]

    # Every account, newest registration first: two pages of two are the first four in order.
    four = [a["id"] for a in listed(limit="4").json()]
    assert four[:3] == newest_first
    page = listed(limit="2")
    second = http.get(next_link(page) or "", headers=auth).json()
    assert [a["id"] for a in page.json()] + [a["id"] for a in second] == four
    assert [a["id"] for a in listed(min_id=four[3], limit="2").json()] == four[1:3]
    assert [a["id"] for a in listed(since_id=four[2]).json()] == four[:2]

    # What Kicau's accounts never are, or these are not, lists nothing; unknown values are refused.
    for version, params in (("v2", {"origin": "remote"}), ("v2", {"status": "pending", "username": prefix}),
                            ("v1", {"remote": "1"}), ("v1", {"sensitized": "true", "username": prefix}),
                            ("v2", {"by_domain": "elsewhere.example"}),
                            ("v2", {"ip": "192.0.2.1"})):  # an address no account used
        assert listed(version, **params).json() == [], (version, params)
    assert listed("v2", origin="local", username=prefix).json()[0]["id"] == newest_first[0]
    for version, params in (("v2", {"origin": "mars"}), ("v2", {"status": "asleep"}), ("v2", {"permissions": "x"}),
                            ("v1", {"staff": "perhaps"}), ("v2", {"limit": "x"}), ("v2", {"max_id": "x"}),
                            ("v2", {"role_ids[]": "x"})):
        answer = http.get(f"/api/{version}/admin/accounts", headers=auth, params=params)
        assert 400 <= answer.status_code < 500 and "error" in answer.json(), (version, params, answer.text)


def test_mastodon_py_moderates(gateway_url: str, http: httpx.Client, admin_app: dict[str, Any],
                               make_user: Callable[..., User]) -> None:
    moderator, reporter, target = make_user("adp_m"), make_user("adp_r"), make_user("adp_t")
    accounts_tool("role", moderator.username, "Moderator")
    client = signed_in_client(gateway_url, admin_app, moderator)
    status = post(http, target, "spam from Mastodon.py's view")
    filed = http.post("/api/v1/reports", headers=reporter.auth,
                      json={"account_id": target.id, "status_ids": [status], "comment": "spam"}).json()

    found = client.admin_accounts_v2(username=target.username)
    assert [a.id for a in found] == [int(target.id)] or [str(a.id) for a in found] == [target.id]
    assert client.admin_account(target.id).username == target.username
    open_reports = client.admin_reports(target_account_id=target.id)
    assert [str(r.id) for r in open_reports] == [filed["id"]]
    assert [str(s.id) for s in open_reports[0].statuses] == [status]
    assert str(client.admin_report_assign(filed["id"]).assigned_account.id) == moderator.id
    client.admin_account_moderate(target.id, "disable", report_id=filed["id"])
    assert client.admin_account(target.id).disabled is True
    assert client.admin_report(filed["id"]).action_taken is True
    assert client.admin_report_reopen(filed["id"]).action_taken is False
    assert client.admin_report_resolve(filed["id"]).action_taken is True
    assert client.admin_account_enable(target.id).disabled is False
    assert http.get("/api/v1/timelines/home", headers=target.auth).status_code == 200
    # The moderator was told of the report (tests/graph/test_staff_notifications.py), as Mastodon.py reads it.
    told = eventually(lambda: client.notifications(types=["admin.report"]))
    assert str(told[0].report.id) == filed["id"] and str(told[0].report.target_account.id) == target.id
    assert told[0].report.action_taken is True

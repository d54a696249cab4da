"""The audit log against the running system (kicau/audit_log.py): each action staff take through the admin API
leaves an entry, newest first, with who acted, what and on what (a block as it was, the account concerned);
``GET /api/v1/admin/audit_logs`` filters them by action, actor and account concerned and pages them with Link
headers; a refused action leaves none; only staff with ``admin:read`` may read it."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import User, eventually
from tests.graph.test_admin import NOT_ALLOWED, OUT_OF_SCOPE, admin_app, staff  # noqa: F401
from tests.timeline.test_tag_timeline import fresh_tag
from tests.timeline.test_visibility import post

LOG = "/api/v1/admin/audit_logs"


def entries(http: httpx.Client, auth: dict[str, str], query: str) -> list[dict[str, Any]]:
    answer = http.get(f"{LOG}?{query}", headers=auth)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def test_staff_actions_are_logged_newest_first(http: httpx.Client, make_user: Callable[..., User],
                                               staff: Callable[[str, str], tuple[User, dict[str, str]]],  # noqa: F811
                                               ) -> None:
    admin_user, admin = staff("aud_a", "Admin")
    reporter, target = make_user("aud_r"), make_user("aud_t")
    tag = fresh_tag()
    post(http, target, f"spam #{tag}")

    def ok(answer: httpx.Response) -> dict[str, Any]:
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    domain = f"aud-{uuid.uuid4().hex[:8]}.example"
    email_block = ok(http.post("/api/v1/admin/email_domain_blocks", headers=admin, json={"domain": domain}))
    ok(http.delete(f"/api/v1/admin/email_domain_blocks/{email_block['id']}", headers=admin))
    network = f"203.0.113.{random.randint(1, 254)}/32"
    ip_block = ok(http.post("/api/v1/admin/ip_blocks", headers=admin, json={"ip": network, "severity": "no_access"}))
    ok(http.put(f"/api/v1/admin/ip_blocks/{ip_block['id']}", headers=admin, json={"comment": "changed"}))
    ok(http.delete(f"/api/v1/admin/ip_blocks/{ip_block['id']}", headers=admin))
    report = ok(http.post("/api/v1/reports", headers=reporter.auth, json={"account_id": target.id}))
    ok(http.post(f"/api/v1/admin/reports/{report['id']}/assign_to_self", headers=admin))
    ok(http.post(f"/api/v1/admin/accounts/{target.id}/action", headers=admin,
                 json={"type": "suspend", "report_id": report["id"]}))
    ok(http.post(f"/api/v1/admin/accounts/{target.id}/unsuspend", headers=admin))
    # A trend's review is logged by the timeline service (once a public status carried the hashtag).
    eventually(lambda: http.post(f"/api/v1/admin/trends/tags/{tag}/reject", headers=admin).status_code == 200)
    # Refused: changes nothing, logs nothing.
    assert http.post(f"/api/v1/admin/accounts/{target.id}/unsuspend", headers=admin).status_code == 403

    mine = entries(http, admin, f"account_id={admin_user.id}&limit=200")
    assert [e["action_type"] for e in mine] == [
        "reject_tag", "unsuspend_account", "resolve_report", "suspend_account", "assigned_to_self_report",
        "destroy_ip_block", "update_ip_block", "create_ip_block", "destroy_email_domain_block",
        "create_email_domain_block"]
    assert [int(e["id"]) for e in mine] == sorted((int(e["id"]) for e in mine), reverse=True)
    assert all(e["account"]["id"] == admin_user.id and e["account"]["username"] == admin_user.username
               for e in mine)
    by_type = {e["action_type"]: e for e in mine}
    suspended = by_type["suspend_account"]
    assert (suspended["target_type"], suspended["target_id"], suspended["human_identifier"]) == \
        ("account", target.id, target.username)
    assert suspended["target_account"]["id"] == target.id and suspended["created_at"].endswith("Z")
    assert by_type["resolve_report"]["target_id"] == report["id"]
    assert by_type["resolve_report"]["target_account"]["id"] == target.id
    gone = by_type["destroy_ip_block"]
    assert (gone["human_identifier"], gone["ip_block"]["ip"], gone["ip_block"]["comment"]) == \
        (network, network, "changed")  # the block as it was when lifted
    assert by_type["create_email_domain_block"]["email_domain_block"]["domain"] == domain
    assert (by_type["reject_tag"]["target_type"], by_type["reject_tag"]["target_id"]) == ("tag", tag)

    # Filters: the action, the account concerned; paging by Link headers.
    assert [e["id"] for e in entries(http, admin, f"action_type=suspend_account&target_account_id={target.id}")] \
        == [suspended["id"]]
    assert [e["action_type"] for e in entries(http, admin, f"target_account_id={target.id}&"
                                                           f"account_id={admin_user.id}")] == \
        ["unsuspend_account", "resolve_report", "suspend_account", "assigned_to_self_report"]
    first = http.get(f"{LOG}?account_id={admin_user.id}&limit=4", headers=admin)
    assert [e["id"] for e in first.json()] == [e["id"] for e in mine[:4]]
    following = httpx.URL(first.links["next"]["url"]).raw_path.decode()
    assert [e["id"] for e in entries(http, admin, following.split("?", 1)[1])] == [e["id"] for e in mine[4:8]]
    newer = entries(http, admin, f"account_id={admin_user.id}&min_id={mine[2]['id']}")
    assert [e["id"] for e in newer] == [e["id"] for e in mine[:2]]


def test_who_may_read_the_audit_log(http: httpx.Client, make_user: Callable[..., User],
                                    staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    _, moderator = staff("aud_m", "Moderator")  # Mastodon's moderators hold view_audit_log
    _, nobody = staff("aud_n", "none")
    user = make_user("aud_u")
    assert http.get(f"{LOG}?limit=1", headers=moderator).status_code == 200
    answer = http.get(LOG, headers=nobody)
    assert (answer.status_code, answer.json()) == (403, NOT_ALLOWED)
    answer = http.get(LOG, headers=user.auth)
    assert (answer.status_code, answer.json()) == (403, OUT_OF_SCOPE)
    assert http.get(LOG).status_code == 401
    for query in ("account_id=abc", "max_id=x", "limit=many"):
        answer = http.get(f"{LOG}?{query}", headers=moderator)
        assert answer.status_code == 400 and set(answer.json()) == {"error"}, (query, answer.text)
    assert entries(http, moderator, "action_type=no_such_action") == []
    answer = http.get(f"{LOG}?action_type=a%00b", headers=moderator)  # NUL is in no parameter (schemathesis)
    assert answer.status_code == 422 and set(answer.json()) == {"error"}, answer.text

"""The staff's notifications against the running system (kicau/notifications.py ``STAFF_TYPES``): a sign-up tells
the staff who may manage accounts (``admin.sign_up``), a report those who may manage reports (``admin.report``, with
the Report), on their streams and in their lists, v1 and v2; never the account that reported, never an account
that is not staff; not again for an account with a report open already; shown only while the reader's role grants
the permission; the report as it is now."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import User, eventually
from tests.gateway.test_streaming import read_events, warm_until_seen
from tests.graph.test_admin import accounts_tool, admin_app, staff  # noqa: F401  (fixtures)
from tests.timeline.test_visibility import post

STAFF_TYPES = "types[]=admin.sign_up&types[]=admin.report"


def staff_notices(http: httpx.Client, user: User, query: str = STAFF_TYPES) -> list[dict[str, Any]]:
    answer = http.get(f"/api/v1/notifications?limit=80&{query}", headers=user.auth)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def test_staff_are_told_of_sign_ups_and_reports(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
    staff: Callable[[str, str], tuple[User, dict[str, str]]],  # noqa: F811
) -> None:
    moderator, moderator_admin = staff("stn_m", "Moderator")
    colleague, _ = staff("stn_c", "Admin")
    bystander = make_user("stn_b")
    reporter, target = make_user("stn_r"), make_user("stn_t")

    # Sign-ups: each staff account is told of each account registered after it became staff, with the new
    # account's card; its id is the account's, and it stands alone in v2's groups.
    def signed_up() -> list[dict[str, Any]]:
        notices = staff_notices(http, moderator, "types[]=admin.sign_up")
        assert {reporter.id, target.id, bystander.id} <= {n["account"]["id"] for n in notices}
        return notices
    told = next(n for n in eventually(signed_up) if n["account"]["id"] == target.id)
    assert told["type"] == "admin.sign_up" and told["id"] == target.id, told
    assert told["group_key"] == f"ungrouped-{told['id']}" and "status" not in told and "report" not in told
    assert eventually(lambda: target.id in {n["account"]["id"]
                                            for n in staff_notices(http, colleague, "types[]=admin.sign_up")})
    assert staff_notices(http, bystander) == []
    assert staff_notices(http, reporter) == []

    # A report reaches the moderator's stream at once, with the Report and its target.
    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(30, read=30)) as client, \
            client.stream("GET", "/api/v1/streaming/user/notification", headers=moderator.auth) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        warm_until_seen(gateway_url, bystander, lines, text=f"@{moderator.username} warm-up")
        said = post(http, target, "buy my stuff")
        filed = http.post("/api/v1/reports", headers=reporter.auth, data={
            "account_id": target.id, "status_ids[]": said, "comment": "spam again", "category": "spam"})
        assert filed.status_code == 200, filed.text
        report_id = filed.json()["id"]
        event = read_events(lines, 1)[0]
    assert event["event"] == "notification", event
    streamed = json.loads(event["data"])
    assert streamed["type"] == "admin.report" and streamed["id"] == report_id, streamed
    assert streamed["account"]["id"] == reporter.id
    assert streamed["report"]["id"] == report_id and streamed["report"]["target_account"]["id"] == target.id
    assert streamed["report"]["status_ids"] == [said] and streamed["report"]["category"] == "spam"
    assert streamed["report"]["action_taken"] is False

    # The same in the lists (v1, one by id, v2), the report as it is now: resolved once a moderator resolves it.
    resolved = http.post(f"/api/v1/admin/reports/{report_id}/resolve", headers=moderator_admin)
    assert resolved.status_code == 200, resolved.text

    def listed() -> dict[str, Any]:
        found = [n for n in staff_notices(http, moderator, "types[]=admin.report") if n["id"] == report_id]
        assert found and found[0]["report"]["action_taken"] is True, found
        return found[0]
    notice = eventually(listed)
    assert {k: v for k, v in notice.items() if k != "report"} == {
        k: v for k, v in streamed.items() if k != "report"}
    one = http.get(f"/api/v1/notifications/{report_id}", headers=moderator.auth)
    assert one.status_code == 200 and one.json() == notice, one.text
    grouped = http.get("/api/v2/notifications?types[]=admin.report&limit=40", headers=moderator.auth)
    assert grouped.status_code == 200, grouped.text
    group = next(g for g in grouped.json()["notification_groups"] if g["most_recent_notification_id"] == report_id)
    assert group["type"] == "admin.report" and group["report"] == notice["report"], group
    assert reporter.id in {a["id"] for a in grouped.json()["accounts"]}
    assert eventually(lambda: [n for n in staff_notices(http, colleague, "types[]=admin.report")
                               if n["id"] == report_id])
    assert report_id not in {n["id"] for n in staff_notices(
        http, moderator, "exclude_types[]=admin.report&types[]=admin.sign_up")}

    # A staff account that reports is not told of its own report; the others are.
    own = http.post("/api/v1/reports", headers=colleague.auth, data={"account_id": target.id, "comment": "mine"})
    assert own.status_code == 200, own.text
    eventually(lambda: own.json()["id"] in {n["id"] for n in staff_notices(http, moderator)} or None)
    assert own.json()["id"] not in {n["id"] for n in staff_notices(http, colleague)}
    assert staff_notices(http, bystander) == [] and staff_notices(http, reporter) == []

    # While a report against an account is open, another against it tells no one (Mastodon's rule); a report
    # against another account does. Both by one reporter: their events keep their order.
    sibling = http.post("/api/v1/reports", headers=reporter.auth, data={"account_id": target.id, "comment": "again"})
    elsewhere = http.post("/api/v1/reports", headers=reporter.auth, data={"account_id": bystander.id})
    assert sibling.status_code == elsewhere.status_code == 200, (sibling.text, elsewhere.text)
    eventually(lambda: elsewhere.json()["id"] in {n["id"] for n in staff_notices(http, moderator)} or None)
    assert sibling.json()["id"] not in {n["id"] for n in staff_notices(http, moderator)}
    for report in (own, sibling):  # resolved, the target's next report tells the staff again
        assert http.post(f"/api/v1/admin/reports/{report.json()['id']}/resolve",
                         headers=moderator_admin).status_code == 200
    later = http.post("/api/v1/reports", headers=reporter.auth, data={"account_id": target.id, "comment": "later"})
    eventually(lambda: later.json()["id"] in {n["id"] for n in staff_notices(http, moderator)} or None)

    # Its role taken away, the moderator reads none of them (its other notifications stay); given back, all again.
    accounts_tool("role", moderator.username, "none")
    assert staff_notices(http, moderator) == []
    assert http.get(f"/api/v1/notifications/{report_id}", headers=moderator.auth).status_code == 404
    assert "mention" in {n["type"] for n in staff_notices(http, moderator, "types[]=mention")}
    accounts_tool("role", moderator.username, "Moderator")
    assert report_id in {n["id"] for n in staff_notices(http, moderator)}

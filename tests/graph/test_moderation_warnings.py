"""Moderation warnings against the running system (kicau/account_warnings.py): each action staff take on an account
leaves a warning (the action, the moderator's text, the statuses of the report it was taken on), and the account is
told of it as Mastodon tells it: a ``moderation_warning`` notification from itself, carrying the AccountWarning, in
v1, v2 and its stream; not told when the moderator asks so (``send_email_notification`` false)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from mastodon import Mastodon

from tests.conftest import User, eventually
from tests.gateway.test_streaming import read_events, warm_until_seen
from tests.graph.test_admin import ADMIN_SCOPES, admin_app, staff  # noqa: F401  (fixtures)
from tests.timeline.test_visibility import post

WARNINGS = "types[]=moderation_warning"


def warnings(http: httpx.Client, user: User) -> list[dict[str, Any]]:
    answer = http.get(f"/api/v1/notifications?{WARNINGS}", headers=user.auth)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def test_an_account_is_told_of_what_staff_did_to_it(
        gateway_url: str, http: httpx.Client, make_user: Callable[..., User], admin_app: dict[str, Any],  # noqa: F811
        staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    moderator, auth = staff("mw_m", "Moderator")
    target, reporter = make_user("mw_t"), make_user("mw_r")
    spam = post(http, target, "spam to be warned about")
    filed = http.post("/api/v1/reports", headers=reporter.auth,
                      json={"account_id": target.id, "status_ids": [spam], "comment": "spam"}).json()

    # Bad input changes nothing and tells no one.
    for body in ({"type": "none", "text": "x" * 5001}, {"type": "none", "text": 5},
                 {"type": "none", "send_email_notification": "perhaps"}):
        answer = http.post(f"/api/v1/admin/accounts/{target.id}/action", headers=auth, json=body)
        assert (answer.status_code, "error" in answer.json()) == (422, True), (body, answer.text)

    with httpx.Client(base_url=gateway_url, timeout=30) as client, \
            client.stream("GET", "/api/v1/streaming/user/notification", headers=target.auth) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        warm_until_seen(gateway_url, reporter, lines, text=f"@{target.username} warm-up")
        # A warning, with the report's statuses: the account's stream and lists carry it.
        done = http.post(f"/api/v1/admin/accounts/{target.id}/action", headers=auth,
                         data={"type": "silence", "report_id": filed["id"], "text": "Please stop the spam."})
        assert (done.status_code, done.json()) == (200, {})
        (event,) = read_events(lines, 1)
    streamed = json.loads(event["data"])
    assert (event["event"], streamed["type"], streamed["account"]["id"]) == (
        "notification", "moderation_warning", target.id)
    warning = streamed["moderation_warning"]
    assert (warning["action"], warning["text"], warning["status_ids"], warning["appeal"]) == (
        "silence", "Please stop the spam.", [spam], None)
    assert warning["target_account"]["id"] == target.id and warning["target_account"]["limited"] is True
    listed = eventually(lambda: warnings(http, target))
    assert [n["id"] for n in listed] == [streamed["id"]] and listed[0]["moderation_warning"]["id"] == warning["id"]
    assert listed[0]["moderation_warning"]["text"] == "Please stop the spam."
    one = http.get(f"/api/v1/notifications/{streamed['id']}", headers=target.auth).json()
    assert one["moderation_warning"]["action"] == "silence"
    grouped = http.get(f"/api/v2/notifications?{WARNINGS}", headers=target.auth).json()
    (group,) = grouped["notification_groups"]
    assert (group["type"], group["moderation_warning"]["id"]) == ("moderation_warning", warning["id"])
    # Nobody else is told, the moderator neither.
    assert warnings(http, moderator) == [] and warnings(http, reporter) == []

    # Not told when the moderator asks so; told of a note (``none``) with no report.
    assert http.post(f"/api/v1/admin/accounts/{target.id}/unsilence", headers=auth).status_code == 200
    quiet = http.post(f"/api/v1/admin/accounts/{target.id}/action", headers=auth,
                      json={"type": "disable", "send_email_notification": False})
    assert quiet.status_code == 200, quiet.text
    assert http.post(f"/api/v1/admin/accounts/{target.id}/enable", headers=auth).status_code == 200
    noted = http.post(f"/api/v1/admin/accounts/{target.id}/action", headers=auth, json={"type": "none"})
    assert noted.status_code == 200, noted.text
    def both() -> list[dict[str, Any]]:
        found = warnings(http, target)
        assert len(found) == 2, found
        return found

    told = eventually(both)
    assert [n["moderation_warning"]["action"] for n in told] == ["none", "silence"]
    assert told[0]["moderation_warning"]["text"] == "" and told[0]["moderation_warning"]["status_ids"] is None

    # Mastodon.py reads it.
    reader = Mastodon(client_id=admin_app["client_id"], client_secret=admin_app["client_secret"],
                      api_base_url=gateway_url, version_check_mode="none")
    reader.log_in(target.email, target.password, scopes=["read"])
    read = reader.notifications(types=["moderation_warning"])
    assert [n.moderation_warning.action for n in read] == ["none", "silence"]

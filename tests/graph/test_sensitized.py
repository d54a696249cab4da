"""Marking an account sensitive against the running system (Mastodon's admin action ``sensitive``,
services/graph/admin.py): every status of the account, those posted before the mark too, reads ``sensitive: true``
to everyone but its author, in the reads and in the stream events; its card says ``sensitized``; ``unsensitive``
gives each status its own flag back. Staff list it with v1's ``sensitized``, the audit log and the account's
warnings record both changes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import User, eventually
from tests.gateway.test_streaming import read_events, warm_until_seen
from tests.graph.test_admin import admin_app, signed_in_client, staff  # noqa: F401  (fixtures)
from tests.graph.test_moderation_warnings import warnings
from tests.timeline.test_visibility import post


def flags(answer: httpx.Response) -> dict[str, bool]:
    """Status id -> its ``sensitive``, for a page of statuses."""
    assert answer.status_code == 200, answer.text
    return {str(status["id"]): bool(status["sensitive"]) for status in answer.json()}


def sensitive(http: httpx.Client, status_id: str, reader: User | None) -> bool:
    answer = http.get(f"/api/v1/statuses/{status_id}", headers=reader.auth if reader else {})
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["sensitive"])


def test_a_sensitized_accounts_statuses_read_sensitive_until_unsensitized(
        gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
        staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    moderator, auth = staff("sen_m", "Moderator")
    admin, _ = staff("sen_a", "Admin")
    target, follower, bystander = (make_user(p) for p in ("sen_t", "sen_f", "sen_b"))
    assert http.post(f"/api/v1/accounts/{target.id}/follow", headers=follower.auth).status_code == 200
    filed = http.post("/api/v1/reports", headers=bystander.auth, json={"account_id": target.id}).json()
    plain = post(http, target, "posted before the mark")
    marked = post(http, target, "marked by its author", sensitive=True, spoiler_text="cw")
    boost = http.post(f"/api/v1/statuses/{plain}/reblog", headers=bystander.auth)
    assert boost.status_code == 200, boost.text
    boost_id = str(boost.json()["id"])

    def home() -> dict[str, bool]:
        return flags(http.get("/api/v1/timelines/home?limit=40", headers=follower.auth))

    def profile(reader: User) -> dict[str, bool]:
        return flags(http.get(f"/api/v1/accounts/{target.id}/statuses?limit=40", headers=reader.auth))

    eventually(lambda: home().get(plain) is False and home().get(marked) is True)

    # Bad input and who may: nothing changes.
    for account_id, body, status in ((admin.id, {"type": "sensitive"}, 403), (moderator.id, {"type": "sensitive"}, 403),
                                     ("123", {"type": "sensitive"}, 404), (target.id, {"type": "sensitise"}, 422)):
        answer = http.post(f"/api/v1/admin/accounts/{account_id}/action", headers=auth, json=body)
        assert (answer.status_code, "error" in answer.json()) == (status, True), (account_id, body, answer.text)
    refused = http.post(f"/api/v1/admin/accounts/{target.id}/action", headers=target.auth, json={"type": "sensitive"})
    assert refused.status_code == 403, refused.text
    assert http.get(f"/api/v1/admin/accounts/{target.id}", headers=auth).json()["sensitized"] is False
    assert sensitive(http, plain, bystander) is False

    done = http.post(f"/api/v1/admin/accounts/{target.id}/action", headers=auth,
                     json={"type": "sensitive", "report_id": filed["id"], "text": "Mark your media, please."})
    assert (done.status_code, done.json()) == (200, {})
    shown = http.get(f"/api/v1/admin/accounts/{target.id}", headers=auth).json()
    assert (shown["sensitized"], shown["silenced"], shown["suspended"]) == (True, False, False)
    assert shown["account"]["sensitized"] is True and "limited" not in shown["account"]
    assert http.get(f"/api/v1/admin/reports/{filed['id']}", headers=auth).json()["action_taken"] is True
    listed = http.get("/api/v1/admin/accounts", headers=auth,
                      params={"sensitized": "true", "username": target.username}).json()
    assert [a["id"] for a in listed] == [target.id]
    card = http.get(f"/api/v1/accounts/{target.id}", headers=bystander.auth).json()
    assert card["sensitized"] is True and card["username"] == target.username

    # Every reader but the author reads both sensitive, the one posted before the mark too; the author reads its own.
    eventually(lambda: home()[plain] and home()[marked])
    assert (profile(bystander)[plain], profile(bystander)[marked]) == (True, True)
    assert sensitive(http, plain, bystander) and sensitive(http, plain, None)
    assert (profile(target)[plain], profile(target)[marked]) == (False, True)
    assert sensitive(http, plain, target) is False
    # A reblog of it by another account: the reblogged status is the sensitized account's.
    reblog = http.get(f"/api/v1/statuses/{boost_id}", headers=follower.auth).json()
    assert (reblog["sensitive"], reblog["reblog"]["sensitive"]) == (False, True)
    # Its new statuses too, in the reads and in the follower's stream; a notification's status as well.
    with httpx.Client(base_url=gateway_url, timeout=30) as client, \
            client.stream("GET", "/api/v1/streaming/user", headers=follower.auth) as user_stream:
        lines = user_stream.iter_lines()
        warm_until_seen(gateway_url, target, lines, text=f"warm {uuid.uuid4().hex[:6]}")
        fresh = post(http, target, f"posted after the mark @{bystander.username}")
        (streamed,) = read_events(lines, 1)
    event: dict[str, Any] = json.loads(streamed["data"])
    assert (streamed["event"], event["id"], event["sensitive"]) == ("update", fresh, True)
    eventually(lambda: home().get(fresh) is True)

    def mentioned() -> dict[str, bool]:
        answer = http.get("/api/v1/notifications?types[]=mention", headers=bystander.auth)
        assert answer.status_code == 200, answer.text
        return {n["status"]["id"]: n["status"]["sensitive"] for n in answer.json()}

    assert eventually(lambda: mentioned().get(fresh)) is True
    # The account is told, as of every action.
    assert eventually(lambda: [w["moderation_warning"]["action"] for w in warnings(http, target)]) == ["sensitive"]

    # Undone: each status its own flag again, at once and for every reader.
    back = http.post(f"/api/v1/admin/accounts/{target.id}/unsensitive", headers=auth)
    assert (back.status_code, back.json()["sensitized"], "sensitized" in back.json()["account"]) == (200, False, False)
    assert (home()[plain], home()[marked], home()[fresh]) == (False, True, False)
    assert sensitive(http, plain, None) is False
    assert "sensitized" not in http.get(f"/api/v1/accounts/{target.id}", headers=bystander.auth).json()
    assert http.get("/api/v1/admin/accounts", headers=auth,
                    params={"sensitized": "true", "username": target.username}).json() == []
    # Undone again: nothing to undo, nothing changes.
    again = http.post(f"/api/v1/admin/accounts/{target.id}/unsensitive", headers=auth)
    assert (again.status_code, again.json()["sensitized"]) == (200, False)

    logged = http.get("/api/v1/admin/audit_logs", headers=auth,
                      params={"target_account_id": target.id, "account_id": moderator.id}).json()
    assert [entry["action_type"] for entry in logged] == [
        "unsensitive_account", "unsensitive_account", "resolve_report", "sensitive_account"], logged


def test_mastodon_py_sensitizes(gateway_url: str, http: httpx.Client, admin_app: dict[str, Any],  # noqa: F811
                                make_user: Callable[..., User],
                                staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    moderator, _ = staff("spy_m", "Moderator")
    target, reader = make_user("spy_t"), make_user("spy_r")
    status_id = post(http, target, "a picture, say")
    client = signed_in_client(gateway_url, admin_app, moderator)
    client.admin_account_moderate(target.id, action="sensitive", text="Mark your media, please.")
    assert client.admin_account(target.id).sensitized is True
    assert sensitive(http, status_id, reader) is True
    undone = client.admin_account_unsensitive(target.id)
    assert undone.sensitized is False
    assert sensitive(http, status_id, reader) is False
    told = eventually(lambda: warnings(http, target))
    assert [(w["moderation_warning"]["action"], w["moderation_warning"]["text"]) for w in told] == [
        ("sensitive", "Mark your media, please.")]

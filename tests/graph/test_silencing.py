"""Limiting (silencing) against the running system (Mastodon's admin action ``silence``, services/graph/admin.py): a
limited account's profile shows ``limited: true``; its statuses leave the public, hashtag and link timelines and the
public streams, and stay in its followers' home timelines and streams; its notifications to an account that does
not follow it are held back by that account's policy (``for_limited_accounts``, filtered by default), and reach its
followers; the directory leaves it out. ``unsilence`` gives all of it back."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import httpx

from tests.conftest import User, eventually
from tests.gateway.test_streaming import read_events, warm_until_seen
from tests.graph.test_admin import admin_app, staff  # noqa: F401  (fixtures)
from tests.timeline.test_visibility import post


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [str(item["id"]) for item in answer.json()]


def test_a_limited_account_leaves_the_public_reads_until_unsilenced(
        gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
        staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    moderator, auth = staff("sil_m", "Moderator")
    admin, _ = staff("sil_a", "Admin")
    target, follower, stranger, bystander = (make_user(p) for p in ("sil_t", "sil_f", "sil_s", "sil_b"))
    assert http.post(f"/api/v1/accounts/{target.id}/follow", headers=follower.auth).status_code == 200
    assert http.post(f"/api/v1/accounts/{target.id}/follow", headers=stranger.auth).status_code == 200
    filed = http.post("/api/v1/reports", headers=bystander.auth, json={"account_id": target.id}).json()
    tag = f"sil{uuid.uuid4().hex[:8]}"
    before = post(http, target, f"posted before #{tag}")

    def public() -> list[str]:
        return ids(http.get("/api/v1/timelines/public?local=true&limit=40", headers=bystander.auth))

    def hashtag() -> list[str]:
        return ids(http.get(f"/api/v1/timelines/tag/{tag}", headers=bystander.auth))

    def home() -> list[str]:
        return ids(http.get("/api/v1/timelines/home?limit=40", headers=follower.auth))

    def directory() -> list[str]:
        return ids(http.get("/api/v1/directory?order=new&local=true&limit=80", headers=bystander.auth))

    eventually(lambda: before in public() and before in hashtag() and before in home() and target.id in directory())

    # Who may: a moderator does not outrank an admin; bad types change nothing.
    for account_id, status in ((admin.id, 403), (moderator.id, 403), ("123", 404)):
        answer = http.post(f"/api/v1/admin/accounts/{account_id}/action", headers=auth, json={"type": "silence"})
        assert (answer.status_code, "error" in answer.json()) == (status, True), (account_id, answer.text)
    assert http.get(f"/api/v1/admin/accounts/{target.id}", headers=auth).json()["silenced"] is False

    done = http.post(f"/api/v1/admin/accounts/{target.id}/action", headers=auth, json={"type": "silence"})
    assert (done.status_code, done.json()) == (200, {})
    shown = http.get(f"/api/v1/admin/accounts/{target.id}", headers=auth).json()
    assert (shown["silenced"], shown["suspended"], shown["account"]["limited"]) == (True, False, True)
    assert http.get(f"/api/v1/admin/reports/{filed['id']}", headers=auth).json()["action_taken"] is True
    listed = ids(http.get("/api/v2/admin/accounts", headers=auth, params={"status": "silenced",
                                                                        "username": target.username}))
    assert listed == [target.id]
    assert ids(http.get("/api/v1/admin/accounts", headers=auth, params={"silenced": "true",
                                                                      "username": target.username})) == [target.id]
    card = http.get(f"/api/v1/accounts/{target.id}", headers=bystander.auth).json()
    assert card["limited"] is True and "suspended" not in card and card["username"] == target.username
    # Its login is its own: a limited account posts as before.
    assert http.get("/api/v1/timelines/home", headers=target.auth).status_code == 200

    # Out of the public reads, old statuses and new; its followers still read them.
    after = post(http, target, f"posted while limited #{tag}")
    eventually(lambda: after in home())
    assert before not in public() and after not in public()
    assert hashtag() == []
    assert before in home()
    assert http.get(f"/api/v1/statuses/{after}", headers=bystander.auth).status_code == 200
    assert ids(http.get(f"/api/v1/accounts/{target.id}/statuses", headers=bystander.auth))[:2] == [after, before]
    assert target.id not in directory()

    # Streams: not on the public stream, on a follower's user stream.
    with httpx.Client(base_url=gateway_url, timeout=30) as client, \
            client.stream("GET", "/api/v1/streaming/public", headers=bystander.auth) as public_stream, \
            client.stream("GET", "/api/v1/streaming/user", headers=follower.auth) as user_stream:
        public_lines, user_lines = public_stream.iter_lines(), user_stream.iter_lines()
        warm_until_seen(gateway_url, bystander, public_lines, text=f"warm {uuid.uuid4().hex[:6]}")
        warm_until_seen(gateway_url, target, user_lines, text=f"warm {uuid.uuid4().hex[:6]}")
        limited = post(http, target, "not for the public stream")
        marker = post(http, bystander, "after the limited one")
        (first,) = read_events(public_lines, 1)
        assert json.loads(first["data"])["id"] == marker, first
        (followed,) = read_events(user_lines, 1)
        assert json.loads(followed["data"])["id"] == limited, followed

    # Notifications: held back from one that does not follow it (its policy's default), given to one that does.
    assert http.post(f"/api/v1/accounts/{follower.id}/follow", headers=target.auth).status_code == 200
    to_stranger = post(http, target, f"@{bystander.username} @{follower.username} hello")

    def mentioned(reader: User) -> list[str]:
        answer = http.get("/api/v1/notifications?types[]=mention", headers=reader.auth)
        assert answer.status_code == 200, answer.text
        return [n["status"]["id"] for n in answer.json()]

    def held() -> list[str]:
        return [r["account"]["id"] for r in http.get("/api/v1/notifications/requests",
                                                     headers=bystander.auth).json()]

    eventually(lambda: to_stranger in mentioned(follower) and target.id in held())
    assert to_stranger not in mentioned(bystander)

    # Lifted (by the moderator, who outranks the account): the public reads show it all again.
    back = http.post(f"/api/v1/admin/accounts/{target.id}/unsilence", headers=auth)
    assert (back.status_code, back.json()["silenced"], "limited" in back.json()["account"]) == (200, False, False)
    eventually(lambda: {before, after} <= set(public()) and {before, after} <= set(hashtag()))
    assert "limited" not in http.get(f"/api/v1/accounts/{target.id}", headers=bystander.auth).json()
    again = post(http, target, f"@{bystander.username} after the limit")
    eventually(lambda: again in mentioned(bystander))

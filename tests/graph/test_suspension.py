"""Suspension against the running system (Mastodon's admin action ``suspend``, services/graph/admin.py): a
suspended account cannot sign in; its profile shows blank with ``suspended: true``; its statuses leave every read
(home, public, hashtag, profile, thread, one by id, others' reblogs of them); notifications from it and its place in
others' lists, the directory and search go; no one can follow it; its open reports are resolved, and their statuses
still show to the staff. ``unsuspend`` gives all of it back, as nothing was deleted."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
from mastodon import Mastodon

from tests.conftest import User, eventually
from tests.graph.test_admin import ADMIN_SCOPES, DISABLED, NOT_ALLOWED, admin_app, staff  # noqa: F401  (fixtures)
from tests.push.receiver import Keys, decrypted, mention, running_receiver, subscribe
from tests.timeline.test_visibility import post


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [str(item["id"]) for item in answer.json()]


def notices_from(http: httpx.Client, reader: User, sender: User) -> list[str]:
    answer = http.get("/api/v1/notifications?limit=40", headers=reader.auth)
    assert answer.status_code == 200, answer.text
    return sorted(n["type"] for n in answer.json() if n["account"]["id"] == sender.id)


def test_a_suspended_account_leaves_every_read_until_unsuspended(
        http: httpx.Client, make_user: Callable[..., User],
        staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    moderator, auth = staff("sus_m", "Moderator")
    admin, admin_auth = staff("sus_a", "Admin")
    target, follower, other = make_user("sus_t"), make_user("sus_f"), make_user("sus_o")
    profile = http.patch("/api/v1/accounts/update_credentials", headers=target.auth,
                         data={"display_name": "Spam King", "note": "buy now", "fields_attributes[0][name]": "shop",
                               "fields_attributes[0][value]": "cheap"})
    assert profile.status_code == 200, profile.text
    assert http.post(f"/api/v1/accounts/{target.id}/follow", headers=follower.auth).status_code == 200
    assert http.post(f"/api/v1/accounts/{follower.id}/follow", headers=target.auth).status_code == 200
    tag = f"sus{uuid.uuid4().hex[:8]}"
    own = post(http, target, f"spam #{tag}")
    thread = post(http, follower, "a thread")
    reply = post(http, target, f"@{follower.username} spam in a thread", in_reply_to_id=thread)
    assert http.post(f"/api/v1/statuses/{thread}/favourite", headers=target.auth).status_code == 200
    boost = http.post(f"/api/v1/statuses/{own}/reblog", headers=other.auth)
    assert boost.status_code == 200, boost.text
    reports = [http.post("/api/v1/reports", headers=reporter.auth,
                         json={"account_id": target.id, "status_ids": [own]}).json() for reporter in (other, follower)]

    def home() -> list[str]:
        return ids(http.get("/api/v1/timelines/home?limit=40", headers=follower.auth))

    def public() -> list[str]:
        return ids(http.get("/api/v1/timelines/public?local=true&limit=40", headers=other.auth))

    def hashtag() -> list[str]:
        return ids(http.get(f"/api/v1/timelines/tag/{tag}", headers=other.auth))

    def other_home() -> list[str]:
        return [s for s in ids(http.get("/api/v1/timelines/home?limit=40", headers=other.auth))]

    def descendants() -> list[str]:
        answer = http.get(f"/api/v1/statuses/{thread}/context", headers=follower.auth)
        assert answer.status_code == 200, answer.text
        return [s["id"] for s in answer.json()["descendants"]]

    def followers_of_follower() -> list[str]:
        return ids(http.get(f"/api/v1/accounts/{follower.id}/followers", headers=other.auth))

    def searched() -> list[str]:
        return ids(http.get(f"/api/v1/accounts/search?q={target.username}", headers=other.auth))

    def everything_shows() -> bool:
        assert {own, reply} <= set(home()) and own in public() and own in hashtag()
        assert boost.json()["id"] in other_home() and reply in descendants()
        assert notices_from(http, follower, target) == ["favourite", "follow", "mention"]
        assert target.id in followers_of_follower() and searched() == [target.id]
        return True

    eventually(everything_shows)

    # Bad input and who may: nothing changes.
    for account_id, body, headers, status in [
        (target.id, {"type": "ban"}, auth, 422),
        (admin.id, {"type": "suspend"}, auth, 403),  # a moderator does not outrank an admin
        (moderator.id, {"type": "suspend"}, auth, 403),  # nor anyone their own account
        ("123", {"type": "suspend"}, auth, 404), (target.id, {"type": "suspend"}, target.auth, 403),
    ]:
        answer = http.post(f"/api/v1/admin/accounts/{account_id}/action", headers=headers, json=body)
        assert (answer.status_code, "error" in answer.json()) == (status, True), (account_id, body, answer.text)
    refused = http.post(f"/api/v1/admin/accounts/{target.id}/unsuspend", headers=auth)
    assert (refused.status_code, refused.json()) == (403, NOT_ALLOWED)  # not suspended
    assert http.get(f"/api/v1/admin/accounts/{target.id}", headers=auth).json()["suspended"] is False
    assert http.get("/api/v1/timelines/home", headers=target.auth).status_code == 200

    # Suspended, naming the first report: both reports are resolved by the moderator.
    done = http.post(f"/api/v1/admin/accounts/{target.id}/action", headers=auth,
                     data={"type": "suspend", "report_id": reports[0]["id"], "text": "spam"})
    assert (done.status_code, done.json()) == (200, {})
    refused = http.get("/api/v1/timelines/home", headers=target.auth)
    assert (refused.status_code, refused.json()) == (403, DISABLED)
    signing_in = http.post("/api/v1/statuses", headers=target.auth, json={"status": "more spam"})
    assert (signing_in.status_code, signing_in.json()) == (403, DISABLED)
    for filed in reports:
        report = http.get(f"/api/v1/admin/reports/{filed['id']}", headers=auth).json()
        assert report["action_taken"] and report["action_taken_by_account"]["id"] == moderator.id
        assert report["target_account"]["suspended"] is True
        # The staff still see what was reported.
        assert [s["id"] for s in report["statuses"]] == [own]
    shown = http.get(f"/api/v1/admin/accounts/{target.id}", headers=auth).json()
    assert (shown["suspended"], shown["disabled"], shown["account"]["suspended"]) == (True, False, True)
    listed = {
        "v2 suspended": ids(http.get("/api/v2/admin/accounts", headers=auth,
                                     params={"status": "suspended", "username": "sus_t"})),
        "v1 suspended": ids(http.get("/api/v1/admin/accounts", headers=auth,
                                     params={"suspended": "true", "username": "sus_t"})),
        "v2 active": ids(http.get("/api/v2/admin/accounts", headers=auth,
                                  params={"status": "active", "username": target.username})),
    }
    assert target.id in listed["v2 suspended"] and target.id in listed["v1 suspended"], listed
    assert listed["v2 active"] == [], listed

    # The profile is blank, its statuses are gone from every read, its notifications and its place in lists too.
    card = http.get(f"/api/v1/accounts/{target.id}", headers=other.auth).json()
    assert (card["suspended"], card["display_name"], card["note"], card["fields"], card["locked"]) == (
        True, "", "", [], False)
    assert card["avatar"].endswith("/avatars/original/missing.png")
    assert http.get(f"/api/v1/accounts/lookup?acct={target.username}").json()["suspended"] is True
    assert own not in home() and reply not in home()
    assert own not in public() and own not in hashtag()
    assert boost.json()["id"] not in other_home()
    assert reply not in descendants()
    for status_id in (own, reply, boost.json()["id"]):
        gone = http.get(f"/api/v1/statuses/{status_id}", headers=follower.auth)
        assert (gone.status_code, gone.json()) == (404, {"error": "Record not found"}), status_id
    assert ids(http.get(f"/api/v1/accounts/{target.id}/statuses", headers=follower.auth)) == []
    assert ids(http.get(f"/api/v1/statuses?id[]={own}&id[]={thread}", headers=follower.auth)) == [thread]
    assert notices_from(http, follower, target) == []
    assert target.id not in followers_of_follower() and searched() == []
    assert ids(http.get(f"/api/v1/accounts/{target.id}/following", headers=other.auth)) == []
    assert ids(http.get(f"/api/v1/statuses/{thread}/favourited_by", headers=other.auth)) == []
    follow = http.post(f"/api/v1/accounts/{target.id}/follow", headers=other.auth)
    assert (follow.status_code, follow.json()) == (404, {"error": "Record not found"})
    reblog = http.post(f"/api/v1/statuses/{own}/reblog", headers=follower.auth)
    assert reblog.status_code == 404, reblog.text
    again = http.post(f"/api/v1/admin/accounts/{target.id}/action", headers=auth, json={"type": "suspend"})
    assert (again.status_code, again.json()) == (200, {})  # already suspended: nothing more to do

    # Unsuspended (by an admin): everything comes back, the follows too.
    back = http.post(f"/api/v1/admin/accounts/{target.id}/unsuspend", headers=admin_auth)
    assert (back.status_code, back.json()["suspended"], back.json()["account"].get("suspended")) == (
        200, False, None)
    assert http.get("/api/v1/timelines/home", headers=target.auth).status_code == 200
    card = http.get(f"/api/v1/accounts/{target.id}", headers=other.auth).json()
    assert (card["display_name"], "suspended" in card, card["fields"][0]["name"]) == ("Spam King", False, "shop")
    eventually(everything_shows)
    for status_id in (own, reply):
        assert http.get(f"/api/v1/statuses/{status_id}", headers=follower.auth).status_code == 200
    refused = http.post(f"/api/v1/admin/accounts/{target.id}/unsuspend", headers=auth)
    assert (refused.status_code, refused.json()) == (403, NOT_ALLOWED)  # no longer suspended


def test_mastodon_py_suspends_and_unsuspends(gateway_url: str, http: httpx.Client, admin_app: dict[str, Any],  # noqa: F811
                                            staff: Callable[[str, str], tuple[User, dict[str, str]]],  # noqa: F811
                                            make_user: Callable[..., User]) -> None:
    moderator, _ = staff("sup_m", "Moderator")
    target = make_user("sup_t")
    status = post(http, target, "seen by Mastodon.py")
    client = Mastodon(client_id=admin_app["client_id"], client_secret=admin_app["client_secret"],
                      api_base_url=gateway_url, version_check_mode="none")
    client.log_in(moderator.email, moderator.password, scopes=ADMIN_SCOPES.split())
    client.admin_account_moderate(target.id, "suspend")
    assert client.admin_account(target.id).suspended is True
    assert client.account(target.id).suspended is True
    assert client.account_statuses(target.id) == []
    assert status not in [str(s.id) for s in client.timeline_local(limit=40)]
    assert [str(a.id) for a in client.admin_accounts_v2(status="suspended", username=target.username)] == [target.id]
    assert client.admin_account_unsuspend(target.id).suspended is False
    assert [str(s.id) for s in client.account_statuses(target.id)] == [status]


def test_a_suspended_account_is_told_of_nothing(http: httpx.Client, make_user: Callable[..., User],
                                                staff: Callable[[str, str], tuple[User, dict[str, str]]],  # noqa: F811
                                                ) -> None:
    """Mastodon drops every notification to a suspended account: none is recorded, streamed or pushed (its phone
    stays quiet though its subscription is kept), the warning of its suspension neither, and none shows once it is
    unsuspended. What happens after that notifies it again."""
    _, auth = staff("sut_m", "Moderator")
    target, friend = make_user("sut_t"), make_user("sut_f")
    followed = http.post(f"/api/v1/accounts/{friend.id}/follow", headers=target.auth, data={"notify": "true"})
    assert followed.status_code == 200 and followed.json()["notifying"] is True, followed.text
    with running_receiver() as receiver:
        keys = Keys.new()
        endpoint = receiver.endpoint()
        subscribe(http, target, endpoint, keys, alerts=("mention", "status"))

        suspended = http.post(f"/api/v1/admin/accounts/{target.id}/action", headers=auth,
                              json={"type": "suspend", "text": "spam"})
        assert suspended.status_code == 200, suspended.text
        during = [mention(http, friend, target, "are you there?")["id"], post(http, friend, "a status to tell of")]
        # Both went through the fanout (the author's own home holds them), the notices too: none was kept.
        eventually(lambda: set(during) <= set(ids(http.get("/api/v1/timelines/home", headers=friend.auth))))
        receiver.assert_quiet(endpoint, seconds=2.0)

        back = http.post(f"/api/v1/admin/accounts/{target.id}/unsuspend", headers=auth)
        assert back.status_code == 200, back.text
        after = mention(http, friend, target, "welcome back")["id"]
        # The first push since the subscription. Waited for longer than most: the push service's batches wait for
        # their slowest endpoint, and a development stack holds staff subscriptions of earlier runs' receivers, long
        # gone, that each sign-up is pushed to (and retried).
        told = post(http, friend, "told again")
        # The mention tells of a status too (its author is followed with ``notify``): two pushes of one batch, sent
        # side by side, in either order; then the status told of again. Nothing of the suspension's statuses.
        said = [decrypted(receiver.next_for(endpoint, timeout=90), keys) for _ in range(3)]
        assert sorted((s["notification_type"], s["title"], s["body"]) for s in said) == [
            ("mention", f"{friend.username} mentioned you", f"@{target.username} welcome back"),
            ("status", f"{friend.username} just posted", f"@{target.username} welcome back"),
            ("status", f"{friend.username} just posted", "told again")], said
        receiver.assert_quiet(endpoint, seconds=2.0)

    def listed() -> list[tuple[str, str | None]]:
        answer = http.get("/api/v1/notifications?limit=40", headers=target.auth)
        assert answer.status_code == 200, answer.text
        return [(n["type"], (n.get("status") or {}).get("id")) for n in answer.json()]

    # The mention tells of a status too, as its author is followed with ``notify``.
    eventually(lambda: listed() == [("status", told), ("status", after), ("mention", after)])
    # Nor does any show in the grouped notifications, nor as a notification request.
    grouped = http.get("/api/v2/notifications", headers=target.auth).json()
    assert sorted(g["type"] for g in grouped["notification_groups"]) == ["mention", "status", "status"]
    requests = http.get("/api/v1/notifications/requests", headers=target.auth)
    assert (requests.status_code, requests.json()) == (200, [])

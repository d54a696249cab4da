"""Locked accounts and follow requests (kicau/follow_requests.py) on the running system: a follow of a locked
account asks it, and the account authorizes or rejects; the requester withdraws by unfollowing; a block ends a
request; unlocking authorizes everyone waiting. Through the API and Mastodon.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from mastodon import Mastodon

from tests.conftest import User, eventually
from tests.timeline.test_home_invariant import home_ids


def lock(http: httpx.Client, user: User, locked: bool = True) -> None:
    answer = http.patch("/api/v1/accounts/update_credentials", headers=user.auth,
                        data={"locked": "true" if locked else "false"})
    assert answer.status_code == 200 and answer.json()["locked"] is locked, answer.text


def act(http: httpx.Client, user: User, path: str, expected: int = 200) -> dict[str, Any]:
    answer = http.post(path, headers=user.auth)
    assert answer.status_code == expected, (path, answer.text)
    found: dict[str, Any] = answer.json()
    return found


def relationship(http: httpx.Client, viewer: User, target: User) -> dict[str, Any]:
    (found,) = http.get("/api/v1/accounts/relationships", params={"id[]": target.id}, headers=viewer.auth).json()
    assert isinstance(found, dict)
    return found


def requesters(http: httpx.Client, user: User, **params: str) -> list[str]:
    answer = http.get("/api/v1/follow_requests", params=params, headers=user.auth)
    assert answer.status_code == 200, answer.text
    return [account["id"] for account in answer.json()]


def notified(http: httpx.Client, user: User, kind: str) -> list[str]:
    answer = http.get("/api/v1/notifications", params={"types[]": kind}, headers=user.auth)
    assert answer.status_code == 200, answer.text
    return [n["account"]["id"] for n in answer.json()]


def post(http: httpx.Client, user: User, text: str, visibility: str = "public") -> str:
    answer = http.post("/api/v1/statuses", headers=user.auth, json={"status": text, "visibility": visibility})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def test_a_locked_account_is_asked_and_decides(http: httpx.Client, make_user: Callable[..., User]) -> None:
    owner, asker, refused, withdrawn, witness = (make_user(p) for p in ("frq_o", "frq_a", "frq_r", "frq_w", "frq_x"))
    lock(http, owner)
    assert http.get(f"/api/v1/accounts/{owner.id}").json()["locked"] is True
    private = post(http, owner, "for followers only", "private")

    # Asking: no follow yet, the request on both sides, the owner notified once however often it is asked.
    asked = act(http, asker, f"/api/v1/accounts/{owner.id}/follow")
    assert (asked["following"], asked["requested"]) == (False, True)
    assert relationship(http, owner, asker)["requested_by"] is True
    assert relationship(http, owner, asker)["followed_by"] is False
    eventually(lambda: notified(http, owner, "follow_request") == [asker.id] or None)
    (notice,) = http.get("/api/v1/notifications", params={"types[]": "follow_request"}, headers=owner.auth).json()
    assert http.post(f"/api/v1/notifications/{notice['id']}/dismiss", headers=owner.auth).status_code == 200
    # Asked again, with other options (the follow will be made with them): no second notification. The asker's
    # events are ordered: once its later follow of the witness notified the witness, the repeat has been applied.
    again = http.post(f"/api/v1/accounts/{owner.id}/follow", headers=asker.auth, data={"reblogs": "false"})
    assert again.status_code == 200 and again.json()["requested"] is True, again.text
    act(http, asker, f"/api/v1/accounts/{witness.id}/follow")
    eventually(lambda: notified(http, witness, "follow") == [asker.id] or None)
    assert notified(http, owner, "follow_request") == []
    for user in (refused, withdrawn):
        act(http, user, f"/api/v1/accounts/{owner.id}/follow")
    assert requesters(http, owner) == [withdrawn.id, refused.id, asker.id]  # newest first
    page = http.get("/api/v1/follow_requests", params={"limit": "2"}, headers=owner.auth)
    assert [a["id"] for a in page.json()] == [withdrawn.id, refused.id] and 'rel="next"' in page.headers["link"]
    assert home_ids(http, asker) == []
    assert http.get(f"/api/v1/accounts/{owner.id}").json()["followers_count"] == 0

    # Withdrawn by unfollowing; rejected by the owner: gone from the list and from the notifications.
    withdrew = act(http, withdrawn, f"/api/v1/accounts/{owner.id}/unfollow")
    assert (withdrew["following"], withdrew["requested"]) == (False, False)
    eventually(lambda: notified(http, owner, "follow_request") == [refused.id] or None)
    rejected = act(http, owner, f"/api/v1/follow_requests/{refused.id}/reject")
    assert (rejected["id"], rejected["requested_by"], rejected["followed_by"]) == (refused.id, False, False)
    assert relationship(http, refused, owner)["requested"] is False
    act(http, owner, f"/api/v1/follow_requests/{refused.id}/reject", 404)
    assert requesters(http, owner) == [asker.id]
    eventually(lambda: notified(http, owner, "follow_request") == [] or None)

    # Authorized: the follow, with the options last asked and the owner's statuses (followers-only too) in the
    # follower's home timeline; no "follow" notification, and the requests' notifications gone.
    authorized = act(http, owner, f"/api/v1/follow_requests/{asker.id}/authorize")
    assert (authorized["followed_by"], authorized["requested_by"]) == (True, False)
    now = relationship(http, asker, owner)
    assert (now["following"], now["requested"], now["showing_reblogs"]) == (True, False, False)
    eventually(lambda: private in home_ids(http, asker) or None)
    eventually(lambda: notified(http, owner, "follow_request") == [] or None)
    assert notified(http, owner, "follow") == []
    assert requesters(http, owner) == []
    assert http.get(f"/api/v1/accounts/{owner.id}").json()["followers_count"] == 1
    act(http, owner, f"/api/v1/follow_requests/{asker.id}/authorize", 404)
    # Following again changes the follow's options, not a request.
    followed = act(http, asker, f"/api/v1/accounts/{owner.id}/follow")
    assert (followed["following"], followed["requested"]) == (True, False)
    for path in (f"/api/v1/follow_requests/{withdrawn.id}/authorize", "/api/v1/follow_requests/nope/reject"):
        refusal = http.post(path, headers=owner.auth)
        assert refusal.status_code == 404 and set(refusal.json()) == {"error"}, refusal.text
    assert http.get("/api/v1/follow_requests").status_code == 401


def test_unlocking_lets_everyone_waiting_follow_and_a_block_ends_a_request(
        http: httpx.Client, make_user: Callable[..., User]) -> None:
    owner, first, second, blocked, later = (make_user(p) for p in ("fru_o", "fru_1", "fru_2", "fru_b", "fru_l"))
    lock(http, owner)
    for user in (first, second, blocked):
        act(http, user, f"/api/v1/accounts/{owner.id}/follow")
    act(http, owner, f"/api/v1/accounts/{blocked.id}/block")
    assert relationship(http, blocked, owner)["requested"] is False
    assert requesters(http, owner) == [second.id, first.id]
    # The owner's own request to a locked account ends with its block too.
    lock(http, blocked)
    act(http, owner, f"/api/v1/accounts/{blocked.id}/unblock")
    assert act(http, owner, f"/api/v1/accounts/{blocked.id}/follow")["requested"] is True
    act(http, blocked, f"/api/v1/accounts/{owner.id}/block")
    assert relationship(http, owner, blocked)["requested"] is False and requesters(http, blocked) == []

    lock(http, owner, False)
    for user in (first, second):
        assert relationship(http, user, owner)["following"] is True
    assert requesters(http, owner) == []
    assert act(http, later, f"/api/v1/accounts/{owner.id}/follow")["following"] is True
    assert http.get(f"/api/v1/accounts/{owner.id}").json()["followers_count"] == 3


def test_mastodon_py_asks_and_authorizes(gateway_url: str, make_user: Callable[..., User]) -> None:
    owner, asker = make_user("frm_o"), make_user("frm_a")
    as_owner = Mastodon(access_token=owner.token, api_base_url=gateway_url)
    as_asker = Mastodon(access_token=asker.token, api_base_url=gateway_url)
    assert as_owner.account_update_credentials(locked=True)["locked"] is True
    assert as_asker.account_follow(owner.id)["requested"] is True
    assert [a["id"] for a in as_owner.follow_requests()] == [asker.id]
    assert as_owner.follow_request_authorize(asker.id)["followed_by"] is True
    assert as_asker.account_relationships(owner.id)[0]["following"] is True
    as_asker.account_unfollow(owner.id)
    as_asker.account_follow(owner.id)
    assert as_owner.follow_request_reject(asker.id)["requested_by"] is False
    assert as_owner.follow_requests() == []


def test_an_account_removes_a_follower(http: httpx.Client, make_user: Callable[..., User]) -> None:
    """``remove_from_followers``: the follower's follow ends as if it had unfollowed, statuses and all."""
    owner, fan = make_user("frf_o"), make_user("frf_f")
    act(http, fan, f"/api/v1/accounts/{owner.id}/follow")
    shown = post(http, owner, "seen by the fan until removed")
    eventually(lambda: shown in home_ids(http, fan) or None)
    removed = act(http, owner, f"/api/v1/accounts/{fan.id}/remove_from_followers")
    assert (removed["id"], removed["followed_by"]) == (fan.id, False)
    assert relationship(http, fan, owner)["following"] is False
    assert http.get(f"/api/v1/accounts/{owner.id}").json()["followers_count"] == 0
    eventually(lambda: shown not in home_ids(http, fan) or None)
    act(http, owner, f"/api/v1/accounts/{fan.id}/remove_from_followers")  # again: nothing to end, still 200
    assert http.post("/api/v1/accounts/nope/remove_from_followers", headers=owner.auth).status_code == 404

"""Familiar followers against the running stack (``GET /api/v1/accounts/familiar_followers``): for each account
named, its followers the user follows; Mastodon.py's ``account_familiar_followers`` reads them; what is not an
account's id is skipped; a token without ``read:follows`` is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from mastodon import Mastodon

from tests.conftest import User, narrow_token


def follow(http: httpx.Client, follower: User, *followees: User) -> None:
    for followee in followees:
        assert http.post(f"/api/v1/accounts/{followee.id}/follow", headers=follower.auth).status_code == 200


def test_the_followers_a_user_also_follows(gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
                                           app_credentials: dict[str, Any]) -> None:
    viewer, target, lonely = make_user("ff_v"), make_user("ff_t"), make_user("ff_l")
    a, b, c, d = (make_user("ff_f") for _ in range(4))
    follow(http, viewer, a, b, c, target)
    for fan in (a, c, d):
        follow(http, fan, target)
    answer = http.get(f"/api/v1/accounts/familiar_followers?id[]={target.id}&id[]={lonely.id}&id[]=nope",
                      headers=viewer.auth)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert [entry["id"] for entry in found] == [target.id, lonely.id]
    assert {account["id"] for account in found[0]["accounts"]} == {a.id, c.id}  # not d: the viewer does not follow it
    assert found[0]["accounts"][0]["username"] in (a.username, c.username)
    assert found[1]["accounts"] == []
    # The viewer follows the target, which follows nobody back: the target is no follower of itself.
    assert http.get(f"/api/v1/accounts/familiar_followers?id={viewer.id}", headers=target.auth).json() == [
        {"id": viewer.id, "accounts": []}]

    client = Mastodon(access_token=viewer.token, api_base_url=gateway_url, version_check_mode="none")
    (entry,) = client.account_familiar_followers(target.id)
    assert {str(account.id) for account in entry.accounts} == {a.id, c.id}

    refused = http.get(f"/api/v1/accounts/familiar_followers?id={target.id}")
    assert refused.status_code == 401 and set(refused.json()) == {"error"}, refused.text
    narrow = narrow_token(http, app_credentials, viewer, "read:statuses")
    refused = http.get(f"/api/v1/accounts/familiar_followers?id={target.id}", headers=narrow)
    assert refused.status_code == 403 and set(refused.json()) == {"error"}, refused.text
    assert http.get("/api/v1/accounts/familiar_followers", headers=viewer.auth).json() == []
    # A NUL anywhere in the parameters is refused, as in every body (the schema says so: schemathesis checks it).
    refused = http.get(f"/api/v1/accounts/familiar_followers?id[]={target.id}&id[]=a%00b", headers=viewer.auth)
    assert (refused.status_code, refused.json()) == (
        422, {"error": "Validation failed: id must not contain NUL characters"}), refused.text

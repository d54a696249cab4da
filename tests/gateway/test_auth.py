"""Authentication and authorization through the public API: tokens are opaque and revocable (the Redis cache
entry goes with them), scopes are enforced, an app token is not a user, the acting account is always the
token's (client-sent internal headers are ignored), streams are the token owner's, no token reaches a log,
and a login failure does not tell whether the account exists."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from kicau import keys, tokens
from stack.config import STACK_DIR
from tests.conftest import User
from tests.gateway.test_streaming import read_events

# Every bearer token this module handles; none may appear in any service log (checked last).
USED_TOKENS: list[str] = []
# What a client might send to impersonate someone: the headers the gateway itself sets on internal calls.
INTERNAL = ("X-Kicau-Account", "X-Kicau-Client", "X-Kicau-Scopes")


@pytest.fixture(scope="module")
def cache(stack_redis: redis.Redis) -> redis.Redis:
    return stack_redis


@pytest.fixture(scope="module")
def app(http: httpx.Client) -> dict[str, Any]:
    answer = http.post("/api/v1/apps", data={"client_name": "auth-tests", "scopes": "read write follow",
                                             "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.fixture
def user(make_user: Callable[..., User]) -> User:
    made = make_user("au")
    USED_TOKENS.append(made.token)
    return made


def login(http: httpx.Client, app: dict[str, Any], user: User, scope: str) -> str:
    answer = http.post("/oauth/token", data={
        "grant_type": "password", "client_id": app["client_id"], "client_secret": app["client_secret"],
        "username": user.email, "password": user.password, "scope": scope})
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == scope
    token = str(answer.json()["access_token"])
    USED_TOKENS.append(token)
    return token


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def assert_error(answer: httpx.Response, *statuses: int) -> None:
    assert answer.status_code in statuses, (answer.status_code, answer.text)
    assert isinstance(answer.json().get("error"), str), answer.text


def post(http: httpx.Client, user: User, text: str) -> str:
    answer = http.post("/api/v1/statuses", headers=user.auth, data={"status": text})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def test_tokens_are_opaque(user: User) -> None:
    # Random, not a structure carrying the account (nothing to forge or decode).
    assert len(user.token) >= 40 and user.id not in user.token and user.username not in user.token


def test_revoked_token_fails_at_once_and_leaves_the_cache(
    http: httpx.Client, app: dict[str, Any], user: User, cache: redis.Redis
) -> None:
    token = login(http, app, user, "read write")
    assert http.get("/api/v1/accounts/verify_credentials", headers=bearer(token)).status_code == 200
    cache_key = keys.token_cache(tokens.hash_token(token))
    assert cache.exists(cache_key), "a used token is cached in Redis"
    assert token.encode() not in (cache.get(cache_key) or b""), "the cache holds what the token grants, not it"
    # Another app cannot revoke it (RFC 7009 lets the issuing client only); it keeps working.
    other = http.post("/api/v1/apps", data={"client_name": "other", "scopes": "read"}).json()
    refused = http.post("/oauth/revoke", data={"client_id": other["client_id"],
                                               "client_secret": other["client_secret"], "token": token})
    assert_error(refused, 403)
    assert http.get("/api/v1/timelines/home", headers=bearer(token)).status_code == 200
    # Nor can anyone without the app's secret.
    assert_error(http.post("/oauth/revoke", data={"client_id": app["client_id"], "client_secret": "wrong",
                                                  "token": token}), 401)
    revoked = http.post("/oauth/revoke", data={"client_id": app["client_id"], "client_secret": app["client_secret"],
                                               "token": token})
    assert revoked.status_code == 200 and revoked.json() == {}
    assert not cache.exists(cache_key), "revocation deletes the Redis cache entry"
    # Immediately refused everywhere, including the stream; and revoking again is a quiet success.
    assert_error(http.get("/api/v1/accounts/verify_credentials", headers=bearer(token)), 401)
    assert_error(http.get("/api/v1/timelines/home", headers=bearer(token)), 401)
    assert_error(http.post("/api/v1/statuses", headers=bearer(token), data={"status": "after revoke"}), 401)
    assert_error(http.get("/api/v1/streaming/user", headers=bearer(token)), 401)
    assert not cache.exists(cache_key), "a refused token is not cached again"
    again = http.post("/oauth/revoke", data={"client_id": app["client_id"], "client_secret": app["client_secret"],
                                             "token": token})
    assert again.status_code == 200
    # The account's other tokens are untouched.
    assert http.get("/api/v1/accounts/verify_credentials", headers=user.auth).status_code == 200


def test_scopes_are_enforced(http: httpx.Client, app: dict[str, Any], user: User,
                             make_user: Callable[..., User]) -> None:
    target = make_user("au")
    read, write, follow = (login(http, app, user, s) for s in ("read", "write", "follow"))
    status = post(http, user, "scoped")

    # read: reads only.
    assert http.get("/api/v1/timelines/home", headers=bearer(read)).status_code == 200
    assert http.get("/api/v1/accounts/verify_credentials", headers=bearer(read)).status_code == 200
    assert_error(http.post("/api/v1/statuses", headers=bearer(read), data={"status": "nope"}), 403)
    assert_error(http.delete(f"/api/v1/statuses/{status}", headers=bearer(read)), 403)
    assert_error(http.post(f"/api/v1/accounts/{target.id}/follow", headers=bearer(read)), 403)
    assert_error(http.post(f"/api/v1/accounts/{target.id}/unfollow", headers=bearer(read)), 403)
    # write: writes, no reading the home timeline or the stream.
    assert_error(http.get("/api/v1/timelines/home", headers=bearer(write)), 403)
    assert_error(http.get("/api/v1/accounts/verify_credentials", headers=bearer(write)), 403)
    assert_error(http.get("/api/v1/streaming/user", headers=bearer(write)), 403)
    written = http.post("/api/v1/statuses", headers=bearer(write), data={"status": "written"})
    assert written.status_code == 200, written.text
    # follow: follows, nothing else.
    assert_error(http.post("/api/v1/statuses", headers=bearer(follow), data={"status": "nope"}), 403)
    assert_error(http.get("/api/v1/timelines/home", headers=bearer(follow)), 403)
    followed = http.post(f"/api/v1/accounts/{target.id}/follow", headers=bearer(follow))
    assert followed.status_code == 200 and followed.json()["following"] is True
    # A crafted scopes header does not widen a token.
    assert_error(http.post("/api/v1/statuses", headers=bearer(read, **{"X-Kicau-Scopes": "read write follow"}),
                           data={"status": "widened"}), 403)
    # Only the two statuses above exist.
    assert http.get(f"/api/v1/accounts/{user.id}").json()["statuses_count"] == 2


def test_granular_scopes_grant_what_mastodons_do(http: httpx.Client, app: dict[str, Any], user: User,
                                                 make_user: Callable[..., User]) -> None:
    """Mastodon's own scope for each route, not only its parent: a client asking ``read:statuses write:statuses``
    (as many do) reads its home timeline and posts; ``profile`` (Mastodon 4.3) reads the token's own account."""
    target = make_user("ag")
    statuses = login(http, app, user, "read:statuses write:statuses")
    assert http.get("/api/v1/timelines/home", headers=bearer(statuses)).status_code == 200
    written = http.post("/api/v1/statuses", headers=bearer(statuses), data={"status": "granular"})
    assert written.status_code == 200, written.text
    assert http.delete(f"/api/v1/statuses/{written.json()['id']}", headers=bearer(statuses)).status_code == 200
    assert_error(http.get("/api/v1/accounts/verify_credentials", headers=bearer(statuses)), 403)
    assert_error(http.get("/api/v1/accounts/relationships", params={"id[]": target.id},
                          headers=bearer(statuses)), 403)
    accounts = login(http, app, user, "read:accounts read:follows")
    assert http.get("/api/v1/accounts/verify_credentials", headers=bearer(accounts)).json()["id"] == user.id
    assert http.get("/api/v1/accounts/relationships", params={"id[]": target.id},
                    headers=bearer(accounts)).json()[0]["id"] == target.id
    assert_error(http.get("/api/v1/timelines/home", headers=bearer(accounts)), 403)
    assert_error(http.post("/api/v1/statuses", headers=bearer(accounts), data={"status": "nope"}), 403)
    with_profile = http.post("/api/v1/apps", data={"client_name": "profile", "scopes": "profile",
                                                   "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"}).json()
    profile = login(http, with_profile, user, "profile")
    assert http.get("/api/v1/accounts/verify_credentials", headers=bearer(profile)).json()["id"] == user.id
    assert_error(http.get("/api/v1/timelines/home", headers=bearer(profile)), 403)


def test_userinfo_says_who_a_profile_token_belongs_to(http: httpx.Client, user: User, gateway_url: str) -> None:
    """``/oauth/userinfo`` (Mastodon 4.4, OpenID Connect's UserInfo) for apps that only sign people in: scope
    ``profile`` alone, by GET or POST; no token, an app's token or one without ``profile`` are refused."""
    with_profile = http.post("/api/v1/apps", data={"client_name": "sign-in", "scopes": "profile read",
                                                   "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"}).json()
    profile = login(http, with_profile, user, "profile")
    me = http.get("/api/v1/accounts/verify_credentials", headers=bearer(profile)).json()
    expected = {"iss": f"{gateway_url.rstrip('/')}/", "sub": me["uri"], "name": me["display_name"],
                "preferred_username": user.username, "profile": me["url"], "picture": me["avatar"]}
    assert me["uri"].endswith(f"/users/{user.username}") and me["url"].endswith(f"/@{user.username}")
    for verb in ("GET", "POST"):
        answer = http.request(verb, "/oauth/userinfo", headers=bearer(profile))
        assert answer.status_code == 200, answer.text
        assert answer.json() == expected
    assert http.get(me["avatar"].removeprefix(gateway_url.rstrip("/"))).status_code == 200
    assert_error(http.get("/oauth/userinfo"), 401)
    assert_error(http.get("/oauth/userinfo", headers=bearer("not-a-token")), 401)
    # ``read`` does not carry ``profile`` (nor does ``read:accounts``), as on Mastodon.
    assert_error(http.get("/oauth/userinfo", headers=bearer(login(http, with_profile, user, "read"))), 403)
    app_token = http.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": with_profile["client_id"],
        "client_secret": with_profile["client_secret"], "scope": "profile"}).json()["access_token"]
    USED_TOKENS.append(app_token)
    assert_error(http.get("/oauth/userinfo", headers=bearer(app_token)), 422)  # as every user route


def test_scopes_beyond_the_app_are_refused(http: httpx.Client, user: User) -> None:
    narrow = http.post("/api/v1/apps", data={"client_name": "narrow", "scopes": "read"}).json()
    answer = http.post("/oauth/token", data={
        "grant_type": "password", "client_id": narrow["client_id"], "client_secret": narrow["client_secret"],
        "username": user.email, "password": user.password, "scope": "read write"})
    assert_error(answer, 400)


def test_app_token_is_not_a_user(http: httpx.Client, app: dict[str, Any], user: User) -> None:
    answer = http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": app["client_id"],
                                             "client_secret": app["client_secret"], "scope": "read write follow"})
    app_token = answer.json()["access_token"]
    USED_TOKENS.append(app_token)
    auth = bearer(app_token)
    status = post(http, user, "not the app's")
    for answer in (
        http.get("/api/v1/accounts/verify_credentials", headers=auth),
        http.get("/api/v1/timelines/home", headers=auth),
        http.get("/api/v1/accounts/relationships", params={"id[]": user.id}, headers=auth),
        http.post("/api/v1/statuses", headers=auth, data={"status": "from an app"}),
        http.delete(f"/api/v1/statuses/{status}", headers=auth),
        http.post(f"/api/v1/accounts/{user.id}/follow", headers=auth),
        http.post(f"/api/v1/accounts/{user.id}/unfollow", headers=auth),
        http.get("/api/v1/streaming/user", headers=auth),
    ):
        assert_error(answer, 401, 403, 422)
    # Even claiming to act for the user.
    assert_error(http.post("/api/v1/statuses", headers={**auth, "X-Kicau-Account": user.id},
                           data={"status": "as the user"}), 401, 403, 422)
    assert http.get(f"/api/v1/statuses/{status}").status_code == 200
    assert http.get(f"/api/v1/accounts/{user.id}").json()["statuses_count"] == 1


def test_an_app_verifies_its_credentials_with_any_of_its_tokens(
    http: httpx.Client, app: dict[str, Any], user: User,
) -> None:
    answer = http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": app["client_id"],
                                             "client_secret": app["client_secret"], "scope": "read"})
    app_token = answer.json()["access_token"]
    USED_TOKENS.append(app_token)
    expected = {"id": app["id"], "name": "auth-tests", "website": None, "scopes": ["follow", "read", "write"],
                "redirect_uri": "urn:ietf:wg:oauth:2.0:oob", "redirect_uris": ["urn:ietf:wg:oauth:2.0:oob"],
                "vapid_key": http.get("/api/v2/instance").json()["configuration"]["vapid"]["public_key"]}
    assert len(expected["vapid_key"]) == 87  # the instance's VAPID key: a P-256 point, base64url (kicau/web_push.py)
    for token in (app_token, login(http, app, user, "read:accounts")):  # the app's own, and a user's
        shown = http.get("/api/v1/apps/verify_credentials", headers=bearer(token))
        assert shown.status_code == 200, shown.text
        assert shown.json() == expected  # never the secret
    # Another app's token names that app; none, or one revoked, names none.
    assert http.get("/api/v1/apps/verify_credentials", headers=user.auth).json()["name"] == "kicau-tests"
    assert_error(http.get("/api/v1/apps/verify_credentials"), 401)
    assert_error(http.get("/api/v1/apps/verify_credentials", headers=bearer("not-a-token")), 401)
    revoked = http.post("/oauth/revoke", data={"client_id": app["client_id"], "client_secret": app["client_secret"],
                                               "token": app_token})
    assert revoked.status_code == 200, revoked.text
    assert_error(http.get("/api/v1/apps/verify_credentials", headers=bearer(app_token)), 401)


def test_cross_account_writes_are_refused_and_change_nothing(
    http: httpx.Client, make_user: Callable[..., User]
) -> None:
    alice, bob, carol = make_user("au"), make_user("au"), make_user("au")
    USED_TOKENS.extend([alice.token, bob.token, carol.token])
    status = post(http, alice, "alice's own")
    as_alice = {"X-Kicau-Account": alice.id, "X-Kicau-Client": "forged", "X-Kicau-Scopes": "read write follow"}

    # Bob cannot delete Alice's status, even claiming to be her: 404 (as if missing), and it stays.
    assert_error(http.delete(f"/api/v1/statuses/{status}", headers=bob.auth), 404)
    assert_error(http.delete(f"/api/v1/statuses/{status}", headers={**bob.auth, **as_alice}), 404)
    assert_error(http.delete(f"/api/v1/statuses/{status}", headers=as_alice), 401)
    assert http.get(f"/api/v1/statuses/{status}").status_code == 200
    assert http.get(f"/api/v1/accounts/{alice.id}").json()["statuses_count"] == 1

    # Without a token the forged headers authenticate nothing.
    assert_error(http.post("/api/v1/statuses", headers=as_alice, data={"status": "forged"}), 401)
    assert_error(http.post(f"/api/v1/accounts/{carol.id}/follow", headers=as_alice), 401)
    assert_error(http.get("/api/v1/timelines/home", headers=as_alice), 401)

    # A status posted by Bob "as Alice" is Bob's.
    posted = http.post("/api/v1/statuses", headers={**bob.auth, **as_alice}, data={"status": "whose?"})
    assert posted.status_code == 200 and posted.json()["account"]["id"] == bob.id

    # Following on Alice's behalf follows as Bob: the acting account is always the token's.
    followed = http.post(f"/api/v1/accounts/{carol.id}/follow", headers={**bob.auth, **as_alice})
    assert followed.status_code == 200 and followed.json()["following"] is True
    relationships = http.get("/api/v1/accounts/relationships", params={"id[]": carol.id}, headers=alice.auth).json()
    assert relationships[0]["following"] is False
    assert http.get(f"/api/v1/accounts/{alice.id}").json()["following_count"] == 0
    followers = [a["id"] for a in http.get(f"/api/v1/accounts/{carol.id}/followers").json()]
    assert followers == [bob.id]

    # Unfollowing on someone else's behalf unfollows nobody but the token's owner.
    assert http.post(f"/api/v1/accounts/{alice.id}/follow", headers=carol.auth).json()["following"] is True
    undone = http.post(f"/api/v1/accounts/{alice.id}/unfollow",
                       headers={**bob.auth, "X-Kicau-Account": carol.id})
    assert undone.status_code == 200 and undone.json()["following"] is False  # Bob never followed Alice
    still = http.get("/api/v1/accounts/relationships", params={"id[]": alice.id}, headers=carol.auth).json()
    assert still[0]["following"] is True
    assert [a["id"] for a in http.get(f"/api/v1/accounts/{alice.id}/followers").json()] == [carol.id]


def test_a_stream_is_always_the_token_owners(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User]
) -> None:
    alice, bob = make_user("au"), make_user("au")
    USED_TOKENS.extend([alice.token, bob.token])
    # Bob asks for Alice's stream every way a client could: internal headers and query parameters.
    headers = {**bob.auth, "X-Kicau-Account": alice.id}
    params = {"account_id": alice.id, "stream": "user", "list": alice.id}
    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(20, read=20)) as client, \
            client.stream("GET", "/api/v1/streaming/user", headers=headers, params=params) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        # The stream registers asynchronously: Bob posts until his own status shows up...
        first = post(http, bob, "bob warm-up")
        events = read_events(lines, 1)
        assert events[0]["event"] == "update" and events[0]["id"] == first
        # ...and then Alice's statuses never do, only Bob's.
        post(http, alice, "alice, not for bob")
        mine = post(http, bob, "bob again")
        assert read_events(lines, 1)[0]["id"] == mine


def test_stream_token_as_query_parameter(gateway_url: str, user: User) -> None:
    # Browsers cannot set headers on EventSource: the token may come as access_token (and must not be logged).
    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(20, read=20)) as client, \
            client.stream("GET", "/api/v1/streaming/user", params={"access_token": user.token}) as stream:
        assert stream.status_code == 200
        assert next(stream.iter_lines()).startswith(":")
    with httpx.Client(base_url=gateway_url, timeout=10) as client:
        assert_error(client.get("/api/v1/streaming/user", params={"access_token": "not-a-token"}), 401)


def test_login_failure_does_not_reveal_whether_the_account_exists(
    http: httpx.Client, app: dict[str, Any], user: User
) -> None:
    base = {"grant_type": "password", "client_id": app["client_id"], "client_secret": app["client_secret"],
            "scope": "read"}
    answers = [
        http.post("/oauth/token", data={**base, "username": user.email, "password": "wrong password"}),
        http.post("/oauth/token", data={**base, "username": user.username, "password": "wrong password"}),
        http.post("/oauth/token", data={**base, "username": "nobody@example.test", "password": "wrong password"}),
        http.post("/oauth/token", data={**base, "username": "nobody_at_all_here", "password": "wrong password"}),
    ]
    assert {a.status_code for a in answers} == {400}
    assert len({a.content for a in answers}) == 1, [a.text for a in answers]
    assert "error" in answers[0].json()


def test_no_token_in_any_log(gateway_url: str, http: httpx.Client) -> None:
    # Runs last in this module: every token used above (headers, form bodies, query strings) is searched for.
    assert USED_TOKENS
    http.get("/readyz")  # something after the last request, so buffered log lines are out
    logs = sorted((STACK_DIR / "services").glob("*.log"))
    assert logs, "the stack's service logs are in .stack/services"
    leaked = []
    for log in logs:
        text = Path(log).read_text(errors="replace")
        leaked += [(log.name, token[:6]) for token in USED_TOKENS if token in text]
    assert not leaked, leaked

"""Every bad input gets a 4xx with a Mastodon-style ``{"error": "..."}`` body, never a 5xx, and changes
nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import User


def assert_error(answer: httpx.Response, status: int) -> None:
    assert answer.status_code == status, (answer.status_code, answer.text)
    body = answer.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body


@pytest.fixture(scope="module")
def user(make_user: Callable[..., User]) -> User:
    return make_user("bad")


def status_count(http: httpx.Client, user: User) -> int:
    return int(http.get(f"/api/v1/accounts/{user.id}").json()["statuses_count"])


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": {}}, 422),
        ({"data": {"status": ""}}, 422),
        ({"data": {"status": "   "}}, 422),
        ({"data": {"status": "x" * 501}}, 422),
        ({"data": {"status": "nul\x00byte"}}, 422),
        ({"data": {"status": "hi", "visibility": "everyone"}}, 422),
        ({"json": {"status": 123}}, 422),
        ({"json": {"status": ["a"]}}, 422),
        ({"json": ["not", "an", "object"]}, 422),
        ({"content": b'{"status": "unterminated', "headers": {"Content-Type": "application/json"}}, 400),
        ({"content": b"status=hi", "headers": {"Content-Type": "text/plain"}}, 415),
        ({"content": b"x" * (1024 * 1024), "headers": {"Content-Type": "application/json"}}, 413),
        ({"json": {"status": "hi", "in_reply_to_id": "not-an-id"}}, 404),
        ({"json": {"status": "hi", "sensitive": "maybe"}}, 422),
        ({"json": {"status": "hi", "language": "<script>"}}, 422),
    ],
)
def test_bad_status_posts(http: httpx.Client, user: User, kwargs: dict[str, Any], status: int) -> None:
    before = status_count(http, user)
    headers = {**user.auth, **kwargs.pop("headers", {})}
    assert_error(http.post("/api/v1/statuses", headers=headers, **kwargs), status)
    assert status_count(http, user) == before


def test_length_counts_characters_not_bytes(http: httpx.Client, user: User) -> None:
    # 500 characters of emoji, right-to-left text and combining marks are allowed; one more is not.
    text = ("🐦" * 200) + ("שלום" * 50) + ("e\u0301" * 100)
    assert len(text) == 600
    composed = "🐦" * 200 + "שלום" * 50 + "é" * 100
    assert http.post("/api/v1/statuses", headers=user.auth, json={"status": composed}).status_code == 200
    assert_error(http.post("/api/v1/statuses", headers=user.auth, json={"status": composed + "x" * 101}), 422)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}],
)
def test_bad_tokens(http: httpx.Client, headers: dict[str, str]) -> None:
    assert_error(http.post("/api/v1/statuses", headers=headers, data={"status": "hi"}), 401)
    assert_error(http.get("/api/v1/timelines/home", headers=headers), 401)
    assert_error(http.get("/api/v1/accounts/verify_credentials", headers=headers), 401)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/statuses/abc",
        "/api/v1/statuses/-5",
        "/api/v1/statuses/99999999999999999999999999",
        "/api/v1/statuses/1",
        "/api/v1/accounts/0",
        "/api/v1/accounts/abc/statuses",
        "/api/v1/accounts/123/followers",
        "/api/v1/accounts/lookup?acct=nobody_here_at_all",
        "/api/v1/no/such/route",
    ],
)
def test_unknown_records(http: httpx.Client, path: str) -> None:
    assert_error(http.get(path), 404)


@pytest.mark.parametrize("query", ["max_id=abc", "since_id=-1", "min_id=1e9", "limit=ten"])
def test_bad_pagination(http: httpx.Client, user: User, query: str) -> None:
    assert_error(http.get(f"/api/v1/timelines/home?{query}", headers=user.auth), 400)


def test_delete_and_follow_unknown(http: httpx.Client, user: User) -> None:
    assert_error(http.delete("/api/v1/statuses/12345", headers=user.auth), 404)
    assert_error(http.post("/api/v1/accounts/12345/follow", headers=user.auth), 404)
    assert_error(http.post(f"/api/v1/accounts/{user.id}/follow", headers=user.auth), 403)


def test_bad_oauth_and_registration(http: httpx.Client, app_credentials: dict[str, Any], user: User) -> None:
    assert_error(http.post("/api/v1/apps", data={}), 422)
    assert_error(http.post("/api/v1/apps", data={"client_name": "x", "scopes": "root"}), 400)
    assert_error(http.post("/oauth/token", data={"grant_type": "password", "client_id": "nope",
                                                 "client_secret": "nope", "username": "a", "password": "b"}), 401)
    creds = {"client_id": app_credentials["client_id"], "client_secret": app_credentials["client_secret"]}
    assert_error(http.post("/oauth/token", data={**creds, "grant_type": "implicit"}), 400)
    assert_error(http.post("/oauth/token", data={**creds, "grant_type": "password", "username": user.email,
                                                 "password": "wrong password"}), 400)
    app_token = http.post("/oauth/token", data={**creds, "grant_type": "client_credentials"}).json()["access_token"]
    auth = {"Authorization": f"Bearer {app_token}"}
    for form in (
        {"username": user.username, "email": "other@example.test", "password": "longenough", "agreement": "1"},
        {"username": "fresh_name_1", "email": user.email, "password": "longenough", "agreement": "1"},
        {"username": "has space", "email": "x@example.test", "password": "longenough", "agreement": "1"},
        {"username": "fresh_name_2", "email": "not-an-email", "password": "longenough", "agreement": "1"},
        {"username": "fresh_name_3", "email": "y@example.test", "password": "short", "agreement": "1"},
        {"username": "fresh_name_4", "email": "z@example.test", "password": "longenough"},
    ):
        assert_error(http.post("/api/v1/accounts", headers=auth, data=form), 422)
    # The failed attempts left no half-registered names behind.
    assert_error(http.get("/api/v1/accounts/lookup?acct=fresh_name_1"), 404)
    ok = http.post("/api/v1/accounts", headers=auth, data={
        "username": "fresh_name_1" + user.username[-6:], "email": "fresh1" + user.email, "password": "longenough",
        "agreement": "1"})
    assert ok.status_code == 200, ok.text


def test_idempotency_key_yields_one_status(http: httpx.Client, user: User) -> None:
    before = status_count(http, user)
    headers = {**user.auth, "Idempotency-Key": "key-" + user.id}
    first = http.post("/api/v1/statuses", headers=headers, json={"status": "only once"})
    second = http.post("/api/v1/statuses", headers=headers, json={"status": "only once"})
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert status_count(http, user) == before + 1

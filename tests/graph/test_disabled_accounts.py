"""An account's login disabled by the operator (``python -m services.graph.accounts``, kicau/disabled_accounts.py),
against the running system: its tokens are refused with Mastodon's 403 at once (the gateways' copies of their
cache entries included, and with Redis's entries gone), its sign-in is refused to whoever knows its password, the
rest of the instance reads it as before, and ``enable`` gives it all back."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import redis

from kicau import keys, tokens
from stack.config import ROOT
from stack.services import service_env
from tests.conftest import User
from tests.timeline.test_visibility import post

DISABLED = {"error": "Your login is currently disabled"}


def accounts_tool(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "services.graph.accounts", *args], cwd=ROOT, env=service_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def password_grant(http: httpx.Client, app: dict[str, Any], user: User, password: str) -> httpx.Response:
    return http.post("/oauth/token", data={
        "grant_type": "password", "client_id": app["client_id"], "client_secret": app["client_secret"],
        "username": user.username, "password": password, "scope": "read"})


def test_a_disabled_login_is_refused_until_enabled(
    http: httpx.Client, make_user: Callable[..., User], app_credentials: dict[str, Any], stack_redis: redis.Redis,
    gateway_url: str,
) -> None:
    user, reader = make_user("dis_u"), make_user("dis_r")
    said = post(http, user, "before")
    # Its token resolved and held: the gateway keeps a copy of the entry, which the tool must take away.
    for _ in range(3):
        assert http.get("/api/v1/accounts/verify_credentials", headers=user.auth).status_code == 200
    second = password_grant(http, app_credentials, user, user.password)
    assert second.status_code == 200, second.text
    second_auth = {"Authorization": f"Bearer {second.json()['access_token']}"}

    said_by_tool = accounts_tool("disable", user.username)
    assert said_by_tool.startswith(f"@{user.username} (id {user.id}) disabled; its 2 tokens"), said_by_tool
    assert accounts_tool("show", f"@{user.username}").split("\t")[2] == "disabled"
    for auth in (user.auth, second_auth):  # every token of the account, at once
        refused = http.get("/api/v1/accounts/verify_credentials", headers=auth)
        assert (refused.status_code, refused.json()) == (403, DISABLED)
    attempt = http.post("/api/v1/statuses", headers=user.auth, json={"status": "while disabled"})
    assert (attempt.status_code, attempt.json()) == (403, DISABLED)
    with httpx.Client(base_url=gateway_url, timeout=30) as client, \
            client.stream("GET", "/api/v1/streaming/user", headers=user.auth) as stream:
        assert stream.status_code == 403
    # With Redis's entry gone, the graph service reads the flag from Cassandra.
    stack_redis.delete(keys.token_cache(tokens.hash_token(user.token)))
    assert http.get("/api/v1/accounts/verify_credentials", headers=user.auth).status_code == 403
    # Signing in: refused, and said so, only to whoever knows the password.
    signed_in = password_grant(http, app_credentials, user, user.password)
    assert (signed_in.status_code, signed_in.json()) == (403, DISABLED)
    guessed = password_grant(http, app_credentials, user, "not the password at all")
    assert guessed.status_code == 400 and guessed.json() != DISABLED
    # The rest of the instance reads the account and its statuses as before.
    assert http.get(f"/api/v1/statuses/{said}").status_code == 200
    assert http.get(f"/api/v1/accounts/{user.id}", headers=reader.auth).json()["username"] == user.username
    assert [s["id"] for s in http.get(f"/api/v1/accounts/{user.id}/statuses", headers=reader.auth).json()] == [said]

    assert "work again" in accounts_tool("enable", user.username)
    assert accounts_tool("show", user.username.upper()).split("\t")[2] == "enabled"  # usernames: any case
    for auth in (user.auth, second_auth):
        assert http.get("/api/v1/accounts/verify_credentials", headers=auth).status_code == 200
    assert password_grant(http, app_credentials, user, user.password).status_code == 200
    post(http, user, "after")


def test_the_tool_names_accounts_it_does_not_know() -> None:
    done = subprocess.run([sys.executable, "-m", "services.graph.accounts", "disable", "nobody_here_at_all"], cwd=ROOT,
                          env=service_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "no account @nobody_here_at_all" in done.stderr

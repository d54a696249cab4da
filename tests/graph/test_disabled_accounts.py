"""An account's login disabled by the operator (``python -m services.graph.accounts``, kicau/account_standing.py),
against the running system: its tokens are refused with Mastodon's 403 at once (the gateways' copies of their
cache entries included, and with Redis's entries gone), its open streams end, its sign-in is refused to whoever
knows its password, the rest of the instance reads it as before, and ``enable`` gives it all back. And a token
revoked through ``/oauth/revoke`` ends its own streams, not those of the account's other tokens."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from kicau import keys, tokens
from stack.config import ROOT
from stack.services import service_env
from tests.conftest import User
from tests.gateway.test_streaming import read_events
from tests.gateway.test_streaming_bounds import next_frame, ws_url
from tests.graph.test_admin import accounts_tool
from tests.graph.test_authorization_code import OOB, approve, make_app
from tests.timeline.test_visibility import post

DISABLED = {"error": "Your login is currently disabled"}


def password_grant(http: httpx.Client, app: dict[str, Any], user: User, password: str) -> httpx.Response:
    return http.post("/oauth/token", data={
        "grant_type": "password", "client_id": app["client_id"], "client_secret": app["client_secret"],
        "username": user.username, "password": password, "scope": "read"})


@contextlib.contextmanager
def user_stream(gateway_url: str, auth: dict[str, str]) -> Iterator[Iterator[str]]:
    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(30, read=30)) as client, \
            client.stream("GET", "/api/v1/streaming/user", headers=auth) as stream:
        assert stream.status_code == 200
        yield stream.iter_lines()


def ends_within(lines: Iterator[str], seconds: float) -> list[str]:
    """Read an SSE stream until the server ends it, at most ``seconds`` (heartbeats keep the reads short)."""
    deadline, seen = time.monotonic() + seconds, []
    for line in lines:
        seen.append(line)
        if time.monotonic() > deadline:
            pytest.fail(f"the stream did not end within {seconds} s: {seen[-5:]}")
    return seen


@contextlib.contextmanager
def websocket_seeing(gateway_url: str, user: User, auth: dict[str, str],
                     http: httpx.Client) -> Iterator[ClientConnection]:
    """A WebSocket on the user stream, once a status of the user's own has come through it (so it is open)."""
    with connect(ws_url(gateway_url) + "?stream=user", additional_headers=auth, open_timeout=10) as ws:
        posted: set[str] = set()

        def delivered() -> bool:
            posted.add(post(http, user, "is it open?"))
            with contextlib.suppress(TimeoutError):
                while True:
                    frame = next_frame(ws, timeout=1)
                    if frame.get("event") == "update" and json.loads(str(frame["payload"]))["id"] in posted:
                        return True
            return False
        if not any(delivered() for _ in range(30)):
            pytest.fail("the WebSocket never delivered a status")
        yield ws


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

    with user_stream(gateway_url, user.auth) as lines, \
            websocket_seeing(gateway_url, user, second_auth, http) as ws, \
            connect(ws_url(gateway_url), additional_headers=user.auth, open_timeout=10) as idle:
        said_by_tool = accounts_tool("disable", user.username)
        # Its open streams end: the SSE one without the overflow event, the WebSocket with a close frame.
        assert not any("kicau.overflow" in line for line in ends_within(lines, 20))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                next_frame(ws, timeout=20)
        assert closed.value.rcvd is not None and closed.value.rcvd.reason == "session ended"
        # A socket that held no stream is not ended, but opens none now: refused as a new one would be.
        idle.send(json.dumps({"type": "subscribe", "stream": "user"}))
        assert next_frame(idle) == {**DISABLED, "status": 403}
        with pytest.raises(ConnectionClosed) as refused_socket:
            next_frame(idle)
        assert refused_socket.value.rcvd is not None and refused_socket.value.rcvd.code == 4003
    assert said_by_tool.startswith(f"@{user.username} (id {user.id}) disabled; its 2 tokens"), said_by_tool
    assert accounts_tool("show", f"@{user.username}").split("\t")[2] == "disabled"
    assert f"@{user.username}\tid {user.id}" in accounts_tool("disabled").splitlines()
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
    # And through the authorization form: the page says why, after the password.
    app = make_app(http)
    params = {"response_type": "code", "client_id": app["client_id"], "redirect_uri": OOB, "scope": "read"}
    in_browser = approve(http, user, params)
    assert in_browser.status_code == 403 and DISABLED["error"] in in_browser.text
    assert approve(http, user, params, password="not the password at all").status_code == 401
    # The rest of the instance reads the account and its statuses as before.
    assert http.get(f"/api/v1/statuses/{said}").status_code == 200
    assert http.get(f"/api/v1/accounts/{user.id}", headers=reader.auth).json()["username"] == user.username
    assert said in [s["id"] for s in http.get(f"/api/v1/accounts/{user.id}/statuses?limit=40",
                                              headers=reader.auth).json()]

    assert "work again" in accounts_tool("enable", user.username)
    assert accounts_tool("show", user.username.upper()).split("\t")[2] == "enabled"  # usernames: any case
    assert f"@{user.username}\tid {user.id}" not in accounts_tool("disabled").splitlines()
    for auth in (user.auth, second_auth):
        assert http.get("/api/v1/accounts/verify_credentials", headers=auth).status_code == 200
    assert password_grant(http, app_credentials, user, user.password).status_code == 200
    post(http, user, "after")


def test_the_tool_names_accounts_it_does_not_know() -> None:
    done = subprocess.run([sys.executable, "-m", "services.graph.accounts", "disable", "nobody_here_at_all"], cwd=ROOT,
                          env=service_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "no account @nobody_here_at_all" in done.stderr


def test_a_revoked_token_ends_its_own_streams_alone(
    http: httpx.Client, make_user: Callable[..., User], app_credentials: dict[str, Any], gateway_url: str,
) -> None:
    user = make_user("rev_u")
    other = password_grant(http, app_credentials, user, user.password).json()["access_token"]
    other_auth = {"Authorization": f"Bearer {other}"}
    with user_stream(gateway_url, user.auth) as kept, user_stream(gateway_url, other_auth) as revoked:
        answer = http.post("/oauth/revoke", data={"client_id": app_credentials["client_id"],
                                                  "client_secret": app_credentials["client_secret"], "token": other})
        assert answer.status_code == 200, answer.text
        ends_within(revoked, 20)
        said = post(http, user, "still streaming")
        assert read_events(kept, 1)[0].get("id") == said
    refused = http.get("/api/v1/accounts/verify_credentials", headers=other_auth)
    assert refused.status_code == 401


def test_a_session_that_ended_while_the_channel_was_lost_ends_its_streams(
    http: httpx.Client, make_user: Callable[..., User], app_credentials: dict[str, Any], gateway_url: str,
    stack_cassandra: Any, stack_redis: redis.Redis,
) -> None:
    """A token revoked with its ``sessions:ended`` message lost (the row and the cache entry deleted, nothing
    published), then the gateway's channel dropped: resubscribed, the gateway checks the sessions of its streams
    and ends the revoked token's, not the other token's."""
    user = make_user("lost_u")
    other = password_grant(http, app_credentials, user, user.password).json()["access_token"]
    other_auth = {"Authorization": f"Bearer {other}"}
    with user_stream(gateway_url, user.auth) as kept, user_stream(gateway_url, other_auth) as revoked:
        token_hash = tokens.hash_token(other)
        stack_cassandra.execute("DELETE FROM oauth_tokens WHERE token_hash = %s", (token_hash,))
        stack_redis.delete(keys.token_cache(token_hash))
        reconnections = hub_reconnections(http)
        assert stack_redis.client_kill_filter(_type="pubsub") >= 1  # every subscriber here, the gateways' included
        ends_within(revoked, 20)
        assert hub_reconnections(http) > reconnections  # counted for the operator
        said = post(http, user, "still streaming after the channel came back")
        notice, live = read_events(kept, 2)  # told that events may be missing, then live again
        assert notice["event"] == "kicau.refetch" and live.get("id") == said, (notice, live)
    assert http.get("/api/v1/accounts/verify_credentials", headers=other_auth).status_code == 401


def hub_reconnections(http: httpx.Client) -> float:
    """The gateway's count of its stream hub's channel reconnections (``kicau_pubsub_reconnections_total``)."""
    series = 'kicau_pubsub_reconnections_total{subscriber="stream_hub"} '
    lines = [line for line in http.get("/metrics").text.splitlines() if line.startswith(series)]
    return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0

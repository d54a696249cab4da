"""The graph service dies (``os._exit`` at a crash point, as a SIGKILL would end it) in the middle of a sign-up:
after the username and the e-mail address are claimed, before the account is written. The sign-up answers a
Mastodon error, never 500; the name and the address are not lost to the applicant: once the claims are plainly
abandoned (``ABANDONED_CLAIM_SECONDS`` after, with no account made), signing up with them again succeeds, and the
account is whole (its profile found by its name, its token working, its address signing in).

Until 2026-12-07 a crash there left both claimed by an account that never existed: neither could be registered
again, ever (an exception there released the username, never the address)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from services.graph.service import ABANDONED_CLAIM_SECONDS
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.graph.test_ip_blocks import app_token  # noqa: F401

PASSWORD = "correct horse battery staple"


def _sign_up(http: httpx.Client, token: str, username: str, email: str) -> httpx.Response:
    return http.post("/api/v1/accounts", headers={"Authorization": f"Bearer {token}"}, data={
        "username": username, "email": email, "password": PASSWORD, "agreement": "true", "locale": "en"})


@pytest.mark.timeout(300)
def test_a_sign_up_the_graph_died_in_leaves_its_name_and_address_to_take_again(
        http: httpx.Client, app_token: str, app_credentials: dict[str, Any], faults: Faults) -> None:  # noqa: F811
    username = f"suc_{uuid.uuid4().hex[:10]}"
    email = f"{username}@example.test"
    broken, restart_seconds = faults.crash_during(
        "graph", "graph.register.claimed", lambda: _sign_up(http, app_token, username, email))
    crashed_at = time.monotonic()
    harness.figure(f"graph service back {restart_seconds:.1f} s after dying mid sign-up ({broken.status_code})")

    # Right after, the claims may still be a sign-up under way: taken.
    early = _sign_up(http, app_token, username, f"other-{email}")
    assert (early.status_code, early.json()) == (422, {"error": "Validation failed: Username has already been taken"})
    assert http.get("/api/v1/accounts/lookup", params={"acct": username}).status_code == 404

    # Plainly abandoned: both taken over by the applicant's new sign-up.
    time.sleep(max(0.0, ABANDONED_CLAIM_SECONDS + 1 - (time.monotonic() - crashed_at)))
    again = _sign_up(http, app_token, username, email)
    assert again.status_code == 200, again.text
    auth = {"Authorization": f"Bearer {again.json()['access_token']}"}
    me = http.get("/api/v1/accounts/verify_credentials", headers=auth)
    assert (me.status_code, me.json()["username"]) == (200, username)
    assert http.get("/api/v1/accounts/lookup", params={"acct": username}).json()["id"] == me.json()["id"]
    signed_in = http.post("/oauth/token", data={
        "grant_type": "password", "client_id": app_credentials["client_id"],
        "client_secret": app_credentials["client_secret"], "username": email, "password": PASSWORD,
        "scope": "read"})
    assert signed_in.status_code == 200, signed_in.text
    # Taken over once: another sign-up with either is refused as ever.
    assert _sign_up(http, app_token, username, f"third-{email}").status_code == 422
    assert _sign_up(http, app_token, f"x{username}", email).status_code == 422

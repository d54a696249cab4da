"""Where accounts sign up and sign in from (kicau/account_ips.py) against the running system: the gateway passes
the client's address to the graph service as an account registers and as it signs in by password; staff see them
in the Admin::Account (``ip``, the latest, and ``ips``) and find accounts by an address or a network with the
``ip`` filter (v1 and v2, with the other filters); a filter that names no network, or too wide a one, is a 422.

Clients bind distinct loopback addresses (127.x.y.z) to stand for distinct clients."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from mastodon import Mastodon

from tests.conftest import User
from tests.graph.test_admin import ADMIN_SCOPES, admin_app, staff  # noqa: F401  (fixtures)
from tests.graph.test_ip_blocks import client_from

PASSWORD = "correct horse battery staple"


def test_staff_see_and_filter_by_the_addresses_accounts_used(
        http: httpx.Client, gateway_url: str, app_credentials: dict[str, Any], admin_app: dict[str, Any],  # noqa: F811
        staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    moderator, auth = staff("aip_m", "Moderator")
    a, b = random.randint(1, 254), random.randint(1, 254)
    signed_up_from, signed_in_from = f"127.{a}.{b}.10", f"127.{a}.{b}.20"
    username = f"aip_{uuid.uuid4().hex[:10]}"
    with client_from(gateway_url, signed_up_from) as phone, client_from(gateway_url, signed_in_from) as laptop:
        app_token = phone.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": app_credentials["client_id"],
            "client_secret": app_credentials["client_secret"], "scope": "read write"}).json()["access_token"]
        registered = phone.post("/api/v1/accounts", headers={"Authorization": f"Bearer {app_token}"}, data={
            "username": username, "email": f"{username}@example.test", "password": PASSWORD, "agreement": "true",
            "locale": "en"})
        assert registered.status_code == 200, registered.text
        signed_in = laptop.post("/oauth/token", data={
            "grant_type": "password", "client_id": app_credentials["client_id"],
            "client_secret": app_credentials["client_secret"], "username": username, "password": PASSWORD,
            "scope": "read"})
        assert signed_in.status_code == 200, signed_in.text
        # A wrong password records nothing.
        refused = phone.post("/oauth/token", data={
            "grant_type": "password", "client_id": app_credentials["client_id"],
            "client_secret": app_credentials["client_secret"], "username": username, "password": "wrong password"})
        assert refused.status_code == 400, refused.text
    found = http.get("/api/v2/admin/accounts", headers=auth, params={"username": username}).json()
    assert len(found) == 1, found
    account_id = found[0]["id"]
    shown = http.get(f"/api/v1/admin/accounts/{account_id}", headers=auth).json()
    assert shown["ip"] == signed_in_from, shown
    assert [entry["ip"] for entry in shown["ips"]] == [signed_in_from, signed_up_from]
    assert all(entry["used_at"].endswith("Z") for entry in shown["ips"])
    assert found[0]["ips"] == shown["ips"]  # listed pages carry them too

    def ids(version: str, **params: str) -> list[str]:
        answer = http.get(f"/api/{version}/admin/accounts", headers=auth, params=params)
        assert answer.status_code == 200, answer.text
        return [item["id"] for item in answer.json()]

    assert ids("v2", ip=signed_up_from) == [account_id]
    assert ids("v1", ip=signed_in_from) == [account_id]
    assert ids("v2", ip=f"127.{a}.{b}.0/24") == [account_id]  # the network: only this run's account used it
    assert ids("v2", ip=f"127.{a}.{b}.0/24", username=username[:8]) == [account_id]
    assert ids("v2", ip=f"127.{a}.{b}.0/24", username="nobody_by_this_name") == []
    assert ids("v2", ip=f"127.{a}.{b}.0/24", status="suspended") == []
    assert ids("v2", ip=f"127.{a}.{b}.30") == []
    assert account_id in ids("v2", ip=f"127.{a}.0.0/16", limit="200")
    for bad in ("not-an-address", "999.1.1.1", "10.0.0.0/7", "::/0"):
        answer = http.get("/api/v2/admin/accounts", headers=auth, params={"ip": bad})
        assert answer.status_code == 422 and "error" in answer.json(), (bad, answer.text)

    client = Mastodon(client_id=admin_app["client_id"], client_secret=admin_app["client_secret"],
                      api_base_url=gateway_url, version_check_mode="none")
    client.log_in(moderator.email, moderator.password, scopes=ADMIN_SCOPES.split())
    seen = client.admin_account(account_id)
    assert seen.ip == signed_in_from and [entry.ip for entry in seen.ips] == [signed_in_from, signed_up_from]
    assert [str(found.id) for found in client.admin_accounts_v2(ip=signed_up_from)] == [str(account_id)]

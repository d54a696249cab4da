"""Sign-ups held for staff's approval against the running system (services/graph/sign_ups.py): from a network an IP
block marks ``sign_up_requires_approval``, a sign-up answers a token that every route refuses with Mastodon's 403
"pending approval", the account is invisible to others and waits in staff's ``pending`` listing with its reason;
``approve`` lets it in (its token works, others find it, the audit log says who), ``reject`` deletes it and frees its
username and address; an e-mail domain block with ``allow_with_approval`` holds sign-ups as an IP block does; bad
input is a 4xx that leaves nothing; a second graph service in the ``approved`` mode holds
every sign-up, and one in mode ``none`` takes none; Mastodon.py's methods work unchanged."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.procs import free_port
from stack.services import service_env
from tests.conftest import User, eventually
from tests.graph.test_admin import admin_app, next_link, signed_in_client, staff  # noqa: F401
from tests.graph.test_ip_blocks import app_token, block_of, client_from, fresh_network  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
PENDING = {"error": "Your login is currently pending approval"}
NOT_FOUND = {"error": "Record not found"}
NOT_ALLOWED = {"error": "This action is not allowed"}
PASSWORD = "correct horse battery staple"


def register(client: httpx.Client, app_token: str, **extra: str) -> tuple[str, str, httpx.Response]:  # noqa: F811
    """A sign-up of a fresh username; (username, e-mail address, the answer)."""
    username = extra.pop("username", f"sua_{uuid.uuid4().hex[:10]}")
    email = extra.pop("email", f"{username}@example.test")
    answer = client.post("/api/v1/accounts", headers={"Authorization": f"Bearer {app_token}"}, data={
        "username": username, "email": email, "password": PASSWORD, "agreement": "true", "locale": "en", **extra})
    return username, email, answer


def pending_listing(http: httpx.Client, auth: dict[str, str], version: str = "v2") -> dict[str, dict[str, Any]]:
    params = {"status": "pending"} if version == "v2" else {"pending": "true"}
    answer = http.get(f"/api/{version}/admin/accounts", headers=auth, params=params)
    assert answer.status_code == 200, answer.text
    return {entry["username"]: entry for entry in answer.json()}


def test_a_held_sign_up_waits_then_staff_approve_or_reject_it(
        http: httpx.Client, gateway_url: str, app_token: str,  # noqa: F811
        staff: Callable[[str, str], tuple[User, dict[str, str]]], make_user: Callable[..., User]) -> None:  # noqa: F811
    moderator, auth = staff("sua_m", "Moderator")
    other = make_user("sua_o")
    _, admin = staff("sua_a", "Admin")  # IP blocks are an admin's (manage_blocks)
    network, inside, outside = fresh_network()
    with block_of(http, admin, ip=network, severity="sign_up_requires_approval", comment="a sign-up wave"), \
            client_from(gateway_url, inside) as applicant_client, client_from(gateway_url, outside) as free_client:
        # Outside the network a sign-up is let in at once; inside it waits, with its reason.
        free_name, _, free = register(free_client, app_token)
        assert free.status_code == 200, free.text
        free_auth = {"Authorization": f"Bearer {free.json()['access_token']}"}
        assert http.get("/api/v1/accounts/verify_credentials", headers=free_auth).status_code == 200
        name, email, held = register(applicant_client, app_token, reason="I run the local choir")
        assert held.status_code == 200, held.text
        assert held.json()["token_type"] == "Bearer"
        held_auth = {"Authorization": f"Bearer {held.json()['access_token']}"}
        spare_name, spare_email, spare = register(applicant_client, app_token)
        assert spare.status_code == 200, spare.text
        spare_auth = {"Authorization": f"Bearer {spare.json()['access_token']}"}

        # Every route refuses its token, as Mastodon's; signing in gives a token refused alike.
        for method, path in [("GET", "/api/v1/accounts/verify_credentials"), ("GET", "/api/v1/timelines/home"),
                             ("POST", "/api/v1/statuses"), ("GET", "/api/v1/notifications")]:
            answer = http.request(method, path, headers=held_auth, json={"status": "hi"})
            assert (answer.status_code, answer.json()) == (403, PENDING), path
        assert http.get("/api/v1/streaming/user", headers=held_auth).status_code == 403
        signed_in = http.post("/oauth/token", data={
            "grant_type": "password", "client_id": admin_app_client(http)["client_id"],
            "client_secret": admin_app_client(http)["client_secret"], "username": email, "password": PASSWORD,
            "scope": "read"})
        assert signed_in.status_code == 200, signed_in.text
        later_auth = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        answer = http.get("/api/v1/timelines/home", headers=later_auth)
        assert (answer.status_code, answer.json()) == (403, PENDING)

        # Others are told it does not exist.
        listed = pending_listing(http, auth)
        held_id = listed[name]["id"]
        assert free_name not in listed
        assert http.get(f"/api/v1/accounts/{held_id}").json() == NOT_FOUND
        assert http.get("/api/v1/accounts/lookup", params={"acct": name}).json() == NOT_FOUND
        answer = http.post(f"/api/v1/accounts/{held_id}/follow", headers=other.auth)
        assert (answer.status_code, answer.json()) == (404, NOT_FOUND)
        searched = http.get("/api/v2/search", headers=other.auth, params={"q": name, "type": "accounts"})
        assert searched.status_code == 200 and searched.json()["accounts"] == []
        both = {"id[]": [held_id, other.id]}
        assert [a["id"] for a in http.get("/api/v1/accounts", params=both).json()] == [other.id]
        # The username and the address stay taken meanwhile.
        assert register(free_client, app_token, username=name.upper())[2].status_code == 422
        assert register(free_client, app_token, email=email)[2].status_code == 422

        # Staff see it waiting, with what it wrote, in both versions of the listing and on its own.
        entry = listed[name]
        assert (entry["approved"], entry["invite_request"], entry["email"]) == (False, "I run the local choir", email)
        assert inside in [used["ip"] for used in entry["ips"]]  # signed up from there (then in from 127.0.0.1)
        assert name in pending_listing(http, auth, "v1")
        # Among the others too, in their places by registration (as Mastodon lists them), and paged through.
        def newest(version: str = "v2", **params: str) -> httpx.Response:
            answer = http.get(f"/api/{version}/admin/accounts", headers=auth, params=params)
            assert answer.status_code == 200, answer.text
            return answer

        assert [a["username"] for a in newest(limit="3").json()] == [spare_name, name, free_name]
        assert [a["username"] for a in newest("v1", active="true", limit="3").json()] == [spare_name, name, free_name]
        first = newest(limit="1")
        assert [a["username"] for a in http.get(next_link(first) or "", headers=auth).json()] == [name]
        assert [a["username"] for a in newest(max_id=held_id, limit="1").json()] == [free_name]
        assert [a["username"] for a in newest(username=name).json()] == [name]
        assert http.get(f"/api/v1/admin/accounts/{held_id}", headers=auth).json()["approved"] is False
        assert listed[spare_name]["invite_request"] is None

        # Approved: its tokens work at once, others find it, and approving again is Mastodon's 403.
        approved = http.post(f"/api/v1/admin/accounts/{held_id}/approve", headers=auth)
        assert approved.status_code == 200, approved.text
        assert (approved.json()["id"], approved.json()["approved"]) == (held_id, True)
        assert approved.json()["invite_request"] == "I run the local choir"
        me = http.get("/api/v1/accounts/verify_credentials", headers=held_auth)
        assert (me.status_code, me.json()["username"]) == (200, name)
        assert http.get("/api/v1/timelines/home", headers=later_auth).status_code == 200
        assert http.get(f"/api/v1/accounts/{held_id}").json()["username"] == name
        assert http.get("/api/v1/accounts/lookup", params={"acct": name}).json()["id"] == held_id
        assert [a["id"] for a in http.get("/api/v1/accounts", params=both).json()] == [held_id, other.id]
        # Listed once, from the directory now.
        assert [a["username"] for a in newest(limit="3").json()] == [spare_name, name, free_name]
        assert http.post(f"/api/v1/accounts/{held_id}/follow", headers=other.auth).json()["following"] is True
        eventually(lambda: [a["id"] for a in http.get("/api/v2/search", headers=other.auth, params={
            "q": name, "type": "accounts"}).json()["accounts"]] == [held_id])
        assert name not in pending_listing(http, auth)
        again = http.post(f"/api/v1/admin/accounts/{held_id}/approve", headers=auth)
        assert (again.status_code, again.json()) == (403, NOT_ALLOWED)
        assert http.post(f"/api/v1/admin/accounts/{held_id}/reject", headers=auth).json() == NOT_ALLOWED

        # Rejected: gone, its token with it, and its username and address free for anyone.
        spare_id = pending_listing(http, auth)[spare_name]["id"]
        rejected = http.post(f"/api/v1/admin/accounts/{spare_id}/reject", headers=auth)
        assert (rejected.status_code, rejected.json()) == (200, {})
        assert http.get("/api/v1/accounts/verify_credentials", headers=spare_auth).status_code == 401
        assert http.get(f"/api/v1/admin/accounts/{spare_id}", headers=auth).status_code == 404
        assert spare_name not in pending_listing(http, auth)
        assert http.post(f"/api/v1/admin/accounts/{spare_id}/reject", headers=auth).status_code == 404
        _, _, again_signed = register(free_client, app_token, username=spare_name, email=spare_email)
        assert again_signed.status_code == 200, again_signed.text
        assert http.get("/api/v1/accounts/lookup", params={"acct": spare_name}).json()["id"] != spare_id

    # The audit log names who approved and who rejected.
    answer = http.get("/api/v1/admin/audit_logs", headers=admin, params={"account_id": moderator.id})
    assert answer.status_code == 200, answer.text
    assert [(e["action_type"], e["target_type"], e["target_id"], e["human_identifier"]) for e in answer.json()] == [
        ("reject_user", "user", spare_id, spare_name), ("approve_user", "user", held_id, name)]


_ADMIN_APP: dict[str, Any] = {}


def admin_app_client(http: httpx.Client) -> dict[str, Any]:
    """An app of the suite's for the password grant (the fixtures' apps are per module)."""
    if not _ADMIN_APP:
        answer = http.post("/api/v1/apps", data={"client_name": "kicau-sign-ups", "scopes": "read write"})
        assert answer.status_code == 200, answer.text
        _ADMIN_APP.update(answer.json())
    return _ADMIN_APP


def test_an_email_domain_block_may_hold_sign_ups_instead_of_refusing_them(
        http: httpx.Client, app_token: str,  # noqa: F811
        staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    _, admin = staff("sue_a", "Admin")
    stem = uuid.uuid4().hex[:8]
    held_domain, refused_domain = f"held-{stem}.example", f"strict.held-{stem}.example"
    made = [http.post("/api/v1/admin/email_domain_blocks", headers=admin,
                      json={"domain": domain, "allow_with_approval": approval})
            for domain, approval in ((held_domain, True), (refused_domain, False))]
    try:
        assert [(m.status_code, m.json()["allow_with_approval"]) for m in made] == [(200, True), (200, False)]
        # Under the holding block: held, and counted in its history; under the refusing one below it: refused.
        name, _, held = register(http, app_token, email=f"someone@mail.{held_domain}")
        assert held.status_code == 200, held.text
        assert pending_listing(http, admin)[name]["approved"] is False
        refused_name, _, refused = register(http, app_token, email=f"someone@{refused_domain}")
        assert (refused.status_code, refused.json()) == (
            422, {"error": "Validation failed: Email uses a disallowed e-mail provider"})
        assert http.get("/api/v1/accounts/lookup", params={"acct": refused_name}).status_code == 404
        shown = http.get(f"/api/v1/admin/email_domain_blocks/{made[0].json()['id']}", headers=admin).json()
        assert (shown["allow_with_approval"], shown["history"][0]["uses"]) == (True, "1")
        # Another domain signs up as before.
        free_name, _, free = register(http, app_token, email=f"someone@free-{stem}.example")
        assert free.status_code == 200 and free_name not in pending_listing(http, admin)
        held_id = pending_listing(http, admin)[name]["id"]
        assert http.post(f"/api/v1/admin/accounts/{held_id}/reject", headers=admin).json() == {}
    finally:
        for answer in made:
            if answer.status_code == 200:
                http.delete(f"/api/v1/admin/email_domain_blocks/{answer.json()['id']}", headers=admin)


def test_bad_input_leaves_nothing_and_only_staff_approve(
        http: httpx.Client, gateway_url: str, app_token: str,  # noqa: F811
        staff: Callable[[str, str], tuple[User, dict[str, str]]], make_user: Callable[..., User]) -> None:  # noqa: F811
    _, admin = staff("sub_a", "Admin")
    nobody = make_user("sub_n")
    network, inside, _ = fresh_network()
    with block_of(http, admin, ip=network, severity="sign_up_requires_approval"), \
            client_from(gateway_url, inside) as client:
        name, _, too_long = register(client, app_token, reason="x" * 421)
        assert (too_long.status_code, too_long.json()) == (
            422, {"error": "Validation failed: Reason is too long (maximum is 420 characters)"})
        assert name not in pending_listing(http, admin)
        assert register(client, app_token, username=name)[2].status_code == 200  # the name was left free
        held_id = pending_listing(http, admin)[name]["id"]
        # Who may: not an account without a role, nor a token without the admin scopes.
        for change in ("approve", "reject"):
            answer = http.post(f"/api/v1/admin/accounts/{held_id}/{change}", headers=nobody.auth)
            assert answer.status_code == 403, answer.text
        for bad in ("abc", "0", str(1 << 63)):
            answer = http.post(f"/api/v1/admin/accounts/{bad}/approve", headers=admin)
            assert answer.status_code == 404 and "error" in answer.json(), bad
        assert name in pending_listing(http, admin)
        assert http.post(f"/api/v1/admin/accounts/{held_id}/reject", headers=admin).json() == {}


def test_mastodon_py_approves_and_rejects(
        http: httpx.Client, gateway_url: str, app_token: str, admin_app: dict[str, Any],  # noqa: F811
        staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    admin, admin_auth = staff("suc_a", "Admin")
    client = signed_in_client(gateway_url, admin_app, admin)
    network, inside, _ = fresh_network()
    with block_of(http, admin_auth, ip=network, severity="sign_up_requires_approval"), \
            client_from(gateway_url, inside) as applicant:
        first, _, one = register(applicant, app_token, reason="a neighbour")
        second, _, two = register(applicant, app_token)
        assert one.status_code == two.status_code == 200
        waiting = {entry.username: entry for entry in client.admin_accounts_v2(status="pending")}
        assert waiting[first].invite_request == "a neighbour" and waiting[first].approved is False
        assert client.admin_account_approve(waiting[first].id).approved is True
        client.admin_account_reject(waiting[second].id)
        still = {entry.username for entry in client.admin_accounts_v2(status="pending")}
        assert first not in still and second not in still
        assert client.account_lookup(first).username == first


@pytest.fixture(scope="module")
def graph_in_mode() -> Iterator[Callable[[str], str]]:
    """Graph services of their own, on ports of their own, in a registrations mode each (``approved``, ``none``)."""
    started: dict[str, tuple[subprocess.Popen[bytes], str]] = {}

    def start(mode: str) -> str:
        """``approved+reason``: the ``approved`` mode, where a sign-up must give a reason."""
        if mode not in started:
            port = free_port()
            env = {k: v for k, v in service_env().items() if not k.startswith("KICAU_GRAPH_")}
            env |= {"KICAU_GRAPH_PORT": str(port), "KICAU_REGISTRATIONS_MODE": mode.removesuffix("+reason"),
                    "KICAU_SIGN_UP_REASON_REQUIRED": str(mode.endswith("+reason")).lower()}
            with open(ROOT / ".stack" / "services" / f"graph-{mode}-{port}.log", "wb") as log:
                process = subprocess.Popen([sys.executable, "-m", "services.graph"], cwd=ROOT, env=env, stdout=log,
                                           stderr=subprocess.STDOUT)
            url = f"http://127.0.0.1:{port}"
            started[mode] = (process, url)
            eventually(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, timeout=120, interval=0.5)
        return started[mode][1]

    yield start
    for process, _ in started.values():
        process.terminate()
        process.wait(timeout=30)


def test_the_registrations_mode(http: httpx.Client, app_credentials: dict[str, Any],
                                graph_in_mode: Callable[[str], str],
                                staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    _, admin = staff("sud_a", "Admin")
    # The stack's own graph service is open: the instance says so.
    assert http.get("/api/v2/instance").json()["registrations"] == {
        "enabled": True, "approval_required": False, "message": None, "reason_required": False, "min_age": None}
    assert {k: http.get("/api/v1/instance").json()[k] for k in ("registrations", "approval_required")} == {
        "registrations": True, "approval_required": False}

    def sign_up_at(url: str, reason: str | None = "from the approved mode") -> tuple[str, httpx.Response]:
        username = f"sud_{uuid.uuid4().hex[:10]}"
        answer = httpx.post(f"{url}/internal/accounts", headers={
            "X-Kicau-Client": app_credentials["client_id"], "X-Kicau-Scopes": "read write"}, json={
            "username": username, "email": f"{username}@example.test", "password": PASSWORD, "agreement": True,
            **({"reason": reason} if reason is not None else {})}, timeout=30)
        return username, answer

    name, held = sign_up_at(graph_in_mode("approved"))
    assert held.status_code == 200, held.text
    answer = http.get("/api/v1/accounts/verify_credentials",
                      headers={"Authorization": f"Bearer {held.json()['access_token']}"})
    assert (answer.status_code, answer.json()) == (403, PENDING)
    entry = pending_listing(http, admin)[name]
    assert entry["invite_request"] == "from the approved mode"
    assert http.post(f"/api/v1/admin/accounts/{entry['id']}/reject", headers=admin).json() == {}

    # Where a reason is required, a sign-up without one (or with blanks alone) is refused and leaves nothing.
    asking = graph_in_mode("approved+reason")
    for reason in (None, "", "   "):
        unexplained_name, unexplained = sign_up_at(asking, reason)
        assert (unexplained.status_code, unexplained.json()) == (
            422, {"error": "Validation failed: Reason can't be blank"}), reason
        assert unexplained_name not in pending_listing(http, admin)
    explained_name, explained = sign_up_at(asking, "I sing")
    assert explained.status_code == 200, explained.text
    assert pending_listing(http, admin)[explained_name]["invite_request"] == "I sing"
    # Without a reason where none is required, as before.
    unasked_name, unasked = sign_up_at(graph_in_mode("approved"), None)
    assert unasked.status_code == 200, unasked.text
    assert pending_listing(http, admin)[unasked_name]["invite_request"] is None

    refused_name, refused = sign_up_at(graph_in_mode("none"))
    assert (refused.status_code, refused.json()) == (403, NOT_ALLOWED)
    assert http.get("/api/v1/accounts/lookup", params={"acct": refused_name}).status_code == 404

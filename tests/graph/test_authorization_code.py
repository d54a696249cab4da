"""OAuth's authorization-code grant through the gateway (services/gateway/routes/authorize.py, the rules in
services/graph/authorization.py): the way current clients log in (Mastodon 4.4 dropped the password grant).
A test plays the browser: it reads the form the page shows and sends it back as a browser would."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from mastodon import Mastodon

from stack.gateways import spawned_gateway
from tests.conftest import User

OOB = "urn:ietf:wg:oauth:2.0:oob"
CALLBACK = "https://app.example/callback?from=kicau"
HTML = {"Accept": "text/html,application/xhtml+xml"}


class _Form(HTMLParser):
    """The inputs of the page's form, as a browser would send them (the buttons aside)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.code: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "input" and found.get("name"):
            self.fields[str(found["name"])] = found.get("value") or ""
        if tag == "input" and found.get("id") == "code":
            self.code = found.get("value")


def read_page(page: str) -> _Form:
    form = _Form()
    form.feed(page)
    return form


def make_app(http: httpx.Client, redirect_uris: str = f"{CALLBACK} {OOB}",
             scopes: str = "read write") -> dict[str, Any]:
    answer = http.post("/api/v1/apps", data={"client_name": "<b>Kicau test app</b>", "redirect_uris": redirect_uris,
                                             "scopes": scopes, "website": "https://app.example"})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def approve(http: httpx.Client, user: User, params: dict[str, str], *, password: str | None = None,
            decision: str = "approve") -> httpx.Response:
    """Open the page as a browser, fill in the form and send it."""
    page = http.get("/oauth/authorize", params=params, headers=HTML)
    assert page.status_code == 200, page.text
    fields = read_page(page.text).fields
    fields.update(login=user.username, password=user.password if password is None else password, decision=decision)
    return http.post("/oauth/authorize", data=fields, headers=HTML)


def code_from(answer: httpx.Response, state: str | None = "xyz") -> str:
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(CALLBACK + "&"), location
    query = parse_qs(urlsplit(location).query)
    assert query["from"] == ["kicau"]  # the redirect URI's own query is kept
    assert query.get("state") == ([state] if state else None)
    (code,) = query["code"]
    return code


def exchange(http: httpx.Client, app: dict[str, Any], code: str, **extra: str) -> httpx.Response:
    return http.post("/oauth/token", data={"grant_type": "authorization_code", "client_id": app["client_id"],
                                           "client_secret": app["client_secret"], "code": code, **extra})


def test_a_browser_approves_an_app_and_the_app_exchanges_its_code_once(
        http: httpx.Client, make_user: Callable[..., User]) -> None:
    user = make_user("ac")
    app = make_app(http)
    verifier, challenge = pkce()
    params = {"response_type": "code", "client_id": app["client_id"], "redirect_uri": CALLBACK,
              "scope": "read write:statuses", "state": "xyz", "code_challenge": challenge,
              "code_challenge_method": "S256"}
    page = http.get("/oauth/authorize", params=params, headers=HTML)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    # The app's name is the app's, escaped; the scopes asked are listed.
    assert "&lt;b&gt;Kicau test app&lt;/b&gt;" in page.text and "<b>Kicau" not in page.text
    assert "<li>read</li>" in page.text and "<li>write:statuses</li>" in page.text
    assert {k: v for k, v in read_page(page.text).fields.items() if k in params} == params

    code = code_from(approve(http, user, params))
    token = exchange(http, app, code, redirect_uri=CALLBACK, code_verifier=verifier)
    assert token.status_code == 200, token.text
    granted = token.json()
    assert granted["token_type"] == "Bearer" and set(granted["scope"].split()) == {"read", "write:statuses"}
    auth = {"Authorization": f"Bearer {granted['access_token']}"}
    assert http.get("/api/v1/accounts/verify_credentials", headers=auth).json()["id"] == user.id
    assert http.post("/api/v1/statuses", headers=auth, json={"status": "logged in by code"}).status_code == 200
    # write:statuses only: following someone is out of its scopes.
    assert http.post(f"/api/v1/accounts/{user.id}/follow", headers=auth).status_code == 403
    # A code is spent once.
    again = exchange(http, app, code, redirect_uri=CALLBACK, code_verifier=verifier)
    assert again.status_code == 400 and "invalid" in again.json()["error"]


def test_a_code_is_given_only_for_what_it_was_issued(http: httpx.Client, make_user: Callable[..., User]) -> None:
    """A wrong verifier, none, another redirect URI or another app's credentials: each refused with 400, and
    each spends the code (RFC 6749 10.5: a code tried wrongly is not tried again)."""
    user = make_user("acw")
    app, other_app = make_app(http), make_app(http)
    verifier, challenge = pkce()
    params = {"response_type": "code", "client_id": app["client_id"], "redirect_uri": CALLBACK, "state": "xyz",
              "code_challenge": challenge, "code_challenge_method": "S256"}
    tries: list[Callable[[str], httpx.Response]] = [
        lambda code: exchange(http, app, code, redirect_uri=CALLBACK, code_verifier=pkce()[0]),
        lambda code: exchange(http, app, code, redirect_uri=CALLBACK),
        lambda code: exchange(http, app, code, redirect_uri=OOB, code_verifier=verifier),
        lambda code: exchange(http, other_app, code, redirect_uri=CALLBACK, code_verifier=verifier),
    ]
    for wrong in tries:
        code = code_from(approve(http, user, params))
        refused = wrong(code)
        assert refused.status_code == 400 and refused.json()["error"], refused.text
        assert exchange(http, app, code, redirect_uri=CALLBACK, code_verifier=verifier).status_code == 400
    assert exchange(http, app, "not a code", redirect_uri=CALLBACK).status_code == 400
    assert exchange(http, app, "").status_code == 400
    # A code without a challenge takes no verifier, and the scope defaults to read.
    code = code_from(approve(http, user, {"response_type": "code", "client_id": app["client_id"],
                                          "redirect_uri": CALLBACK}), state=None)
    token = exchange(http, app, code, redirect_uri=CALLBACK)
    assert token.status_code == 200 and token.json()["scope"] == "read", token.text
    # The client is authenticated as with every grant.
    wrong_secret = http.post("/oauth/token", data={"grant_type": "authorization_code", "client_id": app["client_id"],
                                                    "client_secret": "wrong", "code": "x"})
    assert wrong_secret.status_code == 401


@pytest.mark.parametrize(("change", "message"), [
    ({"client_id": "unknown"}, "unknown client"),
    ({"redirect_uri": "https://evil.example/"}, "redirect uri"),
    ({"response_type": "token"}, "response type"),
    ({"scope": "read follow"}, "scope"),
    ({"scope": "admin:read"}, "scope"),
    ({"code_challenge_method": "plain"}, "S256"),
    ({"code_challenge": "too-short"}, "S256"),
])
def test_a_bad_request_is_refused_and_never_redirected(http: httpx.Client, make_user: Callable[..., User],
                                                       change: dict[str, str], message: str) -> None:
    app = make_app(http)
    params = {"response_type": "code", "client_id": app["client_id"], "redirect_uri": CALLBACK, "state": "s",
              "code_challenge": pkce()[1], "code_challenge_method": "S256", **change}
    as_api = http.get("/oauth/authorize", params=params)
    assert as_api.status_code == 400 and message in as_api.json()["error"], as_api.text
    as_browser = http.get("/oauth/authorize", params=params, headers=HTML)
    assert as_browser.status_code == 400 and as_browser.headers["content-type"].startswith("text/html")
    user = make_user("acb")
    for decision in ("approve", "deny"):
        sent = http.post("/oauth/authorize", data={**params, "login": user.username, "password": user.password,
                                                  "decision": decision})
        assert sent.status_code == 400 and "location" not in sent.headers, sent.text


def test_a_wrong_password_shows_the_form_again_and_deny_tells_the_app(
        http: httpx.Client, make_user: Callable[..., User]) -> None:
    user = make_user("acp")
    app = make_app(http)
    params = {"response_type": "code", "client_id": app["client_id"], "redirect_uri": CALLBACK, "state": "xyz"}
    wrong = approve(http, user, params, password="not the password")
    assert wrong.status_code == 401 and "Invalid username" in wrong.text
    again = read_page(wrong.text).fields
    assert again["login"] == user.username and again["password"] == "" and again["state"] == "xyz"
    # As an API client (no text/html): the same refusal as JSON.
    as_api = http.post("/oauth/authorize", data={**params, "login": user.username, "password": "nope"})
    assert as_api.status_code == 401 and "Invalid username" in as_api.json()["error"]
    missing = http.post("/oauth/authorize", data=params)
    assert missing.status_code == 401 and missing.json()["error"]
    # The e-mail address signs in too.
    by_email = http.post("/oauth/authorize", data={**params, "login": user.email, "password": user.password})
    code_from(by_email)
    denied = approve(http, user, params, decision="deny")
    assert denied.status_code == 302
    query = parse_qs(urlsplit(denied.headers["location"]).query)
    assert (query["error"], query["state"], "code" in query) == (["access_denied"], ["xyz"], False)


def test_out_of_band_shows_the_code_to_copy(http: httpx.Client, make_user: Callable[..., User]) -> None:
    user = make_user("aco")
    app = make_app(http, redirect_uris=OOB)
    # The app's only redirect URI is used when none is given.
    shown = approve(http, user, {"response_type": "code", "client_id": app["client_id"], "scope": "read"})
    assert shown.status_code == 200, shown.text
    code = read_page(shown.text).code
    assert code
    token = exchange(http, app, code, redirect_uri=OOB)
    assert token.status_code == 200, token.text
    denied = approve(http, user, {"response_type": "code", "client_id": app["client_id"]}, decision="deny")
    assert denied.status_code == 403 and "location" not in denied.headers
    # An app with several redirect URIs must say which.
    several = make_app(http)
    assert http.get("/oauth/authorize", params={"response_type": "code", "client_id": several["client_id"]}
                    ).status_code == 400


def test_mastodon_py_logs_in_with_the_code_flow(gateway_url: str, http: httpx.Client,
                                                make_user: Callable[..., User]) -> None:
    """Mastodon.py's own code flow (``auth_request_url``, then ``log_in(code=...)``), the only one it offers
    against Mastodon 4.4 and later; the browser's part played by the test."""
    user = make_user("acm")
    client_id, client_secret = Mastodon.create_app("kicau-code-flow", api_base_url=gateway_url,
                                                   redirect_uris=CALLBACK, scopes=["read", "write"])
    client = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=gateway_url)
    url = client.auth_request_url(redirect_uris=CALLBACK, scopes=["read", "write"], state="from-mastodon-py")
    page = http.get(url, headers=HTML)
    assert page.status_code == 200, page.text
    fields = {**read_page(page.text).fields, "login": user.email, "password": user.password, "decision": "approve"}
    sent = http.post("/oauth/authorize", data=fields, headers=HTML)
    code = code_from(sent, state="from-mastodon-py")
    client.log_in(code=code, redirect_uri=CALLBACK, scopes=["read", "write"])
    assert client.account_verify_credentials()["id"] == user.id
    assert client.status_post("posted after the code flow")["content"] == "<p>posted after the code flow</p>"


def test_an_https_instance_publishes_its_authorization_server_metadata(http: httpx.Client, tmp_path: Path) -> None:
    """RFC 8414 metadata, as Mastodon 4.3+ serves it, where its endpoints are https; a local http instance answers
    404, which keeps Mastodon.py on the usual paths (it refuses endpoints found there that are not https)."""
    missing = http.get("/.well-known/oauth-authorization-server")
    assert missing.status_code == 404 and set(missing.json()) == {"error"}
    with spawned_gateway(tmp_path, public_url="https://kicau.example") as gateway:
        found = httpx.get(f"{gateway.url}/.well-known/oauth-authorization-server", timeout=30)
    assert found.status_code == 200, found.text
    metadata = found.json()
    assert metadata["issuer"] == "https://kicau.example/"
    assert metadata["authorization_endpoint"] == "https://kicau.example/oauth/authorize"
    assert metadata["token_endpoint"] == "https://kicau.example/oauth/token"
    assert metadata["userinfo_endpoint"] == "https://kicau.example/oauth/userinfo"
    assert {"authorization_code", "password", "client_credentials"} == set(metadata["grant_types_supported"])
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert {"read", "write:statuses", "profile"} <= set(metadata["scopes_supported"])

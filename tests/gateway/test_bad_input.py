"""Every bad input gets a 4xx with a Mastodon-style ``{"error": "..."}`` body, never a 5xx, and changes
nothing."""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Callable, Iterator
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
        # Quote posts (kicau/quotes.py): a status that does not exist, or no id at all, is never posted without it.
        ({"json": {"status": "hi", "quoted_status_id": "1"}}, 422),
        ({"data": {"status": "hi", "quote_id": "1"}}, 422),
        ({"json": {"status": "hi", "quoted_status_id": "not-an-id"}}, 422),
        ({"json": {"status": "hi", "quote_approval_policy": "friends"}}, 422),
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


# The tests below send hundreds of authenticated requests; spread over a few accounts they stay inside the
# per-account rate limit (300 requests / 5 minutes) of the stack's gateway.
@pytest.fixture(scope="module")
def accounts(make_user: Callable[..., User]) -> Iterator[User]:
    made: list[User] = []

    def cycle() -> Iterator[User]:
        while True:
            if len(made) < 8:
                made.append(make_user("bad"))
                yield made[-1]
            else:
                yield from made

    return cycle()


@pytest.fixture
def someone(accounts: Iterator[User]) -> User:
    return next(accounts)


# --- Text that is hard for software, not for people: it comes back exactly as sent. -------------------------

TRICKY_TEXTS = [
    "🐦🏳️‍🌈👩🏽‍💻🇮🇩 family: 👨‍👩‍👧‍👦",  # astral plane, ZWJ sequences, flags, skin tones
    "שלום עולם — مرحبا بالعالم",  # right-to-left scripts in one line
    "\u202eevil\u202c \u200fRLM\u200e LRM",  # bidi overrides and marks
    "e\u0301 n\u0303 Z\u0335\u0321\u034e\u0324a\u0334\u031bl\u0337g\u0336o\u0338",  # combining marks (Zalgo)
    "Å vs A\u030a: NFC and NFD are different strings",  # not normalised away
    "<b>not html</b> & \"quotes\" 'single'",  # escaped in content, verbatim in text
    "\ufeffBOM, \u200bzero-width, \u00a0nbsp, tab\tend",
]


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_unicode_round_trips_unchanged(http: httpx.Client, someone: User, text: str) -> None:
    spoiler = text[::-1][:40]
    posted = http.post("/api/v1/statuses", headers=someone.auth, json={"status": text, "spoiler_text": spoiler})
    assert posted.status_code == 200, posted.text
    status_id = posted.json()["id"]
    expected_content = "<p>" + html.escape(text, quote=True) + "</p>"
    fetched = http.get(f"/api/v1/statuses/{status_id}").json()
    assert fetched["content"] == expected_content == posted.json()["content"]
    assert fetched["spoiler_text"] == spoiler
    listed = http.get(f"/api/v1/accounts/{someone.id}/statuses", params={"limit": 40}).json()
    assert [s["content"] for s in listed if s["id"] == status_id] == [expected_content]
    # Deleting returns the source text (for "delete and redraft"): byte for byte what was sent.
    deleted = http.delete(f"/api/v1/statuses/{status_id}", headers=someone.auth)
    assert deleted.status_code == 200 and deleted.json()["text"] == text


# --- NUL bytes: never valid in any string a client sends. ------------------------------------------------------

@pytest.fixture(scope="module")
def app_token(http: httpx.Client, app_credentials: dict[str, Any]) -> str:
    answer = http.post("/oauth/token", data={"grant_type": "client_credentials",
                                             "client_id": app_credentials["client_id"],
                                             "client_secret": app_credentials["client_secret"], "scope": "read write"})
    return str(answer.json()["access_token"])


def registration(name: str = "", **fields: Any) -> dict[str, Any]:
    name = name or f"bad_{uuid.uuid4().hex[:10]}"
    return {"username": name, "email": f"{name}@example.test", "password": "long enough", "agreement": "1",
            **fields}


@pytest.mark.parametrize("encoding", ["json", "data"])
@pytest.mark.parametrize(
    "field", ["status", "spoiler_text", "visibility", "language", "in_reply_to_id"],
)
def test_nul_in_status_fields(http: httpx.Client, someone: User, field: str, encoding: str) -> None:
    before = status_count(http, someone)
    body = {"status": "fine", field: "a\x00b"}
    answer = http.post("/api/v1/statuses", headers=someone.auth, **{encoding: body})  # type: ignore[arg-type]
    assert 400 <= answer.status_code < 500, answer.text
    assert_error(answer, answer.status_code)
    assert status_count(http, someone) == before


@pytest.mark.parametrize("encoding", ["json", "data"])
@pytest.mark.parametrize("field", ["username", "email", "password", "locale"])
def test_nul_in_registration_fields(http: httpx.Client, app_token: str, field: str, encoding: str) -> None:
    name = f"nul_{uuid.uuid4().hex[:10]}"
    form = registration(name)
    form[field] = form[field][:3] + "\x00" + form[field][3:] if field != "locale" else "e\x00n"
    answer = http.post("/api/v1/accounts", headers={"Authorization": f"Bearer {app_token}"},
                       **{encoding: form})  # type: ignore[arg-type]
    assert 400 <= answer.status_code < 500, answer.text
    assert_error(answer, answer.status_code)
    for candidate in (name, name[:3]):
        assert_error(http.get("/api/v1/accounts/lookup", params={"acct": candidate}), 404)


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/api/v1/apps", {"client_name": "a\x00b"}),
        ("/api/v1/apps", {"client_name": "ok", "scopes": "read\x00"}),
        ("/api/v1/apps", {"client_name": "ok", "website": "https://x\x00.test"}),
        ("/api/v1/apps", {"client_name": "ok", "redirect_uris": "urn:\x00"}),
        ("/oauth/token", {"grant_type": "pass\x00word", "client_id": "x", "client_secret": "y"}),
        ("/oauth/token", {"grant_type": "password", "client_id": "x\x00", "client_secret": "y",
                          "username": "a", "password": "b"}),
        ("/oauth/token", {"grant_type": "password", "client_id": "x", "client_secret": "y",
                          "username": "a\x00", "password": "b\x00"}),
        ("/oauth/revoke", {"client_id": "x", "client_secret": "y", "token": "t\x00"}),
    ],
)
@pytest.mark.parametrize("encoding", ["json", "data"])
def test_nul_in_oauth_fields(http: httpx.Client, path: str, form: dict[str, str], encoding: str) -> None:
    answer = http.post(path, **{encoding: form})  # type: ignore[arg-type]
    # OAuth's own endpoints answer a malformed request with 400 (invalid_request), the API's routes with 422.
    assert answer.status_code == (400 if path.startswith("/oauth/") else 422), answer.text
    assert_error(answer, answer.status_code)


@pytest.mark.parametrize("field", ["client_id", "redirect_uri", "scope", "state", "code_challenge_method"])
def test_nul_in_the_authorization_request_is_oauths_invalid_request(http: httpx.Client,
                                                                    app_credentials: dict[str, Any],
                                                                    field: str) -> None:
    """A random-seed schemathesis run found ``GET /oauth/authorize`` answered a NUL with 422 (2026-12-07)."""
    asked = {"response_type": "code", "client_id": app_credentials["client_id"],
             "redirect_uri": "urn:ietf:wg:oauth:2.0:oob", "scope": "read", "state": "s",
             "code_challenge_method": "S256"}
    bad = {**asked, field: asked[field] + "\x00"}
    assert_error(http.get("/oauth/authorize", params=bad), 400)
    assert_error(http.post("/oauth/authorize", data={**bad, "decision": "deny"}), 400)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v2/search", {"q": "bad\x00", "type": "accounts"}),
        ("/api/v2/search", {"q": "\x00"}),
        ("/api/v2/search", {"q": "ok", "type": "acc\x00ounts"}),
        ("/api/v1/accounts/lookup", {"acct": "bad\x00"}),
        ("/api/v1/accounts/lookup", {"acct": "\x00@example.test"}),
        ("/api/v1/timelines/home", {"max_id": "1\x00"}),
        ("/api/v1/timelines/home", {"limit": "5\x00"}),
    ],
)
def test_nul_in_query_parameters(http: httpx.Client, someone: User, path: str, params: dict[str, str]) -> None:
    answer = http.get(path, params=params, headers=someone.auth)
    assert 400 <= answer.status_code < 500, answer.text
    assert_error(answer, answer.status_code)


# --- 1 MB bodies: refused on every POST route with 413, declared or streamed. ----------------------------------

MEGABYTE = 1024 * 1024


def post_routes(someone: User, app_token: str) -> list[tuple[str, dict[str, str]]]:
    return [
        ("/api/v1/apps", {}),
        ("/oauth/token", {}),
        ("/oauth/revoke", {}),
        ("/api/v1/accounts", {"Authorization": f"Bearer {app_token}"}),
        ("/api/v1/statuses", someone.auth),
        (f"/api/v1/accounts/{someone.id}/follow", someone.auth),
        (f"/api/v1/accounts/{someone.id}/unfollow", someone.auth),
    ]


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_megabyte_bodies_are_refused(http: httpx.Client, someone: User, app_token: str, content_type: str) -> None:
    before = status_count(http, someone)
    for path, headers in post_routes(someone, app_token):
        body = b"status=" + b"x" * MEGABYTE if "form" in content_type else b'{"status": "' + b"x" * MEGABYTE + b'"}'
        answer = http.post(path, headers={**headers, "Content-Type": content_type}, content=body)
        assert_error(answer, 413)

        def chunks(size: int = MEGABYTE) -> Iterator[bytes]:
            for _ in range(size // 65536 + 1):
                yield b"x" * 65536

        # No Content-Length (chunked): the limit holds while reading.
        streamed = http.post(path, headers={**headers, "Content-Type": content_type}, content=chunks())
        assert_error(streamed, 413)
    assert status_count(http, someone) == before


# --- Ids: negative, zero, huge, not numbers — in every path and cursor: 404 or 400, never 5xx. ------------------

BAD_IDS = ["-1", "-9223372036854775808", "0", "9223372036854775808", "18446744073709551616",
           "9" * 30, "9" * 5000, "1e3", "0x10", "1.5", "NaN", "%00", "%20", "..%2F..%2Fetc"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_in_paths(http: httpx.Client, someone: User, bad: str) -> None:
    before = status_count(http, someone)
    for method, template in [
        ("GET", "/api/v1/statuses/{}"), ("DELETE", "/api/v1/statuses/{}"), ("GET", "/api/v1/accounts/{}"),
        ("GET", "/api/v1/accounts/{}/statuses"), ("GET", "/api/v1/accounts/{}/followers"),
        ("GET", "/api/v1/accounts/{}/following"), ("POST", "/api/v1/accounts/{}/follow"),
        ("POST", "/api/v1/accounts/{}/unfollow"),
    ]:
        answer = http.request(method, template.format(bad), headers=someone.auth)
        assert answer.status_code in (400, 404), (method, template, answer.status_code, answer.text)
        assert_error(answer, answer.status_code)
    assert status_count(http, someone) == before


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_in_cursors(http: httpx.Client, someone: User, bad: str) -> None:
    for path in ("/api/v1/timelines/home", f"/api/v1/accounts/{someone.id}/statuses"):
        for cursor in ("max_id", "since_id", "min_id"):
            answer = http.get(f"{path}?{cursor}={bad}", headers=someone.auth)
            if bad == "0":  # the smallest id is a valid cursor (nothing is older)
                assert answer.status_code == 200, (path, cursor, answer.status_code, answer.text)
                continue
            assert answer.status_code in (400, 404), (path, cursor, answer.status_code, answer.text)
            assert_error(answer, answer.status_code)
    for path in (f"/api/v1/accounts/{someone.id}/followers", f"/api/v1/accounts/{someone.id}/following"):
        answer = http.get(f"{path}?max_id={bad}")
        if bad == "0":
            assert answer.status_code == 200, (path, answer.status_code, answer.text)
            continue
        assert answer.status_code in (400, 404), (path, answer.status_code, answer.text)
        assert_error(answer, answer.status_code)
    # Ids that cannot be records are dropped from a relationships query, never an error.
    answer = http.get(f"/api/v1/accounts/relationships?id[]={bad}&id[]={someone.id}", headers=someone.auth)
    assert answer.status_code == 200 and [r["id"] for r in answer.json()][-1] == someone.id
    # A reply to a status that cannot exist creates nothing.
    before = status_count(http, someone)
    answer = http.post("/api/v1/statuses", headers=someone.auth, json={"status": "r", "in_reply_to_id": bad})
    assert answer.status_code in (404, 422), (answer.status_code, answer.text)
    assert_error(answer, answer.status_code)
    assert status_count(http, someone) == before


@pytest.mark.parametrize("limit", ["-1", "0", "99999999999999999999", "9" * 5000, "1.5", "ten", "%00"])
def test_odd_limits(http: httpx.Client, someone: User, limit: str) -> None:
    for path in ("/api/v1/timelines/home", f"/api/v1/accounts/{someone.id}/statuses",
                 f"/api/v1/accounts/{someone.id}/followers", "/api/v2/search?q=someone"):
        sep = "&" if "?" in path else "?"
        answer = http.get(f"{path}{sep}limit={limit}", headers=someone.auth)
        # Out-of-range numbers are clamped (Mastodon does); what is not a number is a 400.
        assert answer.status_code in (200, 400), (path, answer.status_code, answer.text)
        if answer.status_code == 400:
            assert_error(answer, 400)


# --- Content types: what is neither a form nor JSON is a 415. -----------------------------------------------------

@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b"status=hi"),
        ("application/xml", b"<status>hi</status>"),
        ("text/xml", b"<status>hi</status>"),
        ("application/octet-stream", b"\x00\x01\x02"),
        ("image/png", b"\x89PNG\r\n"),
        ("", b"status=hi"),
    ],
)
def test_wrong_content_types(http: httpx.Client, someone: User, app_token: str, content_type: str,
                             body: bytes) -> None:
    before = status_count(http, someone)
    for path, headers in post_routes(someone, app_token):
        answer = http.post(path, headers={**headers, "Content-Type": content_type}, content=body)
        assert_error(answer, 415)
    assert status_count(http, someone) == before


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\nContent-Disposition: form-data; name=\"status\"\r\n\r\nhi\r\n--x--\r\n"),
        ("multipart/form-data; boundary=x", b"garbage without any boundary"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n"
                                            b"\r\nfile\r\n--x--\r\n"),
        ("application/x-www-form-urlencoded", b"status=%FF%FE%00&&&=&%%%"),
        ("application/json", b'{"status": "\xff\xfe invalid utf-8"}'),
        ("application/json", b"[" * 60000 + b"]" * 60000),
        ("application/json", b'{"status": "hi", "sensitive": 1e400}'),
        ("application/json; charset=latin-1", b'{"status": 1}'),
    ],
)
def test_malformed_bodies(http: httpx.Client, someone: User, content_type: str, body: bytes) -> None:
    before = status_count(http, someone)
    answer = http.post("/api/v1/statuses", headers={**someone.auth, "Content-Type": content_type}, content=body)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert_error(answer, answer.status_code)
    assert status_count(http, someone) == before


# --- JSON of the wrong type, for every field a route reads. ---------------------------------------------------------

WRONG_VALUES: list[Any] = [123, 1.5, True, [], ["a"], {}, {"a": 1}]


def _wrong_for(field: str) -> list[Any]:
    """The values of WRONG_VALUES that are actually wrong for ``field``: a boolean is the right type for a flag,
    and an empty list or object asks for no media and no poll."""
    if field in ("sensitive", "agreement"):
        return [v for v in WRONG_VALUES if v is not True]
    if field in ("media_ids", "poll"):
        return [v for v in WRONG_VALUES if v]
    return WRONG_VALUES


@pytest.mark.parametrize(
    ("field", "value"),
    [(f, v) for f in ["status", "visibility", "spoiler_text", "language", "sensitive", "in_reply_to_id",
                      "media_ids", "poll"] for v in _wrong_for(f)],
    ids=repr,
)
def test_wrong_json_types_for_statuses(http: httpx.Client, someone: User, field: str, value: Any) -> None:
    before = status_count(http, someone)
    answer = http.post("/api/v1/statuses", headers=someone.auth, json={"status": "typed", field: value})
    assert 400 <= answer.status_code < 500, (field, value, answer.status_code, answer.text)
    assert_error(answer, answer.status_code)
    assert status_count(http, someone) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [(f, v) for f in ["username", "email", "password", "agreement", "locale"] for v in _wrong_for(f)],
    ids=repr,
)
def test_wrong_json_types_for_registration(http: httpx.Client, app_token: str, field: str, value: Any) -> None:
    name = f"typ_{uuid.uuid4().hex[:10]}"
    answer = http.post("/api/v1/accounts", headers={"Authorization": f"Bearer {app_token}"},
                       json={**registration(name), field: value})
    assert 400 <= answer.status_code < 500, (field, value, answer.status_code, answer.text)
    assert_error(answer, answer.status_code)
    assert_error(http.get("/api/v1/accounts/lookup", params={"acct": name}), 404)


OAUTH_FIELDS = [
    ("/api/v1/apps", "client_name"), ("/api/v1/apps", "scopes"), ("/api/v1/apps", "website"),
    ("/api/v1/apps", "redirect_uris"), ("/oauth/token", "grant_type"), ("/oauth/token", "client_id"),
    ("/oauth/token", "client_secret"), ("/oauth/token", "username"), ("/oauth/token", "password"),
    ("/oauth/token", "scope"), ("/oauth/revoke", "token"), ("/oauth/revoke", "client_id"),
    ("/oauth/revoke", "client_secret"),
]
# Lists are accepted where OAuth takes space-separated lists (x[]); an empty one there means the default.
LIST_FIELDS = ("scopes", "scope", "redirect_uris")


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [(p, f, v) for p, f in OAUTH_FIELDS for v in WRONG_VALUES
     if v != ["a"] and not (v == [] and f in LIST_FIELDS)],
    ids=repr,
)
def test_wrong_json_types_for_oauth(http: httpx.Client, app_credentials: dict[str, Any], someone: User, path: str,
                                    field: str, value: Any) -> None:
    body: dict[str, Any] = {
        "/api/v1/apps": {"client_name": "typed", "scopes": "read"},
        "/oauth/token": {"grant_type": "password", "client_id": app_credentials["client_id"],
                         "client_secret": app_credentials["client_secret"], "username": someone.email,
                         "password": someone.password, "scope": "read"},
        "/oauth/revoke": {"client_id": app_credentials["client_id"],
                          "client_secret": app_credentials["client_secret"], "token": "whatever"},
    }[path]
    answer = http.post(path, json={**body, field: value})
    # OAuth's own endpoints answer a malformed request with 400 (invalid_request), checked in the graph service as
    # in the gateway (until 2026-12-07 the graph's type checks answered these with 422); the API's routes 422.
    assert answer.status_code == (400 if path.startswith("/oauth/") else 422), \
        (path, field, value, answer.status_code, answer.text)
    assert_error(answer, answer.status_code)


def test_a_malformed_authorization_is_oauths_invalid_request(http: httpx.Client,
                                                             app_credentials: dict[str, Any]) -> None:
    """A field of the authorization request or its approval that is not a string answers 400, in the form (GET)
    and the decision (POST) alike; it was taken as missing (a scope of 5 read as the default scope)."""
    asked = {"response_type": "code", "client_id": app_credentials["client_id"],
             "redirect_uri": "urn:ietf:wg:oauth:2.0:oob", "scope": "read", "state": "s"}
    assert http.request("GET", "/oauth/authorize", json=asked).status_code == 200  # a JSON body is read
    for field in ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge_method"):
        for value in (5, {"a": "b"}, [1]):
            answer = http.request("GET", "/oauth/authorize", json={**asked, field: value})
            assert answer.status_code == 400, (field, value, answer.status_code, answer.text)
            assert_error(answer, 400)
    for field in ("client_id", "scope", "login", "password", "decision"):
        answer = http.post("/oauth/authorize", json={**asked, "login": "a", "password": "b", "decision": "approve",
                                                     field: 5})
        assert answer.status_code == 400, (field, answer.status_code, answer.text)
        assert_error(answer, 400)
    # Unknown parameters are ignored, as OAuth asks: the form is shown.
    shown = http.get("/oauth/authorize", params={**asked, "something_else": "5"})
    assert shown.status_code == 200, shown.text


@pytest.mark.parametrize(
    ("path", "field"),
    [("/api/v1/statuses", "status"), ("/api/v1/statuses", "spoiler_text"), ("/api/v1/apps", "client_name"),
     ("/oauth/token", "username"), ("/api/v1/accounts", "username")],
)
def test_lone_surrogates_are_refused(http: httpx.Client, someone: User, app_token: str, path: str,
                                     field: str) -> None:
    # Valid JSON (an escaped lone surrogate), but not a Unicode string: no store can keep it.
    before = status_count(http, someone)
    headers = {"/api/v1/statuses": someone.auth, "/api/v1/accounts": {"Authorization": f"Bearer {app_token}"}}
    body = {"status": "ok", "client_name": "ok", "grant_type": "password", "client_id": "x", "client_secret": "y",
            "password": "long enough", **(registration() if path == "/api/v1/accounts" else {})}
    raw = json.dumps({**body, field: "x\ud800y"}).encode()
    answer = http.post(path, headers={**headers.get(path, {}), "Content-Type": "application/json"}, content=raw)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert_error(answer, answer.status_code)
    assert status_count(http, someone) == before


def test_replies_need_a_status_to_reply_to(http: httpx.Client, someone: User) -> None:
    parent = http.post("/api/v1/statuses", headers=someone.auth, json={"status": "parent"}).json()["id"]
    reply = http.post("/api/v1/statuses", headers=someone.auth, json={"status": "reply", "in_reply_to_id": parent})
    assert reply.status_code == 200 and reply.json()["in_reply_to_id"] == parent
    # A well-formed id of nothing, given as a string or a number, and a deleted parent: 422, nothing created.
    before = status_count(http, someone)
    assert_error(http.post("/api/v1/statuses", headers=someone.auth, json={"status": "r", "in_reply_to_id": 123}), 422)
    assert_error(http.post("/api/v1/statuses", headers=someone.auth, data={"status": "r", "in_reply_to_id": "5"}), 422)
    assert http.delete(f"/api/v1/statuses/{parent}", headers=someone.auth).status_code == 200
    assert_error(http.post("/api/v1/statuses", headers=someone.auth,
                           json={"status": "r", "in_reply_to_id": parent}), 422)
    assert status_count(http, someone) == before - 1


# --- Regressions found by schemathesis (tests/gateway/test_schemathesis.py). --------------------------------------

def test_non_ascii_client_secret_is_a_401(http: httpx.Client, app_credentials: dict[str, Any]) -> None:
    # secrets.compare_digest refuses non-ASCII str: this used to be a 503.
    for path, extra in (("/oauth/token", {"grant_type": "client_credentials"}), ("/oauth/revoke", {"token": "t"})):
        answer = http.post(path, json={"client_id": app_credentials["client_id"], "client_secret": "sécret✓",
                                       **extra})
        assert_error(answer, 401)


@pytest.mark.parametrize("field", ["username", "email"])
def test_trailing_newline_is_not_part_of_a_valid_name(http: httpx.Client, app_token: str, field: str) -> None:
    name = f"nl_{uuid.uuid4().hex[:10]}"
    form = registration(name)
    form[field] += "\n"
    assert_error(http.post("/api/v1/accounts", headers={"Authorization": f"Bearer {app_token}"}, json=form), 422)


def test_method_not_allowed_names_every_method_of_the_path(http: httpx.Client) -> None:
    answer = http.patch("/api/v1/statuses/1")
    assert_error(answer, 405)
    assert {m.strip() for m in answer.headers["Allow"].split(",")} == {"GET", "PUT", "DELETE"}


def test_search_limit_is_checked_without_a_query(http: httpx.Client) -> None:
    assert_error(http.get("/api/v2/search?limit=ten"), 400)
    assert_error(http.get("/api/v2/search", params={"q": "x" * 301}), 422)


def test_language_codes_are_ascii(http: httpx.Client, someone: User) -> None:
    assert_error(http.post("/api/v1/statuses", headers=someone.auth, json={"status": "hi", "language": "日本"}), 422)
    ok = http.post("/api/v1/statuses", headers=someone.auth, json={"status": "hi", "language": "pt-BR"})
    assert ok.status_code == 200 and ok.json()["language"] == "pt-BR"


def test_oauth_lists_of_non_strings_are_refused(http: httpx.Client) -> None:
    assert_error(http.post("/api/v1/apps", json={"client_name": "x", "redirect_uris": [{}]}), 422)
    assert_error(http.post("/api/v1/apps", json={"client_name": "x", "scopes": [1, 2]}), 422)

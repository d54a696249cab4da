"""Rate limits, for real: a second gateway with tiny limits runs against the same services and Redis; clients
on distinct loopback addresses (127.x.y.z) stand for distinct IPs, and 127.0.0.1 stays exempt from the per-IP
buckets as loopback is by default. Every limited answer carries X-RateLimit-*; beyond the limit it is a 429."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from mastodon import Mastodon, MastodonRatelimitError

from stack.gateways import Gateway, spawned_gateway
from tests.conftest import User

ACCOUNT, IP, LOGIN, REGISTRATION = 5, 4, 3, 2
WINDOW = 3600


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with spawned_gateway(
        tmp_path_factory.mktemp("ratelimit-gateway"),
        rate_limit_account_requests=str(ACCOUNT), rate_limit_ip_requests=str(IP),
        rate_limit_login_requests=str(LOGIN), rate_limit_registration_requests=str(REGISTRATION),
        rate_limit_window_seconds=str(WINDOW), rate_limit_login_window_seconds=str(WINDOW),
        rate_limit_registration_window_seconds=str(WINDOW),
        rate_limit_exempt_networks='["127.0.0.1/32"]',
    ) as gateway:
        yield gateway


def fresh_ip() -> str:
    """A loopback address no earlier run used (the counters live in the shared Redis for a whole window)."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


def client_from(gateway: Gateway, address: str) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, timeout=30, transport=httpx.HTTPTransport(local_address=address))


def assert_limited_headers(answer: httpx.Response, limit: int, remaining: int) -> datetime:
    assert answer.headers["X-RateLimit-Limit"] == str(limit), answer.headers
    assert answer.headers["X-RateLimit-Remaining"] == str(remaining), answer.headers
    reset = datetime.fromisoformat(answer.headers["X-RateLimit-Reset"])  # ISO 8601, e.g. 2026-01-01T10:05:00.000000Z
    assert reset.tzinfo is not None
    assert time.time() < reset.timestamp() <= time.time() + WINDOW + 1
    return reset


def exhaust(send: Callable[[], httpx.Response], limit: int) -> list[httpx.Response]:
    """``limit`` + 1 requests in one fixed window (retried once if a window boundary fell in between)."""
    for _ in range(2):
        answers = [send() for _ in range(limit + 1)]
        if len({a.headers.get("X-RateLimit-Reset") for a in answers}) == 1:
            return answers
    raise AssertionError("two window boundaries in a row")


def assert_too_many(answer: httpx.Response, limit: int) -> None:
    assert answer.status_code == 429, (answer.status_code, answer.text)
    assert answer.json() == {"error": "Too many requests"}
    assert_limited_headers(answer, limit, 0)
    assert 1 <= int(answer.headers["Retry-After"]) <= WINDOW


def test_per_account_limit_and_other_accounts_unaffected(gateway: Gateway, make_user: Callable[..., User],
                                                         http: httpx.Client) -> None:
    first, second = make_user("rl"), make_user("rl")
    with client_from(gateway, fresh_ip()) as client:
        answers = exhaust(lambda: client.get("/api/v1/accounts/verify_credentials", headers=first.auth), ACCOUNT)
        for n, answer in enumerate(answers[:-1]):
            assert answer.status_code == 200, answer.text
            assert_limited_headers(answer, ACCOUNT, ACCOUNT - n - 1)
        assert_too_many(answers[-1], ACCOUNT)
        # A write beyond the limit is refused before it reaches the post service: nothing is created.
        before = http.get(f"/api/v1/accounts/{first.id}").json()["statuses_count"]
        assert_too_many(client.post("/api/v1/statuses", headers=first.auth, data={"status": "over"}), ACCOUNT)
        # The home timeline is a hot route (kicau/hot_routes.py), counted by the same limiter.
        assert_too_many(client.get("/api/v1/timelines/home", headers=first.auth), ACCOUNT)
        assert http.get(f"/api/v1/accounts/{first.id}").json()["statuses_count"] == before
        # Another account on the same connection and address has its own bucket.
        other = client.get("/api/v1/accounts/verify_credentials", headers=second.auth)
        assert other.status_code == 200
        assert_limited_headers(other, ACCOUNT, ACCOUNT - 1)
    # The bucket is the account's, not the address's nor the token's: a new address and a second token of the
    # same account are still refused.
    creds = http.post("/api/v1/apps", data={"client_name": "rl", "scopes": "read write"}).json()
    token = http.post("/oauth/token", data={
        "grant_type": "password", "client_id": creds["client_id"], "client_secret": creds["client_secret"],
        "username": first.email, "password": first.password, "scope": "read"}).json()["access_token"]
    with client_from(gateway, fresh_ip()) as client:
        assert_too_many(client.get("/api/v1/accounts/verify_credentials",
                                   headers={"Authorization": f"Bearer {token}"}), ACCOUNT)


def test_per_ip_limit_for_unauthenticated_requests(gateway: Gateway, make_user: Callable[..., User]) -> None:
    user = make_user("rl")
    address, neighbour = fresh_ip(), fresh_ip()
    with client_from(gateway, address) as client:
        answers = exhaust(lambda: client.get("/api/v1/instance"), IP)
        for n, answer in enumerate(answers[:-1]):
            assert answer.status_code == 200
            assert_limited_headers(answer, IP, IP - n - 1)
        assert_too_many(answers[-1], IP)
        assert_too_many(client.get(f"/api/v1/accounts/{user.id}"), IP)
        # An invalid token does not escape the address's bucket (token guessing is throttled per IP).
        assert_too_many(client.get("/api/v1/timelines/home", headers={"Authorization": "Bearer guessed"}), IP)
        # The same address with a valid token counts in the account's bucket instead.
        mine = client.get("/api/v1/timelines/home", headers=user.auth)
        assert mine.status_code == 200
        assert_limited_headers(mine, ACCOUNT, ACCOUNT - 1)
        # Streams, health, readiness and metrics are not counted.
        for path in ("/healthz", "/readyz", "/metrics", "/api/v1/streaming/health"):
            exempt = client.get(path)
            assert exempt.status_code == 200, (path, exempt.text)
            assert "X-RateLimit-Limit" not in exempt.headers
        refused = client.get("/api/v1/streaming/user")  # no token: 401 from the stream, not 429 from the limiter
        assert refused.status_code == 401
    with client_from(gateway, neighbour) as client:
        answer = client.get("/api/v1/instance")
        assert answer.status_code == 200
        assert_limited_headers(answer, IP, IP - 1)
    # Loopback's own address is exempt from the per-IP buckets here: never counted, never refused.
    with client_from(gateway, "127.0.0.1") as client:
        for _ in range(IP + 2):
            answer = client.get("/api/v1/instance")
            assert answer.status_code == 200 and "X-RateLimit-Limit" not in answer.headers


def test_login_has_its_own_stricter_bucket(gateway: Gateway, make_user: Callable[..., User],
                                           app_credentials: dict[str, Any]) -> None:
    user = make_user("rl")
    form = {"grant_type": "password", "client_id": app_credentials["client_id"],
            "client_secret": app_credentials["client_secret"], "username": user.email, "scope": "read"}
    address = fresh_ip()
    with client_from(gateway, address) as client:
        answers = exhaust(lambda: client.post("/oauth/token", data={**form, "password": "guess"}), LOGIN)
        for n, answer in enumerate(answers[:-1]):
            assert answer.status_code == 400, answer.text
            assert_limited_headers(answer, LOGIN, LOGIN - n - 1)
        assert_too_many(answers[-1], LOGIN)
        # Even the right password waits now.
        assert_too_many(client.post("/oauth/token", data={**form, "password": user.password}), LOGIN)
        # Failed logins did not eat the address's general bucket.
        assert_limited_headers(client.get("/api/v1/instance"), IP, IP - 1)
    with client_from(gateway, fresh_ip()) as client:
        ok = client.post("/oauth/token", data={**form, "password": user.password})
        assert ok.status_code == 200, ok.text
        assert_limited_headers(ok, LOGIN, LOGIN - 1)


def test_registration_has_its_own_stricter_bucket(gateway: Gateway, http: httpx.Client,
                                                  app_credentials: dict[str, Any]) -> None:
    app_token = http.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": app_credentials["client_id"],
        "client_secret": app_credentials["client_secret"], "scope": "read write follow"}).json()["access_token"]
    auth = {"Authorization": f"Bearer {app_token}"}

    def register(client: httpx.Client, name: str) -> httpx.Response:
        return client.post("/api/v1/accounts", headers=auth, data={
            "username": name, "email": f"{name}@example.test", "password": "long enough", "agreement": "1"})

    names = [f"rlreg_{random.getrandbits(40):010x}" for _ in range(REGISTRATION + 1)]
    with client_from(gateway, fresh_ip()) as client:
        answers = [register(client, name) for name in names]
        for n, answer in enumerate(answers[:-1]):
            assert answer.status_code == 200, answer.text
            assert_limited_headers(answer, REGISTRATION, REGISTRATION - n - 1)
        assert_too_many(answers[-1], REGISTRATION)
    # The refused sign-up created nothing.
    assert http.get(f"/api/v1/accounts/lookup?acct={names[-1]}").status_code == 404
    with client_from(gateway, fresh_ip()) as client:
        assert register(client, names[-1]).status_code == 200


def test_mastodon_py_reads_the_headers_and_stops_at_the_limit(gateway: Gateway,
                                                               make_user: Callable[..., User]) -> None:
    user = make_user("rl")
    client = Mastodon(access_token=user.token, api_base_url=gateway.url, ratelimit_method="throw")
    for n in range(ACCOUNT):
        client.account_verify_credentials()
        assert client.ratelimit_remaining == ACCOUNT - n - 1
        assert client.ratelimit_limit == ACCOUNT
    # Mastodon.py parsed X-RateLimit-Reset (ISO 8601) into an epoch in the future, within one window.
    assert time.time() < client.ratelimit_reset <= time.time() + WINDOW + 5
    with pytest.raises(MastodonRatelimitError):
        client.account_verify_credentials()


def test_stack_gateway_sends_headers(http: httpx.Client, make_user: Callable[..., User]) -> None:
    user = make_user("rl")
    answer = http.get("/api/v1/accounts/verify_credentials", headers=user.auth)
    assert answer.status_code == 200
    limit = int(answer.headers["X-RateLimit-Limit"])
    assert 0 <= int(answer.headers["X-RateLimit-Remaining"]) < limit
    datetime.fromisoformat(answer.headers["X-RateLimit-Reset"])
    missing = http.get("/api/v1/statuses/1", headers=user.auth)  # errors carry them too
    assert missing.status_code == 404 and "X-RateLimit-Remaining" in missing.headers

"""Fixtures for tests that drive the running system through its public API (started by `make test`)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest

GATEWAY = os.environ.get("KICAU_TEST_GATEWAY", "http://127.0.0.1:8080")
T = TypeVar("T")
MAX_POLL_INTERVAL = 0.25  # seconds


def eventually(check: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll until ``check`` returns a truthy value without raising; the fanout is asynchronous by design.

    The wait between polls grows from ``interval`` to ``MAX_POLL_INTERVAL``: the stack runs with Mastodon's
    rate limits (300 requests an account in 5 minutes), which a 30-second wait polled every 50 ms would spend."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except (AssertionError, httpx.TransportError) as exc:
            # A service still starting refuses connections: that is "not yet", not a failure.
            last_error = exc
        if time.monotonic() > deadline:
            if last_error is not None:
                raise last_error
            raise AssertionError(f"condition not met within {timeout}s (last value: {result!r})")
        time.sleep(interval)
        interval = min(interval * 1.25, max(interval, MAX_POLL_INTERVAL))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing test's report carries the warnings and errors the stack's services logged while it ran
    (tests/service_logs.py): in CI they are all there is to tell why."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    from stack.config import STACK_DIR
    from tests.service_logs import logged_since

    logged = logged_since(call.start, STACK_DIR / "services")
    if logged:
        report.sections.append(("services' warnings and errors during the test", logged))


@dataclass
class User:
    id: str
    username: str
    email: str
    password: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="session")
def stack_cassandra() -> Iterator[Any]:
    """A driver session on the stack's Cassandra, for tests that read or write rows themselves."""
    from kicau import clients  # imported here: most tests never need the driver
    from kicau.settings import CommonSettings
    from stack.services import service_env

    env = service_env()
    session = clients.cassandra_session(CommonSettings(
        cassandra_hosts=env["KICAU_CASSANDRA_HOSTS"], cassandra_port=int(env["KICAU_CASSANDRA_PORT"]),
        cassandra_keyspace=env["KICAU_CASSANDRA_KEYSPACE"],
    ))
    yield session
    clients.close_cassandra(session)


@pytest.fixture(scope="session")
def stack_redis() -> Iterator[Any]:
    """A (blocking) client of the stack's Redis, for tests that read or write keys themselves."""
    import redis

    from stack.services import service_env

    client = redis.Redis.from_url(service_env()["KICAU_REDIS_URL"])
    yield client
    client.close()


@pytest.fixture(scope="session")
def gateway_url() -> str:
    try:
        ready = httpx.get(f"{GATEWAY}/readyz", timeout=10)
    except httpx.HTTPError as exc:
        pytest.fail(f"gateway not reachable at {GATEWAY} ({exc}); start the system with `make up`")
    assert ready.status_code == 200, ready.text
    return GATEWAY


@pytest.fixture(scope="session")
def http(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def app_credentials(http: httpx.Client) -> dict[str, Any]:
    answer = http.post("/api/v1/apps", data={"client_name": "kicau-tests", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob",
                                             "scopes": "read write follow push"})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def narrow_token(http: httpx.Client, app_credentials: dict[str, Any], user: User,
                 scope: str = "read:statuses write:statuses") -> dict[str, str]:
    """Headers with a token of ``user``'s that carries ``scope`` alone (by default, none of the follows, blocks,
    mutes or accounts scopes)."""
    token = http.post("/oauth/token", data={
        "grant_type": "password", "client_id": app_credentials["client_id"],
        "client_secret": app_credentials["client_secret"], "username": user.email, "password": user.password,
        "scope": scope})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture(scope="session")
def make_user(http: httpx.Client, app_credentials: dict[str, Any]) -> Callable[..., User]:
    """Registers a fresh account through the public API and logs it in with the password grant."""
    app_token = http.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": app_credentials["client_id"],
        "client_secret": app_credentials["client_secret"], "scope": "read write follow push",
    }).json()["access_token"]

    def make(prefix: str = "u") -> User:
        username = f"{prefix}_{uuid.uuid4().hex[:10]}"
        email = f"{username}@example.test"
        password = "correct horse battery staple"
        registered = http.post("/api/v1/accounts", headers={"Authorization": f"Bearer {app_token}"}, data={
            "username": username, "email": email, "password": password, "agreement": "true", "locale": "en",
        })
        assert registered.status_code == 200, registered.text
        token = registered.json()["access_token"]
        me = http.get("/api/v1/accounts/verify_credentials", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        return User(id=me.json()["id"], username=username, email=email, password=password, token=token)

    return make

"""Rate-limit counts are taken from Redis in leases and spent in the gateway process (services/gateway/ratelimit.py).
Against two real gateways sharing Redis with one account's limit of 60 per hour: one process reports exact
figures; the two together never admit more than the limit; concurrent first requests share one lease rather
than each taking its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from kicau import keys
from services.gateway.ratelimit import LEASE_MAX, lease_size
from stack.gateways import Gateway, spawned_gateway
from tests.conftest import User

LIMIT, WINDOW = 60, 3600
ME = "/api/v1/accounts/verify_credentials"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Gateway]]:
    limits = {"rate_limit_account_requests": str(LIMIT), "rate_limit_window_seconds": str(WINDOW)}
    with spawned_gateway(tmp_path_factory.mktemp("lease-a"), **limits) as first, \
            spawned_gateway(tmp_path_factory.mktemp("lease-b"), **limits) as second:
        yield first, second


def _window() -> int:
    return int(time.time()) // WINDOW


def _counted(stack_redis: Any, user: User, window: int) -> int:
    return int(stack_redis.get(keys.rate_limit("account", f"a:{user.id}", window)) or 0)


def _in_one_window(run: Callable[[], None]) -> None:
    """``run`` again (with fresh accounts) if an hour boundary fell inside it."""
    for _ in range(2):
        window = _window()
        run()
        if _window() == window:
            return
    raise AssertionError("two window boundaries in a row")


def test_lease_sizes() -> None:
    assert lease_size(300, 0) == LEASE_MAX  # a fresh window: the largest lease
    assert lease_size(60, 0) == 7  # at most an eighth of what is left
    assert lease_size(300, 290) == 1 and lease_size(300, 300) == 1 and lease_size(300, 400) == 1
    assert lease_size(5, 0) == 1  # small limits are always counted one by one


def test_one_process_reports_exact_figures(pair: tuple[Gateway, Gateway], make_user: Callable[..., User],
                                          stack_redis: Any) -> None:
    def run() -> None:
        user = make_user("lease")
        window = _window()
        with httpx.Client(base_url=pair[0].url, timeout=30) as client:
            for n in range(30):
                answer = client.get(ME, headers=user.auth)
                assert answer.status_code == 200, answer.text
                assert answer.headers["X-RateLimit-Remaining"] == str(LIMIT - n - 1)
        # Every request was counted in Redis; what is counted beyond them is one lease not spent yet.
        assert 30 <= _counted(stack_redis, user, window) < 30 + LEASE_MAX

    _in_one_window(run)


def test_two_processes_never_admit_more_than_the_limit(pair: tuple[Gateway, Gateway],
                                                       make_user: Callable[..., User], stack_redis: Any) -> None:
    def run() -> None:
        user = make_user("lease")
        window = _window()
        admitted = refused_in_a_row = 0
        with httpx.Client(base_url=pair[0].url, timeout=30) as first, \
                httpx.Client(base_url=pair[1].url, timeout=30) as second:
            for n in range(3 * LIMIT):
                answer = (first, second)[n % 2].get(ME, headers=user.auth)
                assert answer.status_code in (200, 429), answer.text
                if answer.status_code == 200:
                    admitted, refused_in_a_row = admitted + 1, 0
                else:
                    refused_in_a_row += 1
                    if refused_in_a_row == 4:
                        break
        assert refused_in_a_row == 4
        # Never more than the limit; fewer by at most what each process held unspent (leases shrink near the
        # limit, so this is far less than two full leases).
        assert LIMIT - 2 * lease_size(LIMIT, 0) <= admitted <= LIMIT
        assert _counted(stack_redis, user, window) >= LIMIT

    _in_one_window(run)


def test_concurrent_first_requests_share_a_lease(pair: tuple[Gateway, Gateway], make_user: Callable[..., User],
                                                 stack_redis: Any) -> None:
    async def burst(user: User) -> list[int]:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=pair[0].url, timeout=30, limits=limits) as client:
            answers = await asyncio.gather(*(client.get(ME, headers=user.auth) for _ in range(20)))
        return [a.status_code for a in answers]

    def run() -> None:
        user = make_user("lease")
        window = _window()
        assert asyncio.run(burst(user)) == [200] * 20
        # Had each of the 20 taken its own lease of 7, Redis would have counted 140 and refused most of them.
        assert 20 <= _counted(stack_redis, user, window) < 20 + LEASE_MAX

    _in_one_window(run)

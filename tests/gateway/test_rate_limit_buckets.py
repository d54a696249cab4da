"""What the rate limiter keeps per token and per window so that a request with a lease in hand costs little
(services/gateway/ratelimit.py): a token's bucket, a bucket's key in the current window, the counts' header
values. Pure logic: no engine involved (tests/gateway/test_ratelimits.py and test_ratelimit_leases.py count real
requests in Redis)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kicau import keys
from kicau.tokens import TokenInfo
from services.gateway import ratelimit
from services.gateway.ratelimit import RateLimiter
from services.gateway.settings import GatewaySettings


def _limiter() -> tuple[RateLimiter, GatewaySettings]:
    settings = GatewaySettings(rate_limit_account_requests=300, rate_limit_window_seconds=300)
    return RateLimiter(SimpleNamespace(settings=settings)), settings


def test_a_tokens_bucket_is_made_once_and_a_new_token_gets_its_own() -> None:
    limiter, settings = _limiter()
    user = TokenInfo(account_id=42, client_id="app-1", scopes=["read"])
    bucket = limiter._account_bucket(user, settings)
    assert (bucket.name, bucket.subject, bucket.limit, bucket.window) == ("account", "a:42", 300, 300)
    assert limiter._account_bucket(user, settings) is bucket
    # The token copies replaced the entry (its scopes changed): the same account, so the same counter.
    renewed = TokenInfo(account_id=42, client_id="app-1", scopes=["read", "write"])
    assert limiter._account_bucket(renewed, settings) == bucket
    app_token = TokenInfo(account_id=None, client_id="app-2", scopes=["read"])
    assert limiter._account_bucket(app_token, settings).subject == "c:app-2"


def test_a_buckets_key_changes_with_its_window(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter, settings = _limiter()
    bucket = limiter._account_bucket(TokenInfo(account_id=7, client_id="app", scopes=["read"]), settings)
    now = [3_000.0]
    monkeypatch.setattr("services.gateway.ratelimit.time.time", lambda: now[0])
    assert limiter._key(bucket) == (keys.rate_limit("account", "a:7", 10), 3_300)
    now[0] = 3_299.9
    assert limiter._key(bucket) == (keys.rate_limit("account", "a:7", 10), 3_300)
    now[0] = 3_300.0
    assert limiter._key(bucket) == (keys.rate_limit("account", "a:7", 11), 3_600)


def test_header_values_are_as_formatted_before() -> None:
    assert ratelimit._count_value(300) == b"300" and ratelimit._count_value(0) == b"0"
    assert ratelimit._reset_value(1_800) == ratelimit.reset_header(1_800).encode() == b"1970-01-01T00:30:00.000000Z"

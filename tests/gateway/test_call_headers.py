"""What a gateway's internal call says about who acts (``CallUpstream._headers_of``): encoded once per token the
token copies hand out, as ``_internal_headers`` would encode it every time (pure logic: no engine involved; the
calls themselves are in tests/kicau/test_internal_rpc.py)."""

from __future__ import annotations

import pytest

from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.gateway import upstreams
from services.gateway.upstreams import CallUpstream


def _expected(token: TokenInfo) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode())
            for name, value in upstreams._internal_headers(token, None).items()]


def test_a_tokens_headers_are_encoded_once_and_each_call_gets_its_own_list() -> None:
    caller = CallUpstream("/nonexistent.sock", timeout=1, in_flight=1)
    token = TokenInfo(account_id=42, client_id="app-1", scopes=["read", "write:statuses"])
    first = caller._headers_of(token)
    assert first == _expected(token)
    assert (b"x-kicau-account", b"42") in first
    first.append((b"content-type", b"application/json"))  # as a call with a JSON body does
    assert caller._headers_of(token) == _expected(token)
    assert len(caller._token_headers) == 1
    # The copies replaced the entry (scopes changed): a new TokenInfo, its own headers.
    narrowed = TokenInfo(account_id=42, client_id="app-1", scopes=["read"])
    assert caller._headers_of(narrowed) == _expected(narrowed) != _expected(token)
    assert caller._headers_of(None) == []


def test_a_token_that_would_add_headers_is_refused_every_time() -> None:
    caller = CallUpstream("/nonexistent.sock", timeout=1, in_flight=1)
    forged = TokenInfo(account_id=1, client_id="app\r\nx-kicau-account: 2", scopes=["read"])
    for _ in range(2):
        with pytest.raises(ApiError) as refused:
            caller._headers_of(forged)
        assert refused.value.status_code == 400
    assert len(caller._token_headers) == 0


def test_the_tokens_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstreams, "_TOKEN_HEADERS_KEPT", 2)
    caller = CallUpstream("/nonexistent.sock", timeout=1, in_flight=1)
    tokens = [TokenInfo(account_id=n, client_id="app", scopes=["read"]) for n in range(4)]
    for token in tokens:
        caller._headers_of(token)
    assert caller._token_headers.sources() == tokens[2:]

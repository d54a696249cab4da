"""Blocked domains (services/graph/domain_blocks.py) through the public API of the running system: blocked once
however often asked, listed newest first with Mastodon's Link header, undone; domains read as Mastodon reads them;
bad input is a 4xx with a Mastodon error and keeps nothing. Mastodon.py's ``domain_block`` and ``domain_blocks``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from mastodon import Mastodon

from kicau.web import ApiError
from services.graph.domain_blocks import normal_domain
from tests.conftest import User


def blocked(http: httpx.Client, user: User, query: str = "") -> httpx.Response:
    answer = http.get(f"/api/v1/domain_blocks{query}", headers=user.auth)
    assert answer.status_code == 200, answer.text
    return answer


def test_domains_are_blocked_listed_and_unblocked(http: httpx.Client, make_user: Callable[..., User]) -> None:
    user, other = make_user("dom_a"), make_user("dom_b")
    assert blocked(http, user).json() == []
    for domain in ("spam.example", "  Noisy.Example ", "bücher.example"):
        answer = http.post("/api/v1/domain_blocks", headers=user.auth, data={"domain": domain})
        assert answer.status_code == 200 and answer.json() == {}, answer.text
    # Again, as JSON (toot's): nothing changes.
    assert http.post("/api/v1/domain_blocks", headers=user.auth, json={"domain": "spam.example"}).status_code == 200
    assert blocked(http, user).json() == ["xn--bcher-kva.example", "noisy.example", "spam.example"]
    assert blocked(http, other).json() == []  # each account its own

    first = blocked(http, user, "?limit=2")
    assert first.json() == ["xn--bcher-kva.example", "noisy.example"]
    link = first.headers["link"]
    assert 'rel="next"' in link and 'rel="prev"' in link
    next_url = link.split(";")[0].strip("<>")
    assert http.get(next_url, headers=user.auth).json() == ["spam.example"]

    gone = http.request("DELETE", "/api/v1/domain_blocks", headers=user.auth, data={"domain": "NOISY.example"})
    assert gone.status_code == 200, gone.text
    again = http.request("DELETE", "/api/v1/domain_blocks?domain=noisy.example", headers=user.auth)
    assert again.status_code == 200  # not blocked: nothing changes
    assert blocked(http, user).json() == ["xn--bcher-kva.example", "spam.example"]


def test_bad_domains_are_422s_and_keep_nothing(http: httpx.Client, make_user: Callable[..., User],
                                               app_credentials: dict[str, Any]) -> None:
    from tests.conftest import narrow_token

    user = make_user("dom_bad")
    for body in ({"domain": ""}, {"domain": "localhost"}, {"domain": "-bad.example"}, {"domain": "a b.example"},
                 {"domain": "x" * 64 + ".example"}, {"domain": 5}, {}):
        answer = http.post("/api/v1/domain_blocks", headers=user.auth, json=body)
        assert answer.status_code == 422 and set(answer.json()) == {"error"}, (body, answer.text)
    assert blocked(http, user).json() == []
    assert http.get("/api/v1/domain_blocks").status_code == 401
    reader = narrow_token(http, app_credentials, user, "read:accounts")
    assert http.post("/api/v1/domain_blocks", headers=reader, json={"domain": "a.example"}).status_code == 403


@pytest.mark.parametrize("given,kept", [("Example.COM", "example.com"), ("example.com.", "example.com"),
                                        ("münchen.example", "xn--mnchen-3ya.example")])
def test_domains_are_read_as_mastodon_reads_them(given: str, kept: str) -> None:
    assert normal_domain(given) == kept


@pytest.mark.parametrize("given", ["", "com", "exa mple.com", "-a.com", "a-.com", "a..com", "a" * 250 + ".com"])
def test_what_is_no_domain_is_refused(given: str) -> None:
    with pytest.raises(ApiError):
        normal_domain(given)


def test_mastodon_py_blocks_domains(gateway_url: str, make_user: Callable[..., User]) -> None:
    user = make_user("dom_mpy")
    client = Mastodon(access_token=user.token, api_base_url=gateway_url)
    client.domain_block("blocked.example")
    assert list(client.domain_blocks()) == ["blocked.example"]
    client.domain_unblock("blocked.example")
    assert list(client.domain_blocks()) == []

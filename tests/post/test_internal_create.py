"""The post service's internal create (a hot route, kicau/hot_routes.py), called directly as the gateway calls
it: malformed bodies and missing identities are 4xx with a Mastodon error and create nothing; a valid body
creates exactly one status, readable through the public API."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from kicau.settings import CommonSettings
from tests.conftest import User

CREATE = "/internal/statuses"


@pytest.fixture(scope="module")
def post_service() -> httpx.Client:
    return httpx.Client(base_url=CommonSettings().post_url, timeout=30)


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"", 422, "Invalid JSON"),
    (b"{not json", 422, "Invalid JSON"),
    (b"[1, 2]", 422, "Input should be an object"),
    (b'{"visibility": "public"}', 422, "status: Field required"),
    (b'{"status": 5}', 422, "status: Input should be a valid string"),
    (b'{"status": "hi", "sensitive": "maybe"}', 422, "sensitive: Input should be a valid boolean"),
    (b'{"status": "hi", "in_reply_to_id": -1}', 422, "in_reply_to_id: Input should be greater than or equal to 0"),
    (b'{"status": "' + b"x" * (1024 * 1024) + b'"}', 413, "larger than"),
])
def test_malformed_bodies_are_refused(post_service: httpx.Client, http: httpx.Client,
                                      make_user: Callable[..., User], body: bytes, status: int, message: str) -> None:
    author = make_user("internal")
    answer = post_service.post(CREATE, content=body, headers={"X-Kicau-Account": author.id,
                                                               "Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert http.get(f"/api/v1/accounts/{author.id}").json()["statuses_count"] == 0


def test_an_identity_is_required(post_service: httpx.Client) -> None:
    for headers in ({}, {"X-Kicau-Account": "someone"}):
        answer = post_service.post(CREATE, json={"status": "from nobody"}, headers=headers)
        assert answer.status_code == 401 and answer.json() == {"error": "This method requires an authenticated user"}


def test_a_valid_body_creates_one_status(post_service: httpx.Client, http: httpx.Client,
                                        make_user: Callable[..., User]) -> None:
    author = make_user("internal")
    headers = {"X-Kicau-Account": author.id, "Idempotency-Key": "internal-once"}
    first = post_service.post(CREATE, json={"status": "direct", "sensitive": "true", "spoiler_text": "cw"},
                              headers=headers)
    again = post_service.post(CREATE, json={"status": "direct"}, headers=headers)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    created = first.json()
    assert again.json()["id"] == created["id"] and created["sensitive"] is True
    assert http.get(f"/api/v1/statuses/{created['id']}").json()["content"] == "<p>direct</p>"
    assert http.get(f"/api/v1/accounts/{author.id}").json()["statuses_count"] == 1

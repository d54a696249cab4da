"""What Mastodon clients read when they start, beyond the instance: the user's preferences, the server's custom
emoji and the user's follow requests, each answered as it is for a new Kicau account (no per-account defaults,
no custom emoji, no requests), with Mastodon's scopes; and the same through Mastodon.py."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from mastodon import Mastodon

from tests.conftest import User


def test_preferences_emoji_and_follow_requests(http: httpx.Client, make_user: Callable[..., User]) -> None:
    user = make_user("cst")
    preferences = http.get("/api/v1/preferences", headers=user.auth)
    assert preferences.status_code == 200, preferences.text
    assert preferences.json() == {
        "posting:default:visibility": "public", "posting:default:sensitive": False,
        "posting:default:language": None, "posting:default:quote_policy": "public",
        "reading:expand:media": "default", "reading:expand:spoilers": False,
    }
    assert http.get("/api/v1/follow_requests", headers=user.auth).json() == []
    assert http.get("/api/v1/custom_emojis").json() == []  # anonymous, as on Mastodon
    for path in ("/api/v1/preferences", "/api/v1/follow_requests"):
        answer = http.get(path)
        assert answer.status_code == 401 and set(answer.json()) == {"error"}, answer.text


def test_mastodon_py_reads_them(gateway_url: str, make_user: Callable[..., User]) -> None:
    user = make_user("cstm")
    client = Mastodon(access_token=user.token, api_base_url=gateway_url)
    assert client.preferences()["posting:default:visibility"] == "public"
    assert client.custom_emojis() == []
    assert client.follow_requests() == []

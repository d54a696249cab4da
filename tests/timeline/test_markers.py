"""Markers (kicau/markers.py) through the public API of the running system: saved by one client (as a form, as
Mastodon.py sends them, or JSON), read by another, each save a new version, concurrent saves all landing,
other accounts' markers apart, and bad input answered 4xx without a write."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.conftest import User


def read(http: httpx.Client, user: User, *timelines: str) -> dict[str, Any]:
    query = "&".join(f"timeline[]={t}" for t in timelines)
    answer = http.get(f"/api/v1/markers?{query}", headers=user.auth)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_markers_are_saved_by_one_client_and_read_by_another(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    user, other = make_user("mrk_u"), make_user("mrk_o")
    assert read(http, user, "home", "notifications") == {}  # never saved: left out

    saved = http.post("/api/v1/markers", headers=user.auth, data={"home[last_read_id]": "103"})
    assert saved.status_code == 200, saved.text
    assert set(saved.json()) == {"home"}
    home = saved.json()["home"]
    assert (home["last_read_id"], home["version"]) == ("103", 1) and home["updated_at"].endswith("Z")
    assert read(http, user, "home") == {"home": home}
    assert read(http, user, "notifications") == {}
    assert read(http, other, "home", "notifications") == {}, "another account's markers are its own"

    # JSON (toot's way), both timelines at once; each save is the next version, and a position may move back.
    both = http.post("/api/v1/markers", headers=user.auth,
                     json={"home": {"last_read_id": "99"}, "notifications": {"last_read_id": 7}})
    assert both.status_code == 200, both.text
    assert {t: (m["last_read_id"], m["version"]) for t, m in both.json().items()} == {
        "home": ("99", 2), "notifications": ("7", 1)}
    assert read(http, user, "home", "notifications") == both.json()
    # Unknown timelines are ignored, in a read and in a save, as Mastodon does.
    assert read(http, user, "home", "public") == {"home": both.json()["home"]}
    nothing = http.post("/api/v1/markers", headers=user.auth, data={"public[last_read_id]": "5"})
    assert (nothing.status_code, nothing.json()) == (200, {})


def test_concurrent_saves_each_land_with_a_version_of_their_own(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    user = make_user("mrk_c")

    def save(position: int) -> int:
        answer = http.post("/api/v1/markers", headers=user.auth, data={"home[last_read_id]": str(position)})
        assert answer.status_code == 200, answer.text
        return int(answer.json()["home"]["version"])

    with ThreadPoolExecutor(4) as pool:
        versions = sorted(pool.map(save, range(1000, 1004)))
    assert versions == [1, 2, 3, 4], "a lost race is retried on the newer version, never lost or repeated"
    assert read(http, user, "home")["home"]["version"] == 4


def test_bad_marker_input_is_a_clear_4xx(http: httpx.Client, make_user: Callable[..., User]) -> None:
    user = make_user("mrk_b")
    for body in ({"home[last_read_id]": "not-an-id"}, {"home[last_read_id]": ""},
                 {"notifications[last_read_id]": "-1"}, {"home[last_read_id]": str(1 << 63)}):
        answer = http.post("/api/v1/markers", headers=user.auth, data=body)
        assert answer.status_code == 422, (body, answer.text)
        assert set(answer.json()) == {"error"}, answer.text
    payloads: list[dict[str, Any]] = [{"home": "12"}, {"home": {}}, {"home": {"last_read_id": None}},
                                      {"home": {"last_read_id": True}}]
    for payload in payloads:
        answer = http.post("/api/v1/markers", headers=user.auth, json=payload)
        assert answer.status_code == 422, (payload, answer.text)
    answer = http.post("/api/v1/markers", headers={**user.auth, "Content-Type": "application/json"}, content=b"{")
    assert answer.status_code == 400 and set(answer.json()) == {"error"}, answer.text
    assert read(http, user, "home", "notifications") == {}, "nothing was written"
    many = "&".join(["timeline[]=home"] * 11)
    answer = http.get(f"/api/v1/markers?{many}", headers=user.auth)
    assert answer.status_code == 422 and set(answer.json()) == {"error"}, answer.text
    assert http.get("/api/v1/markers?timeline[]=home").status_code == 401
    assert http.post("/api/v1/markers", data={"home[last_read_id]": "1"}).status_code == 401

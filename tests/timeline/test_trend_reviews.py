"""Trends review against the running stack (kicau/trend_reviews.py): staff list what trends, reviewed or not, through
Mastodon's ``/api/v1/admin/trends/{tags,statuses}``; what they reject leaves everyone's trends at once (and stays
in staff's listing), what they approve comes back; only a role with ``manage_taxonomies`` and a token with
``admin:read``/``admin:write`` may; bad ids are a 404 that changes nothing; Mastodon.py's methods work unchanged.
Pages: tests/post/test_link_previews.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kicau import tag_trends
from kicau.web import ACCOUNT_HEADER
from stack.procs import free_port
from stack.services import service_env
from tests.conftest import User, eventually
from tests.graph.test_admin import NOT_ALLOWED, OUT_OF_SCOPE, admin_app, signed_in_client, staff  # noqa: F401
from tests.timeline.test_tag_timeline import fresh_tag
from tests.timeline.test_trends import every_trend
from tests.timeline.test_visibility import post

ADMIN_TRENDS = "/api/v1/admin/trends"
ROOT = Path(__file__).resolve().parents[2]


def staff_listing(http: httpx.Client, auth: dict[str, str], kind: str) -> dict[str, dict[str, Any]]:
    """Staff's whole listing of a kind of trend, by id, page by page through the Link headers."""
    found: dict[str, dict[str, Any]] = {}
    url = f"{ADMIN_TRENDS}/{kind}?limit=20"
    while url:
        answer = http.get(url, headers=auth)
        assert answer.status_code == 200, answer.text
        found |= {item["id"]: item for item in answer.json()}
        following = answer.links.get("next", {}).get("url")
        url = httpx.URL(following).raw_path.decode() if following else ""
    return found


def trending_statuses(http: httpx.Client) -> list[str]:
    answer = http.get("/api/v1/trends/statuses?limit=40")
    assert answer.status_code == 200, answer.text
    return [s["id"] for s in answer.json()]


def test_staff_reject_and_approve_trending_hashtags(http: httpx.Client, make_user: Callable[..., User],
                                                    staff: Callable[[str, str], tuple[User, dict[str, str]]],  # noqa: F811
                                                    ) -> None:
    _, moderator = staff("trv_m", "Moderator")  # Mastodon's moderators hold manage_taxonomies
    users = [make_user("trv_u") for _ in range(tag_trends.TREND_MIN_ACCOUNTS)]
    spam, fine = fresh_tag(), fresh_tag()
    for user in users:
        post(http, user, f"buy now #{spam}")
        post(http, user, f"good news #{fine}")
    eventually(lambda: {spam, fine} <= {t["name"] for t in every_trend(http)} or None, timeout=60)

    # Staff see both, never reviewed, trending as the instance's default says (true here).
    listed = staff_listing(http, moderator, "tags")
    for tag in (spam, fine):
        item = listed[tag]
        assert (item["name"], item["requires_review"], item["trendable"], item["usable"]) == (tag, True, True, True)
        assert len(item["history"]) == 7 and item["url"].endswith(f"/tags/{tag}")

    rejected = http.post(f"{ADMIN_TRENDS}/tags/{spam}/reject", headers=moderator)
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["id"], rejected.json()["requires_review"], rejected.json()["trendable"]) == \
        (spam, False, False)
    # At once, for every reader; staff still see it, rejected; the other trends on.
    shown = {t["name"] for t in every_trend(http)}
    assert spam not in shown and fine in shown
    assert (staff_listing(http, moderator, "tags")[spam]["trendable"], staff_listing(http, moderator, "tags")[fine]
            ["requires_review"]) == (False, True)
    # By any case of its name, with or without '#': the hashtag in normal form.
    approved = http.post(f"{ADMIN_TRENDS}/tags/%23{spam.upper()}/approve", headers=moderator)
    assert approved.status_code == 200, approved.text
    assert (approved.json()["id"], approved.json()["trendable"]) == (spam, True)
    assert spam in {t["name"] for t in every_trend(http)}


def test_staff_reject_and_approve_trending_statuses(http: httpx.Client, make_user: Callable[..., User],
                                                    staff: Callable[[str, str], tuple[User, dict[str, str]]],  # noqa: F811
                                                    ) -> None:
    _, admin = staff("trv_sa", "Admin")
    author = make_user("trv_sp")
    fans = [make_user("trv_sf") for _ in range(5)]
    status_id = post(http, author, "liked by everyone, for now")
    for fan in fans:
        assert http.post(f"/api/v1/statuses/{status_id}/favourite", headers=fan.auth).status_code == 200
    eventually(lambda: status_id in trending_statuses(http) or None, timeout=60)
    listed = staff_listing(http, admin, "statuses")[status_id]
    assert (listed["requires_review"], listed["trendable"], listed["account"]["id"]) == (True, True, author.id)

    rejected = http.post(f"{ADMIN_TRENDS}/statuses/{status_id}/reject", headers=admin)
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["id"], rejected.json()["requires_review"], rejected.json()["trendable"]) == \
        (status_id, False, False)
    assert status_id not in trending_statuses(http)
    assert staff_listing(http, admin, "statuses")[status_id]["trendable"] is False
    assert http.post(f"{ADMIN_TRENDS}/statuses/{status_id}/approve", headers=admin).json()["trendable"] is True
    assert status_id in trending_statuses(http)


def test_bad_ids_and_who_may(http: httpx.Client, make_user: Callable[..., User],
                             staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    _, admin = staff("trv_b", "Admin")
    _, nobody = staff("trv_n", "none")
    user = make_user("trv_p")
    unused = fresh_tag()
    for path in [f"{ADMIN_TRENDS}/tags/{unused}/approve",  # no public status carried it
                 f"{ADMIN_TRENDS}/tags/not%20a%20tag/reject",
                 f"{ADMIN_TRENDS}/statuses/12345/approve",  # no such status
                 f"{ADMIN_TRENDS}/statuses/abc/reject",
                 f"{ADMIN_TRENDS}/links/aHR0cHM6Ly9leGFtcGxlLmNvbS9uZXZlci1zaGFyZWQ/approve",  # a page never shown
                 f"{ADMIN_TRENDS}/links/not-base64!/reject",
                 f"{ADMIN_TRENDS}/links/ZnRwOi8vZXhhbXBsZS5jb20/approve"]:  # ftp://example.com: not a page's URL
        answer = http.post(path, headers=admin)
        assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), path
    assert http.post(f"{ADMIN_TRENDS}/tags/{unused}/ban", headers=admin).status_code == 404
    for query in ("limit=x", "offset=-1"):
        answer = http.get(f"{ADMIN_TRENDS}/tags?{query}", headers=admin)
        assert answer.status_code == 400 and set(answer.json()) == {"error"}, query
    # The 404s changed nothing: the unused hashtag stays unreviewed (it does not trend, so it is not listed).
    assert unused not in staff_listing(http, admin, "tags")

    # A role without manage_taxonomies; a token without the admin scopes; no token.
    trending = post(http, user, "anything")
    for method, path in [("GET", f"{ADMIN_TRENDS}/tags"), ("GET", f"{ADMIN_TRENDS}/statuses"),
                         ("GET", f"{ADMIN_TRENDS}/links"), ("POST", f"{ADMIN_TRENDS}/statuses/{trending}/reject")]:
        as_nobody = http.request(method, path, headers=nobody)
        assert (as_nobody.status_code, as_nobody.json()) == (403, NOT_ALLOWED), (method, path)
        as_user = http.request(method, path, headers=user.auth)
        assert (as_user.status_code, as_user.json()) == (403, OUT_OF_SCOPE), (method, path)
        assert http.request(method, path).status_code == 401


def test_mastodon_py_reviews_trends(gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
                                    admin_app: dict[str, Any],  # noqa: F811
                                    staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    owner, _ = staff("trv_o", "Admin")
    users = [make_user("trv_pu") for _ in range(tag_trends.TREND_MIN_ACCOUNTS)]
    tag = fresh_tag()
    for user in users:
        post(http, user, f"#{tag} again")
    eventually(lambda: tag in {t["name"] for t in every_trend(http)} or None, timeout=60)
    client = signed_in_client(gateway_url, admin_app, owner)
    assert all(t.requires_review in (True, False) for t in client.admin_trending_tags(limit=20))
    assert client.admin_reject_trending_tag(tag).trendable is False  # a hashtag's id is its name
    assert tag not in [t["name"] for t in every_trend(http)]
    assert client.admin_approve_trending_tag(tag).trendable is True
    assert isinstance(client.admin_trending_statuses(), list) and isinstance(client.admin_trending_links(), list)


@pytest.fixture
def reviewing_timeline() -> Iterator[str]:
    """A second timeline process, on a port of its own, where nothing trends until staff approve it (Mastodon's
    default): the stack's own keeps the development default."""
    port = free_port()
    env = {k: v for k, v in service_env().items() if not k.startswith("KICAU_TIMELINE_")}
    env |= {"KICAU_TIMELINE_PORT": str(port), "KICAU_TIMELINE_TRENDABLE_BY_DEFAULT": "false"}
    with open(ROOT / ".stack" / "services" / f"timeline-reviewing-{port}.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "services.timeline"], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            eventually(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, timeout=120, interval=0.5)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_where_nothing_trends_unreviewed_staff_approve_it(
        http: httpx.Client, make_user: Callable[..., User], reviewing_timeline: str,
        staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    """``trendable_by_default`` false: a hashtag five accounts use is listed for staff, needing review and not
    trending, and trends for everyone once approved through the gateway (which the stack's timeline process serves:
    the other process hears of it by the version it reads with each trends read)."""
    moderator, auth = staff("trv_dm", "Moderator")
    users = [make_user("trv_du") for _ in range(tag_trends.TREND_MIN_ACCOUNTS)]
    tag = fresh_tag()
    for user in users:
        post(http, user, f"new here #{tag}")

    def on_the_second(path: str, account: str | None = None) -> list[dict[str, Any]]:
        answer = httpx.get(f"{reviewing_timeline}{path}", params={"limit": 40},
                           headers={ACCOUNT_HEADER: account} if account else {}, timeout=30)
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()
        return found

    def listed() -> dict[str, Any] | None:
        return next((t for t in on_the_second("/internal/admin/trends/tags", moderator.id) if t["name"] == tag),
                    None)

    item = eventually(listed, timeout=60)  # the fanout counts the uses asynchronously
    assert item is not None and (item["requires_review"], item["trendable"]) == (True, False)
    assert tag not in {t["name"] for t in on_the_second("/internal/trends/tags")}
    approved = http.post(f"{ADMIN_TRENDS}/tags/{tag}/approve", headers=auth)
    assert approved.status_code == 200, approved.text
    assert tag in {t["name"] for t in on_the_second("/internal/trends/tags")}
    assert (listed() or {}).get("requires_review") is False

"""Staff's dashboard figures against the running system (kicau/instance_measures.py, kicau/instance_dimensions.py,
services/graph/measures.py): ``POST /api/v1/admin/measures`` counts today's new accounts, posting accounts,
interactions, reports filed and resolved, and a hashtag's uses, accounts and servers, each a day over the period with
the totals of the period and the one before; ``/dimensions`` the statuses by language, the software's versions and
the space used; bad periods are a 4xx; only staff with ``admin:read`` may; Mastodon.py reads both unchanged.

Other tests run before this one on the same stack, so today's figures are read before and after, and compared."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import User, eventually
from tests.graph.test_admin import NOT_ALLOWED, OUT_OF_SCOPE, admin_app, signed_in_client, staff  # noqa: F401
from tests.timeline.test_tag_timeline import fresh_tag
from tests.timeline.test_visibility import post

MEASURES = "/api/v1/admin/measures"
EVERY = ["active_users", "new_users", "interactions", "opened_reports", "resolved_reports"]


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def measured(http: httpx.Client, auth: dict[str, str], body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    answer = http.post(MEASURES, headers=auth, json=body)
    assert answer.status_code == 200, answer.text
    return {m["key"]: m for m in answer.json()}


def last_day(found: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Each measure's count for its period's last day (today)."""
    return {key: int(m["data"][-1]["value"]) for key, m in found.items()}


def test_todays_activity_is_counted(http: httpx.Client, make_user: Callable[..., User],
                                    staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    _, moderator = staff("msr_m", "Moderator")  # every staff role holds view_dashboard
    week = {"keys": EVERY, "start_at": (datetime.now(UTC).date() - timedelta(days=6)).isoformat(), "end_at": today()}
    before = measured(http, moderator, week)
    assert list(before) == EVERY
    for m in before.values():
        assert len(m["data"]) == 7 and m["data"][-1]["date"] == f"{today()}T00:00:00.000+00:00", m
        assert m["total"] == str(sum(int(d["value"]) for d in m["data"])) or m["key"] == "active_users", m
        assert int(m["previous_total"]) >= 0 and m["unit"] is None

    author, fan, reporter = (make_user("msr_u") for _ in range(3))
    tag = fresh_tag()
    status = post(http, author, f"counted #{tag}")
    post(http, fan, f"also #{tag}")
    post(http, author, "my own thread", in_reply_to_id=status)  # a reply to oneself is no interaction
    post(http, fan, "a reply", in_reply_to_id=status)
    assert http.post(f"/api/v1/statuses/{status}/favourite", headers=fan.auth).status_code == 200
    assert http.post(f"/api/v1/statuses/{status}/reblog", headers=fan.auth).status_code == 200
    filed = http.post("/api/v1/reports", headers=reporter.auth, json={"account_id": author.id, "comment": "spam"})
    assert filed.status_code == 200, filed.text
    _, admin = staff("msr_a", "Admin")
    assert http.post(f"/api/v1/admin/reports/{filed.json()['id']}/resolve", headers=admin).status_code == 200

    def grown() -> dict[str, int] | None:
        now = last_day(measured(http, moderator, week))
        was = last_day(before)
        grew = {key: now[key] - was[key] for key in EVERY}
        return grew if grew["interactions"] >= 3 and grew["active_users"] >= 2 else None

    grew = eventually(grown, timeout=30)  # the fanout counts posts and interactions as it applies them
    # Other tests do not run alongside: these are this test's own (the staff accounts are new users too).
    assert grew == {"active_users": 2, "new_users": 4, "interactions": 3, "opened_reports": 1,
                    "resolved_reports": 1}, grew

    tagged = measured(http, moderator, {"keys": ["tag_uses", "tag_accounts", "tag_servers"], "start_at": today(),
                                        "end_at": today(), "tag_uses": {"id": tag}, "tag_accounts": {"id": f"#{tag}"},
                                        "tag_servers": {"id": tag.upper()}})
    assert {k: (m["total"], m["previous_total"], len(m["data"])) for k, m in tagged.items()} == {
        "tag_uses": ("2", "0", 1), "tag_accounts": ("2", "0", 1), "tag_servers": ("1", "0", 1)}


def test_bad_periods_and_who_may(http: httpx.Client, make_user: Callable[..., User],
                                 staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    _, admin = staff("msr_b", "Admin")
    _, nobody = staff("msr_n", "none")
    user = make_user("msr_p")
    for body, code in [
        ({"keys": EVERY, "end_at": today()}, 400),
        ({"keys": EVERY, "start_at": today()}, 400),
        ({"keys": EVERY, "start_at": "yesterday", "end_at": today()}, 422),
        ({"keys": EVERY, "start_at": today(), "end_at": "2000-01-01"}, 422),  # ends before it starts
        ({"keys": EVERY, "start_at": "2000-01-01", "end_at": today()}, 422),  # longer than a year
        ({"keys": EVERY, "start_at": 5, "end_at": today()}, 422),
        ({"keys": "active_users,new_users", "start_at": today(), "end_at": today()}, 200),  # one unknown key
        ({"keys": [1, 2], "start_at": today(), "end_at": today()}, 422),
        ({"keys": ["tag_uses"], "tag_uses": {"id": "not a tag"}, "start_at": today(), "end_at": today()}, 404),
    ]:
        answer = http.post(MEASURES, headers=admin, json=body)
        assert answer.status_code == code and (code == 200 or set(answer.json()) == {"error"}), (body, answer.text)
    # Keys Kicau does not keep (another server's figures) are left out, as Mastodon leaves out unknown ones; a
    # period may be given as times, of any offset (their days in UTC).
    only = http.post(MEASURES, headers=admin, json={
        "keys": ["instance_accounts", "new_users", "bogus"], "instance_accounts": {"domain": "example.com"},
        "start_at": "2026-01-01T23:30:00-02:00", "end_at": "2026-01-03T00:00:00Z"})
    assert [(m["key"], [d["date"][:10] for d in m["data"]]) for m in only.json()] == \
        [("new_users", ["2026-01-02", "2026-01-03"])], only.text
    body = {"keys": EVERY, "start_at": today(), "end_at": today()}
    answer = http.post(MEASURES, headers=nobody, json=body)
    assert (answer.status_code, answer.json()) == (403, NOT_ALLOWED)
    answer = http.post(MEASURES, headers=user.auth, json=body)
    assert (answer.status_code, answer.json()) == (403, OUT_OF_SCOPE)
    assert http.post(MEASURES, json=body).status_code == 401


def test_mastodon_py_reads_measures(gateway_url: str, admin_app: dict[str, Any],  # noqa: F811
                                    staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    owner, _ = staff("msr_o", "Admin")
    client = signed_in_client(gateway_url, admin_app, owner)
    now = datetime.now(UTC)
    found = client.admin_measures(now - timedelta(days=2), now, active_users=True, new_users=True,
                                  interactions=True, opened_reports=True, resolved_reports=True, tag_uses="kicau")
    assert [m.key for m in found] == [*EVERY, "tag_uses"]
    assert all(len(m.data) == 3 and int(m.total) >= 0 for m in found)
    assert int(found[1].data[-1].value) >= 1  # this test's owner registered today
    dimensions = client.admin_dimensions(now - timedelta(days=2), now, limit=5, languages=True,
                                         software_versions=True, space_usage=True)
    assert [d.key for d in dimensions] == ["languages", "space_usage", "software_versions"]  # as asked
    assert len(dimensions[0].data) <= 5


def test_dimensions_count_languages_and_report_the_stack(http: httpx.Client, make_user: Callable[..., User],
                                                         staff: Callable[[str, str], tuple[User, dict[str, str]]],  # noqa: F811
                                                         ) -> None:
    _, moderator = staff("msr_d", "Moderator")
    body = {"keys": ["languages", "software_versions", "space_usage", "servers"], "start_at": today(),
            "end_at": today()}

    def dimensions() -> dict[str, dict[str, Any]]:
        answer = http.post("/api/v1/admin/dimensions", headers=moderator, json=body)
        assert answer.status_code == 200, answer.text
        return {d["key"]: d for d in answer.json()}

    def languages() -> dict[str, int]:
        return {item["key"]: int(item["value"]) for item in dimensions()["languages"]["data"]}

    before = dimensions()
    assert list(before) == ["languages", "software_versions", "space_usage"]  # no other servers: left out
    author = make_user("msr_l")
    was = languages()
    for language in ("id", "id", "eo"):
        post(http, author, f"in {language}", language=language)
    post(http, author, "no language given")
    def counted() -> dict[str, int] | None:
        now = languages()
        return now if now.get("eo", 0) > was.get("eo", 0) else None

    grew = eventually(counted, timeout=30)
    assert grew is not None
    assert (grew["id"] - was.get("id", 0), grew["eo"] - was.get("eo", 0)) == (2, 1)
    named = {item["key"]: item["human_key"] for item in dimensions()["languages"]["data"]}
    assert (named["id"], named["eo"]) == ("Indonesian", "Esperanto")

    versions = {item["key"]: item["value"] for item in before["software_versions"]["data"]}
    assert set(versions) == {"kicau", "python", "redis", "cassandra"} and versions["cassandra"].startswith("5.")
    assert all(versions.values())
    space = {item["key"]: item for item in before["space_usage"]["data"]}
    assert set(space) == {"cassandra", "redis", "media"}
    assert int(space["redis"]["value"]) > 0 and int(space["cassandra"]["value"]) >= int(space["media"]["value"])
    assert all(item["unit"] == "bytes" and item["human_value"] for item in space.values())

    limited = http.post("/api/v1/admin/dimensions", headers=moderator,
                        json={"keys": ["languages"], "start_at": today(), "end_at": today(), "limit": 1})
    assert len(limited.json()[0]["data"]) == 1, limited.text
    for bad in ({"limit": 0}, {"limit": "x"}, {"start_at": "never"}, {"end_at": None}):
        answer = http.post("/api/v1/admin/dimensions", headers=moderator, json={**body, **bad})
        assert answer.status_code in (400, 422) and set(answer.json()) == {"error"}, (bad, answer.text)

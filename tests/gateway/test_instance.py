"""What the instance says of itself, through the public API of the running system: the server's use
(kicau/instance_usage.py: accounts, statuses as Mastodon counts them, no direct ones, reblogs and deletes counted,
the accounts active this month; the weekly activity), the picture it names, its rules and "about" text as
configured, and no peers. On a gateway of its own, configured so, that reads the use afresh on every request (the
stack's reads it once a minute)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from mastodon import Mastodon
from redis.asyncio import Redis

from kicau import instance_usage, keys, resp
from stack.gateways import spawned_gateway
from stack.services import service_env
from tests.conftest import User, eventually
from tests.timeline.test_visibility import post

RULES = ["Be kind.", "No <spam> & no bots posting for others."]
ABOUT = "Who we are.\nA small server.\n\nWhat we ask: <b>kindness</b> & patience."
PRIVACY = "We keep <little>.\n\nAsk us."
TODAY = datetime.now(UTC).date()
# Three versions of the terms: one replaced, the one in force, one to come.
TERMS = [{"effective_date": (TODAY - timedelta(days=400)).isoformat(), "text": "First terms."},
         {"effective_date": (TODAY - timedelta(days=10)).isoformat(), "text": "Current terms.\nNo <spam>."},
         {"effective_date": (TODAY + timedelta(days=30)).isoformat(), "text": "Coming terms."}]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with spawned_gateway(tmp_path_factory.mktemp("gateway-usage"), instance_usage_seconds="0",
                         instance_rules=json.dumps(RULES), instance_extended_description=ABOUT,
                         instance_privacy_policy=PRIVACY, instance_privacy_policy_updated_at="2026-11-02T10:20:30Z",
                         instance_terms_of_service=json.dumps(TERMS)) as gateway, \
            httpx.Client(base_url=gateway.url, timeout=10) as client:
        yield client


def reported(client: httpx.Client) -> tuple[int, int, int]:
    """(accounts, statuses, active this month), as /api/v1/instance and /api/v2/instance both say."""
    v1, v2 = client.get("/api/v1/instance").json(), client.get("/api/v2/instance").json()
    assert v1["stats"]["domain_count"] == 0  # Kicau knows no other server
    return v1["stats"]["user_count"], v1["stats"]["status_count"], v2["usage"]["users"]["active_month"]


def settled(client: httpx.Client) -> tuple[int, int, int]:
    """The figures once the fanout has applied what earlier tests posted: the same twice, a second apart."""
    last: list[tuple[int, int, int]] = [reported(client)]

    def steady() -> bool:
        time.sleep(1.0)
        now = reported(client)
        same = now == last[0]
        last[0] = now
        return same

    eventually(steady, timeout=60)
    return last[0]


def test_the_instance_counts_accounts_statuses_and_the_active(
    fresh: httpx.Client, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    accounts, statuses, active = settled(fresh)
    author, booster = make_user("usg_a"), make_user("usg_b")
    assert reported(fresh)[0] == accounts + 2
    kept = [post(http, author, "counted"), post(http, author, "counted too", visibility="unlisted"),
            post(http, author, "for followers, counted", visibility="private")]
    post(http, author, f"@{booster.username} direct: not counted", visibility="direct")
    gone = post(http, author, "deleted: counted, then not")
    boosted = http.post(f"/api/v1/statuses/{kept[0]}/reblog", headers=booster.auth)
    assert boosted.status_code == 200, boosted.text
    assert http.delete(f"/api/v1/statuses/{gone}", headers=author.auth).status_code == 200
    # Three statuses and a reblog stay; both accounts posted this month.
    eventually(lambda: reported(fresh) == (accounts + 2, statuses + 4, active + 2))


def test_the_instance_picture_is_served(fresh: httpx.Client) -> None:
    assert fresh.get("/api/v2/instance").json()["thumbnail"]["url"].endswith("/thumbnail.png")
    picture = fresh.get("/thumbnail.png")
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    assert picture.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_every_account_picture_it_names_is_served(http: httpx.Client, make_user: Callable[..., User]) -> None:
    """The avatar and header every account shows (Mastodon's "missing" pictures) are images, not 404s."""
    from PIL import Image

    account = http.get(f"/api/v1/accounts/{make_user('pic').id}").json()
    for name, size in (("avatar", (120, 120)), ("avatar_static", (120, 120)), ("header", (300, 100)),
                       ("header_static", (300, 100))):
        picture = http.get(urlsplit(account[name]).path)
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png", name
        assert Image.open(io.BytesIO(picture.content)).size == size


def test_the_rules_and_about_text_are_the_configured_ones(fresh: httpx.Client, http: httpx.Client) -> None:
    numbered = [{"id": "1", "text": RULES[0], "hint": ""}, {"id": "2", "text": RULES[1], "hint": ""}]
    assert fresh.get("/api/v1/instance/rules").json() == numbered
    assert fresh.get("/api/v1/instance").json()["rules"] == numbered
    assert fresh.get("/api/v2/instance").json()["rules"] == numbered
    assert fresh.get("/api/v1/instance/extended_description").json() == {
        "updated_at": None,
        "content": ("<p>Who we are.<br>A small server.</p>"
                    "<p>What we ask: &lt;b&gt;kindness&lt;/b&gt; &amp; patience.</p>")}
    # Unconfigured (the stack's gateway): none, and an empty text.
    assert http.get("/api/v1/instance/rules").json() == []
    assert http.get("/api/v1/instance/extended_description").json() == {"updated_at": None, "content": ""}
    # Kicau federates with no one, and translates nothing.
    assert fresh.get("/api/v1/instance/peers").json() == []
    assert fresh.get("/api/v1/instance/translation_languages").json() == {}


def test_the_privacy_policy_is_the_configured_one_or_kicaus(fresh: httpx.Client, http: httpx.Client) -> None:
    assert fresh.get("/api/v1/instance/privacy_policy").json() == {
        "updated_at": "2026-11-02T10:20:30.000Z", "content": "<p>We keep &lt;little&gt;.</p><p>Ask us.</p>"}
    # Unconfigured: Kicau's own, which says what it keeps.
    own = http.get("/api/v1/instance/privacy_policy").json()
    assert own["updated_at"] == "2026-12-05T00:00:00.000Z"
    assert own["content"].startswith("<p>This server runs Kicau.") and "Argon2id" in own["content"]
    assert own["content"].count("<p>") == 5 and "\\" not in own["content"]


def test_the_terms_of_service_in_force_and_by_day(fresh: httpx.Client, http: httpx.Client,
                                                  gateway_url: str) -> None:
    first, current, coming = (t["effective_date"] for t in TERMS)
    assert fresh.get("/api/v1/instance/terms_of_service").json() == {
        "effective_date": current, "effective": True, "content": "<p>Current terms.<br>No &lt;spam&gt;.</p>",
        "succeeded_by": coming}
    assert fresh.get(f"/api/v1/instance/terms_of_service/{first}").json() == {
        "effective_date": first, "effective": True, "content": "<p>First terms.</p>", "succeeded_by": current}
    assert fresh.get(f"/api/v1/instance/terms_of_service/{coming}").json() == {
        "effective_date": coming, "effective": False, "content": "<p>Coming terms.</p>", "succeeded_by": None}
    # Mastodon.py asks for a day as a query parameter.
    assert fresh.get("/api/v1/instance/terms_of_service", params={"date": first}).json()["content"] == (
        "<p>First terms.</p>")
    client = Mastodon(api_base_url=str(fresh.base_url))
    assert client.instance_terms_of_service()["effective_date"].date().isoformat() == current  # parsed by it
    assert client.instance_terms_of_service(TODAY + timedelta(days=30))["content"] == "<p>Coming terms.</p>"
    # No version takes effect that day, a day that is no day, and a server with no terms (the stack's): 404.
    for path, params in ((f"/api/v1/instance/terms_of_service/{TODAY.isoformat()}", {}),
                         ("/api/v1/instance/terms_of_service/not-a-day", {}),
                         ("/api/v1/instance/terms_of_service", {"date": "2026-13-40"})):
        answer = fresh.get(path, params=params)
        assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), (path, answer.text)
    for path in ("/api/v1/instance/terms_of_service", f"/api/v1/instance/terms_of_service/{current}"):
        answer = http.get(path)
        assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), (path, answer.text)
    assert Mastodon(api_base_url=gateway_url).instance_languages()[0] == {"code": "aa", "name": "Afar"}


def test_terms_not_yet_in_force_are_the_first_to_come() -> None:
    from services.gateway.routes.instance import terms_entity, terms_in_force
    from services.gateway.settings import TermsVersion

    later = [TermsVersion(effective_date=TODAY + timedelta(days=d), text=f"v{d}") for d in (20, 5)]
    chosen = terms_in_force(later, TODAY)
    assert chosen is not None and chosen.text == "v5"
    assert terms_entity(chosen, later, TODAY) == {
        "effective_date": (TODAY + timedelta(days=5)).isoformat(), "effective": False, "content": "<p>v5</p>",
        "succeeded_by": (TODAY + timedelta(days=20)).isoformat()}
    assert terms_in_force([], TODAY) is None


def test_the_languages_and_no_moderated_servers(http: httpx.Client) -> None:
    found = http.get("/api/v1/instance/languages").json()
    assert len(found) == 184 and [lang["code"] for lang in found] == sorted(lang["code"] for lang in found)
    assert all(set(lang) == {"code", "name"} and len(lang["code"]) == 2 and lang["name"] for lang in found)
    names = {lang["code"]: lang["name"] for lang in found}
    assert (names["en"], names["id"], names["el"], names["ms"]) == ("English", "Indonesian", "Greek", "Malay")
    assert http.get("/api/v1/instance/domain_blocks").json() == []


def this_week(client: httpx.Client) -> dict[str, str]:
    answer = client.get("/api/v1/instance/activity")
    assert answer.status_code == 200, answer.text
    weeks: list[dict[str, str]] = answer.json()
    assert len(weeks) == 12 and all(set(w) == {"week", "statuses", "logins", "registrations"} for w in weeks)
    starts = [int(w["week"]) for w in weeks]
    assert starts == [starts[0] - n * 7 * 86400 for n in range(12)]
    assert datetime.fromtimestamp(starts[0], UTC).strftime("%a %H:%M:%S") == "Mon 00:00:00"
    assert starts[0] <= time.time() < starts[0] + 7 * 86400
    return weeks[0]


def test_the_weekly_activity_counts_statuses_sign_ins_and_registrations(
    fresh: httpx.Client, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    settled(fresh)
    before = this_week(fresh)
    author, other = make_user("act_a"), make_user("act_b")
    for text in ("one", "two"):
        post(http, author, text)
    post(http, author, f"@{other.username} direct, counted", visibility="direct")
    gone = post(http, author, "deleted, still counted")
    assert http.post(f"/api/v1/statuses/{gone}/reblog", headers=other.auth).status_code == 200  # not counted
    assert http.delete(f"/api/v1/statuses/{gone}", headers=author.auth).status_code == 200
    settled(fresh)
    after = this_week(fresh)
    assert int(after["statuses"]) == int(before["statuses"]) + 4
    assert int(after["registrations"]) == int(before["registrations"]) + 2
    assert int(after["logins"]) >= int(before["logins"])  # an estimate (HyperLogLog): exact below, on its own week


def test_activity_weeks_as_redis_holds_them(stack_redis: Any) -> None:
    """kicau/instance_usage.py's reads and writes on the stack's Redis, in a week of its own (years ahead)."""
    future = datetime(2031, 3, 12, 15, 0, tzinfo=UTC).timestamp()  # a Wednesday
    week = instance_usage.week_of(future)
    assert datetime.fromtimestamp(week, UTC) == datetime(2031, 3, 10, tzinfo=UTC)
    monday_ms = int(week * 1000)
    written = [*(packed for account in (11, 12, 11) for packed in instance_usage.login_commands(account, now=future)),
               *instance_usage.weekly_statuses_commands([monday_ms, monday_ms + 5, monday_ms - 1])]
    try:
        weeks = asyncio.run(_write_and_read(written, future))
        assert weeks[0] == {"week": str(week), "statuses": "2", "logins": "2", "registrations": "0"}
        assert weeks[1]["week"] == str(week - 7 * 86400) and weeks[1]["statuses"] == "1"
        assert 0 < stack_redis.ttl(keys.weekly_logins(week)) <= 13 * 7 * 86400
    finally:
        stack_redis.delete(keys.weekly_logins(week))
        stack_redis.hdel(keys.weekly_statuses(), str(week), str(week - 7 * 86400))


async def _write_and_read(commands: list[bytes], now: float) -> list[dict[str, str]]:
    redis = Redis.from_url(service_env()["KICAU_REDIS_URL"])
    try:
        await resp.round_trip(redis, commands)
        return await instance_usage.activity(redis, now=now)
    finally:
        await redis.aclose()


def test_the_instance_announces_the_character_limit_posts_are_held_to(http: httpx.Client,
                                                                      make_user: Callable[..., User]) -> None:
    """One setting (``KICAU_MAX_CHARACTERS``) for the post service's check and the instance documents: clients
    count against what the instance says (the gateway announced 500 whatever the post service allowed)."""
    v1, v2 = http.get("/api/v1/instance").json(), http.get("/api/v2/instance").json()
    limit = v1["configuration"]["statuses"]["max_characters"]
    assert v2["configuration"]["statuses"]["max_characters"] == limit
    author = make_user("mxc_a")
    fits = http.post("/api/v1/statuses", headers=author.auth, json={"status": "\u00e9" * limit})
    assert fits.status_code == 200, fits.text
    longer = http.post("/api/v1/statuses", headers=author.auth, json={"status": "\u00e9" * (limit + 1)})
    assert longer.status_code == 422, longer.text
    assert longer.json() == {"error": f"Validation failed: Text character limit of {limit} exceeded"}


def test_nodeinfo_names_kicau_and_counts_its_use(fresh: httpx.Client, http: httpx.Client, gateway_url: str,
                                                 make_user: Callable[..., User]) -> None:
    schema = "http://nodeinfo.diaspora.software/ns/schema/"
    links = fresh.get("/.well-known/nodeinfo").json()["links"]
    assert [(link["rel"], urlsplit(link["href"]).path) for link in links] == [
        (f"{schema}2.0", "/nodeinfo/2.0"), (f"{schema}2.1", "/nodeinfo/2.1")]

    def nodeinfo(version: str = "2.0") -> dict[str, Any]:
        answer = fresh.get(f"/nodeinfo/{version}")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == f'application/json; profile="{schema}{version}#"'
        body: dict[str, Any] = answer.json()
        return body

    accounts, statuses, active = settled(fresh)
    first = nodeinfo()
    assert (first["version"], first["software"]["name"], first["protocols"], first["openRegistrations"]) == (
        "2.0", "kicau", [], True)
    users = first["usage"]["users"]
    assert (users["total"], users["activeMonth"], first["usage"]["localPosts"]) == (accounts, active, statuses)
    assert users["activeHalfyear"] >= users["activeMonth"]
    assert nodeinfo("2.1")["version"] == "2.1"

    author = make_user("ndi_a")
    post(http, author, "now active")
    # The fanout counts the status as it applies it, the post service the active account as it posts.
    now = eventually(lambda: (u := nodeinfo()["usage"])["users"]["activeMonth"] == active + 1
                     and u["localPosts"] >= statuses + 1 and u, timeout=60)
    assert (now["users"]["total"], now["users"]["activeHalfyear"]) == (accounts + 1, users["activeHalfyear"] + 1)

    assert Mastodon(api_base_url=gateway_url).instance_nodeinfo()["software"]["name"] == "kicau"
    missing = fresh.get("/nodeinfo/1.0")
    assert (missing.status_code, missing.json()) == (404, {"error": "Record not found"})

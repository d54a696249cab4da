"""Scheduled statuses (services/post/scheduled.py) on the running stack: ``POST /api/v1/statuses`` with
``scheduled_at`` keeps the status and answers a ScheduledStatus; ``/api/v1/scheduled_statuses`` lists, shows, moves
and drops them; Mastodon's rules refuse a time too soon and a day past its limit; and a status is posted once when
its time comes, also when the post service that publishes it dies between the publish and the removal.

Publishing is driven by a second post service (same engines) that accepts times a second ahead, where the stack's
keeps Mastodon's five minutes: it schedules the statuses and, polling ten times as often as the stack's, is the
first to find them due.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from kicau.crash_points import CRASH_EXIT_CODE
from kicau.web import ACCOUNT_HEADER, ApiError
from services.post.scheduled import DAILY_LIMIT, TOTAL_LIMIT, check_time, iso, parse_time
from services.post.settings import PostSettings
from tests.conftest import User, eventually
from tests.graph.test_admin import accounts_tool
from tests.timeline.test_home_invariant import home_ids


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def schedule(http: httpx.Client, author: User, text: str, when: str, **fields: Any) -> httpx.Response:
    return http.post("/api/v1/statuses", headers=author.auth, json={"status": text, "scheduled_at": when, **fields})


def scheduled_ids(http: httpx.Client, user: User) -> list[str]:
    answer = http.get("/api/v1/scheduled_statuses", headers=user.auth)
    assert answer.status_code == 200, answer.text
    return [s["id"] for s in answer.json()]


def profile_texts(http: httpx.Client, author: User) -> list[str]:
    answer = http.get(f"/api/v1/accounts/{author.id}/statuses?limit=40", headers=author.auth)
    assert answer.status_code == 200, answer.text
    return [s["content"] for s in answer.json()]


def test_a_scheduled_status_is_kept_listed_moved_and_dropped(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    author, other = make_user("sch_a"), make_user("sch_o")
    when = later(hours=1)
    answer = schedule(http, author, "for later", when, visibility="unlisted", spoiler_text="cw", language="en")
    assert answer.status_code == 200, answer.text
    kept = answer.json()
    assert set(kept) == {"id", "scheduled_at", "params", "media_attachments"}
    assert kept["scheduled_at"] == iso(parse_time(when)) and kept["media_attachments"] == []
    params = kept["params"]
    assert (params["text"], params["visibility"], params["spoiler_text"], params["language"]) == (
        "for later", "unlisted", "cw", "en")
    assert params["poll"] is None and params["media_ids"] is None and params["in_reply_to_id"] is None
    # Not posted: nothing on the author's profile, and its count unmoved.
    assert profile_texts(http, author) == []
    assert http.get("/api/v1/accounts/verify_credentials", headers=author.auth).json()["statuses_count"] == 0

    # A repeated Idempotency-Key answers the status it scheduled, once.
    again = {"status": "for even later", "scheduled_at": later(hours=3)}
    keyed = {**author.auth, "Idempotency-Key": f"sch-{author.id}"}
    second = http.post("/api/v1/statuses", headers=keyed, json=again).json()
    assert http.post("/api/v1/statuses", headers=keyed, json=again).json() == second
    assert scheduled_ids(http, author) == [second["id"], kept["id"]]
    page = http.get("/api/v1/scheduled_statuses?limit=1", headers=author.auth)
    assert [s["id"] for s in page.json()] == [second["id"]]
    assert [s["id"] for s in http.get(page.links["next"]["url"], headers=author.auth).json()] == [kept["id"]]
    shown = http.get(f"/api/v1/scheduled_statuses/{kept['id']}", headers=author.auth)
    assert shown.status_code == 200 and shown.json() == kept
    # Someone else's is missing to it.
    for method in ("GET", "PUT", "DELETE"):
        missing = http.request(method, f"/api/v1/scheduled_statuses/{kept['id']}", headers=other.auth,
                               json={"scheduled_at": later(hours=2)})
        assert (missing.status_code, missing.json()) == (404, {"error": "Record not found"}), method
    assert scheduled_ids(http, other) == []

    # Moved: to another time at least five minutes ahead, and only there.
    moved_to = later(hours=2)
    moved = http.put(f"/api/v1/scheduled_statuses/{kept['id']}", headers=author.auth, json={"scheduled_at": moved_to})
    assert moved.status_code == 200, moved.text
    assert moved.json() == {**kept, "scheduled_at": iso(parse_time(moved_to))}
    too_soon = http.put(f"/api/v1/scheduled_statuses/{kept['id']}", headers=author.auth,
                        data={"scheduled_at": later(minutes=1)})
    assert too_soon.status_code == 422 and "future" in too_soon.json()["error"], too_soon.text
    assert http.get(f"/api/v1/scheduled_statuses/{kept['id']}", headers=author.auth).json() == moved.json()

    # Dropped: gone, and never posted.
    assert http.delete(f"/api/v1/scheduled_statuses/{kept['id']}", headers=author.auth).json() == {}
    assert http.get(f"/api/v1/scheduled_statuses/{kept['id']}", headers=author.auth).status_code == 404
    assert scheduled_ids(http, author) == [second["id"]]


def test_times_and_drafts_a_status_may_not_be_scheduled_with(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    author = make_user("sch_bad")
    for when in (later(minutes=1), later(hours=-1), "tomorrow", "2026-13-40T99:00:00Z"):
        answer = schedule(http, author, "when?", when)
        assert answer.status_code == 422, (when, answer.text)
        assert answer.json()["error"].startswith("Validation failed"), answer.text
    for fields in ({"status": " "}, {"visibility": "everyone"}, {"in_reply_to_id": "1"}):
        answer = http.post("/api/v1/statuses", headers=author.auth,
                           json={"status": "x", "scheduled_at": later(hours=1), **fields})
        assert answer.status_code == 422, (fields, answer.text)
    # Mastodon's daily limit: 25 due on one day; another day has room.
    day = (datetime.now(UTC) + timedelta(days=3)).replace(hour=6, minute=0, second=0, microsecond=0)
    for n in range(DAILY_LIMIT):
        answer = schedule(http, author, f"morning {n}", (day + timedelta(minutes=n)).isoformat())
        assert answer.status_code == 200, answer.text
    answer = schedule(http, author, "one too many", (day + timedelta(hours=5)).isoformat())
    assert answer.status_code == 422 and "limit" in answer.json()["error"], answer.text
    assert schedule(http, author, "next day", (day + timedelta(days=1)).isoformat()).status_code == 200
    assert len(scheduled_ids(http, author)) == 20  # a page; nothing refused was kept
    assert profile_texts(http, author) == []


def test_the_rules_of_time_as_pure_logic() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    lead = timedelta(minutes=5)
    check_time(now + lead, now, [], lead)
    with pytest.raises(ApiError):
        check_time(now + lead - timedelta(seconds=1), now, [], lead)
    with pytest.raises(ApiError):
        check_time(now + timedelta(days=2), now, [now + timedelta(days=5 + n) for n in range(TOTAL_LIMIT)], lead)
    assert parse_time("2026-12-03T12:00:00.123456+02:00") == datetime(2026, 12, 3, 10, 0, 0, 123000, tzinfo=UTC)
    assert parse_time("2026-12-03T12:00:00") == datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # no offset: UTC
    assert iso(datetime(2026, 12, 3, 10, 0, 0, 123000, tzinfo=UTC)) == "2026-12-03T10:00:00.123Z"


STACK_POST = f"http://127.0.0.1:{PostSettings().port}"  # the stack's post service, on its HTTP port


def taken_up(*urls: str) -> dict[str, float]:
    """``kicau_scheduled_statuses_due_total`` by outcome, summed over the post services at ``urls``."""
    found: dict[str, float] = {}
    for url in urls:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        for outcome, value in re.findall(r'^kicau_scheduled_statuses_due_total\{outcome="(\w+)"\} (\S+)$', text,
                                         re.MULTILINE):
            found[outcome] = found.get(outcome, 0.0) + float(value)
    return found


def schedule_on(url: str, author: User, text: str, seconds: float, **fields: Any) -> dict[str, Any]:
    answer = httpx.post(f"{url}/internal/statuses", headers={ACCOUNT_HEADER: author.id}, timeout=30,
                        json={"status": text, "scheduled_at": later(seconds=seconds), **fields})
    assert answer.status_code == 200, answer.text
    kept: dict[str, Any] = answer.json()
    return kept


def test_a_scheduled_status_is_posted_once_when_its_time_comes(
    http: httpx.Client, make_user: Callable[..., User],
    eager_post_service: Callable[..., tuple[str, subprocess.Popen[bytes]]],
) -> None:
    author, follower = make_user("sch_p"), make_user("sch_f")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=follower.auth).status_code == 200
    assert home_ids(http, follower) == []
    url, _ = eager_post_service()
    before = taken_up(STACK_POST)
    parent = http.post("/api/v1/statuses", headers=author.auth, json={"status": "the thread"}).json()["id"]
    kept = schedule_on(url, author, "posted by the scheduler", 2, spoiler_text="later", language="de")
    schedule_on(url, author, "a scheduled reply", 2, in_reply_to_id=parent)
    # A reply whose parent is deleted before its time is dropped then, as Mastodon drops what can no longer be
    # posted.
    doomed = http.post("/api/v1/statuses", headers=author.auth, json={"status": "short-lived"}).json()["id"]
    schedule_on(url, author, "a reply to the short-lived", 2, in_reply_to_id=doomed)
    assert http.delete(f"/api/v1/statuses/{doomed}", headers=author.auth).status_code == 200

    eventually(lambda: scheduled_ids(http, author) == [] or None, timeout=60)
    statuses = http.get(f"/api/v1/accounts/{author.id}/statuses?limit=40", headers=author.auth).json()
    by_text = {s["content"]: s for s in statuses}
    # The thread and the two that could be posted, each once.
    assert sorted(by_text) == ["<p>a scheduled reply</p>", "<p>posted by the scheduler</p>", "<p>the thread</p>"]
    assert len(statuses) == 3
    posted = by_text["<p>posted by the scheduler</p>"]
    assert (posted["spoiler_text"], posted["language"], posted["visibility"]) == ("later", "de", "public")
    assert datetime.fromisoformat(posted["created_at"]) >= datetime.fromisoformat(kept["scheduled_at"])
    assert by_text["<p>a scheduled reply</p>"]["in_reply_to_id"] == parent
    # Counted where they were taken up (the stack's post service may take up one the eager one has just posted:
    # its retry is answered the status already posted, and counts as posted too).
    after = taken_up(url, STACK_POST)
    assert after.get("posted", 0) - before.get("posted", 0) >= 2
    assert after.get("dropped", 0) - before.get("dropped", 0) >= 1
    # Fanned out as any status: the follower's home timeline has it.
    eventually(lambda: posted["id"] in home_ids(http, follower) or None)


def test_a_disabled_accounts_scheduled_status_is_dropped_when_due(
    http: httpx.Client, make_user: Callable[..., User],
    eager_post_service: Callable[..., tuple[str, subprocess.Popen[bytes]]],
) -> None:
    """As Mastodon's PublishScheduledStatusWorker: an author whose login the operator disabled posts nothing when
    its scheduled status falls due, and the status is dropped (not kept for after an ``enable``)."""
    author = make_user("sch_dis")
    url, _ = eager_post_service()
    before = taken_up(url, STACK_POST)
    schedule_on(url, author, "never to be posted", 8)
    accounts_tool("disable", author.username)
    try:
        eventually(lambda: taken_up(url, STACK_POST).get("dropped", 0) > before.get("dropped", 0) or None,
                   timeout=60)
    finally:
        accounts_tool("enable", author.username)
    assert scheduled_ids(http, author) == []
    assert profile_texts(http, author) == []
    assert taken_up(url, STACK_POST).get("posted", 0) == before.get("posted", 0)


def test_a_scheduled_poll_is_posted_with_its_status_and_lasts_from_then(
    http: httpx.Client, make_user: Callable[..., User],
    eager_post_service: Callable[..., tuple[str, subprocess.Popen[bytes]]],
) -> None:
    author = make_user("sch_poll")
    url, _ = eager_post_service()
    kept = schedule_on(url, author, "which one?", 2, poll={"options": ["this", "that"], "expires_in": 600,
                                                         "multiple": True})
    assert kept["params"]["poll"] == {"options": ["this", "that"], "expires_in": 600, "multiple": True,
                                      "hide_totals": False}
    assert http.get(f"/api/v1/scheduled_statuses/{kept['id']}", headers=author.auth).json() == kept
    eventually(lambda: scheduled_ids(http, author) == [] or None, timeout=60)
    [posted] = http.get(f"/api/v1/accounts/{author.id}/statuses", headers=author.auth).json()
    poll = posted["poll"]
    assert [o["title"] for o in poll["options"]] == ["this", "that"] and poll["multiple"] is True
    # Ten minutes from when it was posted, not from when it was scheduled.
    lasts = datetime.fromisoformat(poll["expires_at"]) - datetime.fromisoformat(posted["created_at"])
    assert timedelta(seconds=599) <= lasts <= timedelta(seconds=601), lasts
    voter = make_user("sch_pv")
    assert http.post(f"/api/v1/polls/{poll['id']}/votes", headers=voter.auth,
                     json={"choices": ["0", "1"]}).status_code == 200


def test_a_scheduled_quote_is_checked_now_and_again_when_posted(
    http: httpx.Client, make_user: Callable[..., User],
    eager_post_service: Callable[..., tuple[str, subprocess.Popen[bytes]]],
) -> None:
    author, quoter = make_user("sch_qa"), make_user("sch_qq")
    open_one = http.post("/api/v1/statuses", headers=author.auth, json={"status": "quote me later"}).json()
    closing = http.post("/api/v1/statuses", headers=author.auth, json={"status": "not for long"}).json()
    closed = http.post("/api/v1/statuses", headers=author.auth,
                       json={"status": "never", "quote_approval_policy": "nobody"}).json()
    # Refused when it is scheduled, as a quote posted now would be.
    refused = schedule(http, quoter, "no", later(hours=1), quoted_status_id=closed["id"])
    assert (refused.status_code, refused.json()) == (
        422, {"error": "Validation failed: You are not allowed to quote this post"})
    url, _ = eager_post_service()
    kept = schedule_on(url, quoter, "quoted on time", 2, quoted_status_id=open_one["id"],
                       quote_approval_policy="followers")
    assert (kept["params"]["quoted_status_id"], kept["params"]["quote_approval_policy"]) == (
        open_one["id"], "followers")
    # Its quote no longer allowed when its time comes: dropped, as Mastodon drops what can no longer be posted.
    schedule_on(url, quoter, "quoted too late", 2, quoted_status_id=closing["id"])
    assert http.put(f"/api/v1/statuses/{closing['id']}/interaction_policy", headers=author.auth,
                    json={"quote_approval_policy": "nobody"}).status_code == 200

    eventually(lambda: scheduled_ids(http, quoter) == [] or None, timeout=60)
    [posted] = http.get(f"/api/v1/accounts/{quoter.id}/statuses", headers=quoter.auth).json()
    assert posted["content"].endswith("<p>quoted on time</p>")
    assert posted["quote"]["state"] == "accepted" and posted["quote"]["quoted_status"]["id"] == open_one["id"]
    assert posted["quote_approval"]["automatic"] == ["followers"]
    assert http.get(f"/api/v1/statuses/{open_one['id']}", headers=author.auth).json()["quotes_count"] == 1


def test_a_scheduled_status_holds_its_attachments_until_it_is_posted_with_them(
    http: httpx.Client, make_user: Callable[..., User],
    eager_post_service: Callable[..., tuple[str, subprocess.Popen[bytes]]],
) -> None:
    """Attachments named by a scheduled status are its own until it is posted (no other status may take them),
    then the posted status's; dropping a scheduled status frees them."""
    from tests.post.test_media import uploaded

    author = make_user("sch_med")
    first, second = uploaded(http, author, description="one"), uploaded(http, author, description="two")
    url, _ = eager_post_service()
    kept = schedule_on(url, author, "pictures later", 3, media_ids=[second["id"], first["id"]])
    assert kept["params"]["media_ids"] == [second["id"], first["id"]]
    assert [m["id"] for m in kept["media_attachments"]] == [second["id"], first["id"]]
    taken = http.post("/api/v1/statuses", headers=author.auth, json={"status": "x", "media_ids": [first["id"]]})
    assert taken.status_code == 422, taken.text
    eventually(lambda: scheduled_ids(http, author) == [] or None, timeout=60)
    [posted] = http.get(f"/api/v1/accounts/{author.id}/statuses", headers=author.auth).json()
    assert [(m["id"], m["description"]) for m in posted["media_attachments"]] == [
        (second["id"], "two"), (first["id"], "one")]

    # Dropped before its time: its attachment is free again.
    third = uploaded(http, author)
    dropped = schedule(http, author, "never", later(hours=1), media_ids=[third["id"]])
    assert dropped.status_code == 200, dropped.text
    assert http.delete(f"/api/v1/scheduled_statuses/{dropped.json()['id']}", headers=author.auth).status_code == 200
    free = http.post("/api/v1/statuses", headers=author.auth, json={"status": "now", "media_ids": [third["id"]]})
    assert free.status_code == 200, free.text


def test_a_scheduler_that_dies_after_publishing_publishes_nothing_twice(
    http: httpx.Client, make_user: Callable[..., User],
    eager_post_service: Callable[..., tuple[str, subprocess.Popen[bytes]]],
) -> None:
    """The eager post service dies right after its first publish, before it removes what it published: the
    stack's own post service finds that status still due and publishes it under the same Idempotency-Key, which
    answers the status already posted; the others are posted by it too. Each once."""
    author = make_user("sch_c")
    url, process = eager_post_service(KICAU_CRASH_AT="post.scheduled.published")
    # Six due at once: the stack's post service, looking once a second, cannot post them all in the tenth of a
    # second before the eager one looks, so the eager one publishes (and dies) at least once.
    texts = [f"scheduled {n}" for n in range(6)]
    for text in texts:
        schedule_on(url, author, text, 2)
    assert process.wait(timeout=60) == CRASH_EXIT_CODE
    eventually(lambda: scheduled_ids(http, author) == [] or None, timeout=60)
    assert sorted(profile_texts(http, author)) == sorted(f"<p>{text}</p>" for text in texts)

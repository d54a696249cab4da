"""Announcements (kicau/announcements.py) through the public API of the running system, written by the operator's
tool (``python -m services.graph.announce``): shown in their window, each account's ``read`` and reactions, bad
input, and taken down. The emoji test is pure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from kicau.announcements import is_emoji
from kicau.web import ACCOUNT_HEADER
from stack.config import ROOT
from stack.services import service_env
from tests.conftest import User
from tests.faults.harness import service_pid, service_port
from tests.gateway.test_streaming import read_events
from tests.timeline.test_visibility import user_streams


def announce(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "services.graph.announce", *args], cwd=ROOT, env=service_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def made() -> Iterator[list[str]]:
    """The announcements a test makes, taken down after it."""
    ids: list[str] = []
    yield ids
    for announcement_id in ids:
        announce("remove", announcement_id)


def shown(http: httpx.Client, user: User, query: str = "") -> dict[str, dict[str, Any]]:
    answer = http.get(f"/api/v1/announcements{query}", headers=user.auth)
    assert answer.status_code == 200, answer.text
    return {a["id"]: a for a in answer.json()}


def react(http: httpx.Client, user: User, announcement_id: str, name: str, undo: bool = False) -> httpx.Response:
    return http.request("DELETE" if undo else "PUT",
                        f"/api/v1/announcements/{announcement_id}/reactions/{quote(name)}", headers=user.auth)


def reactions(http: httpx.Client, user: User, announcement_id: str) -> dict[str, tuple[int, bool]]:
    found = shown(http, user, "?with_dismissed=true")[announcement_id]["reactions"]
    return {r["name"]: (r["count"], r["me"]) for r in found}


def test_announcements_in_their_window_read_and_reacted_to(
    http: httpx.Client, make_user: Callable[..., User], made: list[str],
) -> None:
    alice, bob = make_user("ann_a"), make_user("ann_b")
    now = datetime.now(UTC)
    made.append(announce("add", "Maintenance tonight at 22:00 UTC.\n\nThanks for your patience."))
    current = made[-1]
    made.append(announce("add", "Not yet", "--starts-at", (now + timedelta(days=1)).isoformat()))
    made.append(announce("add", "Over", "--ends-at", (now - timedelta(hours=1)).isoformat()))
    made.append(announce("add", "All day today", "--starts-at", now.date().isoformat(), "--ends-at",
                         (now + timedelta(days=1)).date().isoformat(), "--all-day"))
    listed = shown(http, alice)
    assert current in listed and made[-1] in listed and made[1] not in listed and made[2] not in listed
    one = listed[current]
    assert one["content"] == "<p>Maintenance tonight at 22:00 UTC.</p><p>Thanks for your patience.</p>"
    assert (one["read"], one["reactions"], one["all_day"], one["starts_at"]) == (False, [], False, None)
    assert listed[made[-1]]["all_day"] is True and listed[made[-1]]["starts_at"].startswith(now.date().isoformat())
    assert current in announce("list")

    # Reactions: one a person an emoji, counted for everyone, "me" for each.
    for who, name in ((alice, "👍"), (alice, "👍"), (bob, "👍"), (bob, "🇯🇵"), (bob, "❤️")):
        answer = react(http, who, current, name)
        assert (answer.status_code, answer.json()) == (200, {}), answer.text
    assert reactions(http, alice, current) == {"👍": (2, True), "🇯🇵": (1, False), "❤️": (1, False)}
    assert react(http, bob, current, "👍", undo=True).status_code == 200
    assert reactions(http, bob, current) == {"👍": (1, False), "🇯🇵": (1, True), "❤️": (1, True)}

    # Dismissed: gone from the list, there with with_dismissed, read; for that account alone.
    assert http.post(f"/api/v1/announcements/{current}/dismiss", headers=alice.auth).json() == {}
    assert current not in shown(http, alice)
    assert shown(http, alice, "?with_dismissed=true")[current]["read"] is True
    assert shown(http, bob)[current]["read"] is False

    announce("remove", current)
    made.remove(current)
    assert current not in shown(http, bob, "?with_dismissed=true")


def test_user_streams_are_told_of_announcements(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], made: list[str],
) -> None:
    """Mastodon's ``announcement``, ``announcement.reaction`` and ``announcement.delete`` on the user stream."""
    alice = make_user("ans_a")
    with user_streams(gateway_url, http, alice, alice) as (lines,):
        made.append(announce("add", "Streamed to everyone"))
        (event,) = read_events(lines, 1)
        assert event["event"] == "announcement", event
        told = json.loads(event["data"])
        assert (told["id"], told["read"], told["content"]) == (made[-1], False, "<p>Streamed to everyone</p>")
        assert react(http, alice, made[-1], "🎉").status_code == 200
        (event,) = read_events(lines, 1)
        assert event["event"] == "announcement.reaction", event
        assert json.loads(event["data"]) == {"name": "🎉", "count": 1, "announcement_id": made[-1]}
        gone = made.pop()
        announce("remove", gone)
        (event,) = read_events(lines, 1)
        assert (event["event"], event["data"]) == ("announcement.delete", gone)


def test_user_streams_are_told_the_announcements_they_missed_while_the_channel_was_down(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], made: list[str], stack_redis: Any,
) -> None:
    """Changes are told to the streams on a Redis channel: those made while a gateway's channel is down never reach
    it. Once it is back, the gateway reads what is shown and tells its user streams the difference, as the live
    events would have: an announcement made, a reaction's count, an announcement taken down; not one it was told
    before. The loss is made sure of as in tests/timeline/test_filters.py: the gateway stopped (SIGSTOP), its
    channel closed by Redis, the change made meanwhile (a reaction through the graph service itself)."""
    alice = make_user("anl_a")
    gateway = service_pid("gateway")
    reactions_url = f"http://127.0.0.1:{service_port('graph')}/internal/announcements/{{}}/reactions/{{}}"

    def while_away(change: Callable[[], object]) -> None:
        os.kill(gateway, signal.SIGSTOP)
        try:
            assert stack_redis.client_kill_filter(_type="pubsub") >= 1
            change()
        finally:
            os.kill(gateway, signal.SIGCONT)

    def told(lines: Iterator[str], until: str) -> list[tuple[str, str]]:
        """The announcement events up to the first ``until`` (the user stream's other events left out)."""
        found: list[tuple[str, str]] = []
        while not found or found[-1][0] != until:
            (event,) = read_events(lines, 1)
            if event["event"].startswith("announcement"):
                data = event["data"] if event["event"] == "announcement.delete" else json.loads(event["data"])
                found.append((event["event"], data if isinstance(data, str) else
                              f"{data.get('announcement_id') or data['id']}:{data.get('count', '')}"))
        return found

    made.append(announce("add", "Told before the loss"))
    with user_streams(gateway_url, http, alice, alice) as (lines,):
        while_away(lambda: made.append(announce("add", "Made while away")))
        assert told(lines, "announcement") == [("announcement", f"{made[-1]}:")]
        while_away(lambda: httpx.put(reactions_url.format(made[-1], quote("🎉")), timeout=10,
                                     headers={ACCOUNT_HEADER: alice.id}).raise_for_status())
        assert told(lines, "announcement.reaction") == [("announcement.reaction", f"{made[-1]}:1")]
        gone = made.pop()
        while_away(lambda: announce("remove", gone))
        assert told(lines, "announcement.delete") == [("announcement.delete", gone)]
        assert react(http, alice, made[0], "🎉").status_code == 200  # and live, as before
        assert told(lines, "announcement.reaction") == [("announcement.reaction", f"{made[0]}:1")]


def test_bad_announcement_requests_are_a_clear_4xx(
    http: httpx.Client, make_user: Callable[..., User], made: list[str],
) -> None:
    alice = make_user("anb_a")
    made.append(announce("add", "Room for eight"))
    current = made[-1]
    made.append(announce("add", "Later", "--starts-at", (datetime.now(UTC) + timedelta(days=1)).isoformat()))
    for fruit in "🍎🍊🍋🍌🍉🍇🍓🍒":
        assert react(http, alice, current, fruit).status_code == 200
    for answer, code in [
        (react(http, alice, current, "🍑"), 422),  # a ninth kind
        (react(http, alice, current, "abc"), 422),  # not an emoji
        (react(http, alice, current, ":blobcat:"), 422),  # no custom emoji here
        (react(http, alice, "99999999999", "👍"), 404),
        (react(http, alice, made[-1], "👍"), 404),  # not shown yet: missing to readers
        (http.post("/api/v1/announcements/99999999999/dismiss", headers=alice.auth), 404),
        (http.post(f"/api/v1/announcements/{made[-1]}/dismiss", headers=alice.auth), 404),
        (http.post("/api/v1/announcements/nope/dismiss", headers=alice.auth), 404),
        (http.get("/api/v1/announcements"), 401),
        (http.get("/api/v1/announcements?with_dismissed=maybe", headers=alice.auth), 400),
    ]:
        assert answer.status_code == code, (answer.request.url, answer.text)
        assert set(answer.json()) == {"error"}, answer.text
    assert len(reactions(http, alice, current)) == 8  # nothing more was written
    assert react(http, alice, current, "🍎").status_code == 200  # one of the eight again: fine


def test_what_an_emoji_is() -> None:
    for name in ("👍", "👍🏽", "❤️", "🇯🇵", "👨‍👩‍👧", "🏳️‍🌈", "#️⃣", "☕"):
        assert is_emoji(name), name
    for name in ("", "a", "ab", ":blobcat:", "👍 ", "1", "👍a", "\u200d", "x" * 17):
        assert not is_emoji(name), name

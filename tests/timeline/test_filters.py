"""Filters (kicau/filters.py) through the public API of the running system: making, reading, changing and deleting
filters and their keywords and statuses (and v1's filters of one phrase); what they do where the user reads (home,
lists, public and hashtag timelines, profiles, threads, notifications: ``warn`` marks a status ``filtered``, ``hide``
leaves it out), in their contexts only, until they expire; whole words; reblogs matched by what they reblog; bad
input; and the streams (filtered there too, and told ``filters_changed``)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from kicau.web import ACCOUNT_HEADER, CLIENT_HEADER, SCOPES_HEADER
from tests.conftest import User, eventually
from tests.faults.harness import service_pid, service_port
from tests.gateway.test_hashtag_stream import frames_until_quiet
from tests.gateway.test_streaming_bounds import ws_url
from tests.timeline.test_notifications import follow, notifications
from tests.timeline.test_visibility import post


def make_filter(http: httpx.Client, user: User, **fields: Any) -> dict[str, Any]:
    answer = http.post("/api/v2/filters", headers=user.auth, json=fields)
    assert answer.status_code == 200, answer.text
    made: dict[str, Any] = answer.json()
    return made


def home(http: httpx.Client, reader: User, query: str = "") -> dict[str, dict[str, Any]]:
    answer = http.get(f"/api/v1/timelines/home{query}", headers=reader.auth)
    assert answer.status_code == 200, answer.text
    return {s["id"]: s for s in answer.json()}


def matches(status: dict[str, Any]) -> list[tuple[str, list[str] | None, list[str] | None]]:
    """(filter title, keyword matches, status matches) of each FilterResult of a status."""
    return [(r["filter"]["title"], r["keyword_matches"], r["status_matches"]) for r in status.get("filtered", [])]


def test_filters_are_made_read_changed_and_deleted(http: httpx.Client, make_user: Callable[..., User]) -> None:
    amy, ben = make_user("flt_a"), make_user("flt_b")
    assert http.get("/api/v2/filters", headers=amy.auth).json() == []
    made = make_filter(http, amy, title="Spoilers", context=["home", "public"], filter_action="warn",
                       keywords_attributes=[{"keyword": "finale"}, {"keyword": "ending", "whole_word": False}])
    assert set(made) == {"id", "title", "context", "expires_at", "filter_action", "keywords", "statuses"}
    assert (made["title"], made["context"], made["filter_action"], made["expires_at"]) == (
        "Spoilers", ["home", "public"], "warn", None)
    assert [(k["keyword"], k["whole_word"]) for k in made["keywords"]] == [("finale", True), ("ending", False)]
    assert http.get(f"/api/v2/filters/{made['id']}", headers=amy.auth).json() == made
    assert http.get("/api/v2/filters", headers=amy.auth).json() == [made]
    # Another account's filter is no filter of this one's.
    assert http.get(f"/api/v2/filters/{made['id']}", headers=ben.auth).status_code == 404
    assert http.get("/api/v2/filters", headers=ben.auth).json() == []

    # Changed: the title, an expiry, one keyword changed, one dropped, one added.
    finale, ending = made["keywords"]
    changed = http.put(f"/api/v2/filters/{made['id']}", headers=amy.auth, json={
        "title": "Plot", "expires_in": 3600, "keywords_attributes": [
            {"id": finale["id"], "whole_word": False}, {"id": ending["id"], "_destroy": True}, {"keyword": "twist"}]})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["title"] == "Plot" and body["expires_at"] is not None and body["context"] == ["home", "public"]
    assert sorted((k["keyword"], k["whole_word"]) for k in body["keywords"]) == [("finale", False), ("twist", True)]

    # Keywords one at a time.
    keyword = http.post(f"/api/v2/filters/{made['id']}/keywords", headers=amy.auth,
                        data={"keyword": "cliffhanger", "whole_word": "false"}).json()
    assert (keyword["keyword"], keyword["whole_word"]) == ("cliffhanger", False)
    assert http.get(f"/api/v2/filters/keywords/{keyword['id']}", headers=amy.auth).json() == keyword
    renamed = http.put(f"/api/v2/filters/keywords/{keyword['id']}", headers=amy.auth, json={"keyword": "reveal"})
    assert renamed.json() == {**keyword, "keyword": "reveal"}
    assert len(http.get(f"/api/v2/filters/{made['id']}/keywords", headers=amy.auth).json()) == 3
    assert http.delete(f"/api/v2/filters/keywords/{keyword['id']}", headers=amy.auth).json() == {}
    assert http.get(f"/api/v2/filters/keywords/{keyword['id']}", headers=amy.auth).status_code == 404
    assert http.get(f"/api/v2/filters/keywords/{finale['id']}", headers=ben.auth).status_code == 404

    # Statuses.
    status = post(http, ben, "a status to filter")
    rule = http.post(f"/api/v2/filters/{made['id']}/statuses", headers=amy.auth, data={"status_id": status})
    assert rule.status_code == 200, rule.text
    assert rule.json()["status_id"] == status
    again = http.post(f"/api/v2/filters/{made['id']}/statuses", headers=amy.auth, data={"status_id": status})
    assert again.status_code == 422 and "error" in again.json()
    assert http.get(f"/api/v2/filters/{made['id']}/statuses", headers=amy.auth).json() == [rule.json()]
    assert http.get(f"/api/v2/filters/statuses/{rule.json()['id']}", headers=amy.auth).json() == rule.json()
    assert http.delete(f"/api/v2/filters/statuses/{rule.json()['id']}", headers=amy.auth).json() == {}
    assert http.get(f"/api/v2/filters/{made['id']}/statuses", headers=amy.auth).json() == []

    # The v1 view: one filter a keyword.
    v1 = http.get("/api/v1/filters", headers=amy.auth).json()
    assert sorted(f["phrase"] for f in v1) == ["finale", "twist"]
    assert all(f["context"] == ["home", "public"] and f["irreversible"] is False for f in v1)
    assert http.get(f"/api/v1/filters/{v1[0]['id']}", headers=amy.auth).json() == v1[0]

    assert http.delete(f"/api/v2/filters/{made['id']}", headers=amy.auth).json() == {}
    assert http.get("/api/v2/filters", headers=amy.auth).json() == []

    # Made, changed and deleted through v1: a filter of one phrase.
    v1_made = http.post("/api/v1/filters", headers=amy.auth, data={"phrase": "boring", "context[]": ["home"],
                                                                   "irreversible": "true"})
    assert v1_made.status_code == 200, v1_made.text
    assert {k: v1_made.json()[k] for k in ("phrase", "context", "irreversible", "whole_word")} == {
        "phrase": "boring", "context": ["home"], "irreversible": True, "whole_word": True}
    (as_v2,) = http.get("/api/v2/filters", headers=amy.auth).json()
    assert (as_v2["title"], as_v2["filter_action"], [k["id"] for k in as_v2["keywords"]]) == (
        "boring", "hide", [v1_made.json()["id"]])
    v1_changed = http.put(f"/api/v1/filters/{v1_made.json()['id']}", headers=amy.auth,
                          json={"phrase": "dull", "irreversible": False, "context": ["home", "thread"]})
    assert v1_changed.status_code == 200, v1_changed.text
    assert {k: v1_changed.json()[k] for k in ("phrase", "context", "irreversible")} == {
        "phrase": "dull", "context": ["home", "thread"], "irreversible": False}
    assert http.delete(f"/api/v1/filters/{v1_made.json()['id']}", headers=amy.auth).json() == {}
    assert http.get("/api/v2/filters", headers=amy.auth).json() == []  # its only phrase gone, the filter too
    assert http.put("/api/v1/filters/123", headers=amy.auth, json={"phrase": "x"}).status_code == 404
    assert http.post("/api/v1/filters", headers=amy.auth, json={"phrase": "x"}).status_code == 422  # no context
    gone = http.delete(f"/api/v2/filters/{made['id']}", headers=amy.auth)
    assert (gone.status_code, gone.json()) == (404, {"error": "Record not found"})


def test_filters_apply_where_the_user_reads(http: httpx.Client, make_user: Callable[..., User]) -> None:
    reader, author, other = make_user("fla_r"), make_user("fla_a"), make_user("fla_x")
    follow(http, reader, author)
    warned = post(http, author, "the Finale was great #tvshow")
    hidden = post(http, author, "boring stuff about taxes")
    partial = post(http, author, "finales everywhere")  # not the whole word
    plain = post(http, author, "nothing to see")
    eventually(lambda: plain in home(http, reader) or None)
    assert home(http, reader)[warned]["filtered"] == []  # no filters, nothing filtered

    make_filter(http, reader, title="Shows", context=["home", "public", "account", "thread"],
                keywords_attributes=[{"keyword": "finale"}])
    make_filter(http, reader, title="Taxes", context=["home"], filter_action="hide",
                keywords_attributes=[{"keyword": "TAXES"}])
    page = home(http, reader)
    assert matches(page[warned]) == [("Shows", ["finale"], None)]
    assert hidden not in page and page[partial]["filtered"] == page[plain]["filtered"] == []

    # Public and hashtag timelines, profiles: the contexts the filters name.
    public = {s["id"]: s for s in http.get("/api/v1/timelines/public?limit=40", headers=reader.auth).json()}
    assert matches(public[warned]) == [("Shows", ["finale"], None)] and hidden in public  # "Taxes" is home only
    tagged = {s["id"]: s for s in http.get("/api/v1/timelines/tag/tvshow", headers=reader.auth).json()}
    assert matches(tagged[warned]) == [("Shows", ["finale"], None)]
    profile = {s["id"]: s for s in http.get(f"/api/v1/accounts/{author.id}/statuses",
                                            headers=reader.auth).json()}
    assert matches(profile[warned]) == [("Shows", ["finale"], None)] and hidden in profile
    # Only the reader's: the author and anyone else read it unfiltered.
    for someone in (author, other):
        mine = {s["id"]: s for s in http.get(f"/api/v1/accounts/{author.id}/statuses",
                                             headers=someone.auth).json()}
        assert mine[warned]["filtered"] == []

    # A thread: its statuses as the ``thread`` context filters them.
    reply = post(http, other, "what a finale", in_reply_to_id=plain)
    context = http.get(f"/api/v1/statuses/{plain}/context", headers=reader.auth).json()
    assert [(s["id"], matches(s)) for s in context["descendants"]] == [(reply, [("Shows", ["finale"], None)])]

    # A reblog is matched by the status it reblogs.
    booster = make_user("fla_b")
    follow(http, reader, booster)
    boost = http.post(f"/api/v1/statuses/{hidden}/reblog", headers=booster.auth)
    assert boost.status_code == 200, boost.text
    boosted = post(http, booster, "after the boost")
    eventually(lambda: boosted in home(http, reader) or None)
    assert boost.json()["id"] not in home(http, reader)

    # A status filtered by its id.
    shows = next(f for f in http.get("/api/v2/filters", headers=reader.auth).json() if f["title"] == "Shows")
    rule = http.post(f"/api/v2/filters/{shows['id']}/statuses", headers=reader.auth, json={"status_id": plain})
    assert rule.status_code == 200, rule.text
    assert matches(home(http, reader)[plain]) == [("Shows", None, [plain])]


def test_notifications_and_expiry(http: httpx.Client, make_user: Callable[..., User]) -> None:
    reader, author = make_user("fln_r"), make_user("fln_a")
    made = make_filter(http, reader, title="Mentions", context=["notifications"], filter_action="hide",
                       keywords_attributes=[{"keyword": "spam"}])
    post(http, author, f"@{reader.username} buy spam now")
    kept = post(http, author, f"@{reader.username} hello")
    eventually(lambda: len(notifications(http, reader)) >= 1 and notifications(http, reader)[0]["status"]["id"] == kept)
    assert [n["status"]["id"] for n in notifications(http, reader)] == [kept]

    # A filter that expired filters nothing.
    http.put(f"/api/v2/filters/{made['id']}", headers=reader.auth, json={"expires_in": 1})
    time.sleep(1.5)
    assert len(notifications(http, reader)) == 2


def test_filter_requests_refuse_bad_input(http: httpx.Client, make_user: Callable[..., User],
                                          app_credentials: dict[str, Any]) -> None:
    from tests.conftest import narrow_token

    user = make_user("flx")
    cases: list[dict[str, Any]] = [
        {"context": ["home"]},  # no title
        {"title": "  ", "context": ["home"]},
        {"title": "t"},  # no context
        {"title": "t", "context": ["everywhere"]},
        {"title": "t", "context": ["home"], "filter_action": "explode"},
        {"title": "t", "context": ["home"], "expires_in": -5},
        {"title": "t", "context": ["home"], "expires_in": 3600.5},
        {"title": "t", "context": ["home"], "expires_in": True},
        {"title": "t", "context": ["home"], "keywords_attributes": [{"keyword": ""}]},
        {"title": "t", "context": ["home"], "keywords_attributes": "nope"},
        {"title": "x" * 300, "context": ["home"]},
    ]
    for body in cases:
        answer = http.post("/api/v2/filters", headers=user.auth, json=body)
        assert answer.status_code == 422 and "error" in answer.json(), (body, answer.text)
    assert http.get("/api/v2/filters", headers=user.auth).json() == []  # nothing half-made
    assert http.get("/api/v2/filters").status_code == 401
    made = make_filter(http, user, title="t", context="home")
    for path in (f"/api/v2/filters/{made['id']}/statuses",):
        assert http.post(path, headers=user.auth, json={}).status_code == 422
        assert http.post(path, headers=user.auth, json={"status_id": "999"}).status_code == 404
    unknown = http.put(f"/api/v2/filters/{made['id']}", headers=user.auth,
                       json={"keywords_attributes": [{"id": "12345", "keyword": "x"}]})
    assert unknown.status_code == 404
    for path in ("/api/v2/filters/abc", "/api/v2/filters/keywords/abc", "/api/v2/filters/statuses/1"):
        assert http.get(path, headers=user.auth).status_code == 404
    reader_only = narrow_token(http, app_credentials, user, scope="read:filters")
    assert http.get("/api/v2/filters", headers=reader_only).status_code == 200
    refused = http.post("/api/v2/filters", headers=reader_only, json={"title": "t", "context": ["home"]})
    assert refused.status_code == 403 and "error" in refused.json()


def test_a_whole_number_of_seconds_written_as_a_float_is_taken(http: httpx.Client,
                                                                 make_user: Callable[..., User]) -> None:
    """3600.0 is an integer to JSON Schema, and mutes and polls take it so: filters (v2 and v1) too. A schemathesis
    run with a random seed found a v1 filter's update refused it (2026-12-07)."""
    user = make_user("flf")
    made = http.post("/api/v2/filters", headers=user.auth,
                     json={"title": "t", "context": ["home"], "expires_in": 3600.0})
    assert made.status_code == 200, made.text
    expires = datetime.fromisoformat(made.json()["expires_at"].replace("Z", "+00:00"))
    assert 3500 < (expires - datetime.now(UTC)).total_seconds() <= 3600
    v1 = http.post("/api/v1/filters", headers=user.auth, json={"phrase": "plot", "context": ["home"]})
    assert v1.status_code == 200, v1.text
    changed = http.put(f"/api/v1/filters/{v1.json()['id']}", headers=user.auth, json={"expires_in": 23115.0})
    assert changed.status_code == 200, changed.text
    assert changed.json()["expires_at"] is not None


def delivering(http: httpx.Client, author: User, ws: ClientConnection) -> None:
    """Post as ``author`` until a marker arrives on the user stream ``ws`` (registered asynchronously), reading past
    everything that came meanwhile."""
    for _ in range(60):
        marker = post(http, author, "marker")
        if any(f["event"] == "update" and json.loads(str(f["payload"]))["id"] == marker
               for f in frames_until_quiet(ws)):
            return
    raise AssertionError("the user stream delivered nothing")


def test_streams_filter_and_hear_of_changes(gateway_url: str, http: httpx.Client,
                                            make_user: Callable[..., User]) -> None:
    reader, author = make_user("fls_r"), make_user("fls_a")
    follow(http, reader, author)
    with connect(ws_url(gateway_url) + "?stream=user", additional_headers=reader.auth, open_timeout=10) as ws:
        delivering(http, author, ws)
        shows = make_filter(http, reader, title="Shows", context=["home"], keywords_attributes=[{"keyword": "finale"}])
        make_filter(http, reader, title="Taxes", context=["home"], filter_action="hide",
                    keywords_attributes=[{"keyword": "taxes"}])
        changed = [f for f in frames_until_quiet(ws)]
        assert [f["event"] for f in changed] == ["filters_changed", "filters_changed"]
        assert changed[0]["stream"] == ["user"]
        warned = post(http, author, "the finale!")
        post(http, author, "my taxes")
        plain = post(http, author, "plain")
        frames = [(f["event"], json.loads(str(f["payload"]))) for f in frames_until_quiet(ws)]
        assert [(event, status["id"]) for event, status in frames] == [("update", warned), ("update", plain)]
        assert matches(frames[0][1]) == [("Shows", ["finale"], None)] and frames[1][1]["filtered"] == []

        # Deleted, the filter no longer applies to what the stream brings.
        assert http.delete(f"/api/v2/filters/{shows['id']}", headers=reader.auth).status_code == 200
        assert [f["event"] for f in frames_until_quiet(ws)] == ["filters_changed"]
        later = post(http, author, "another finale")
        (frame,) = list(frames_until_quiet(ws))
        assert json.loads(str(frame["payload"]))["id"] == later
        assert json.loads(str(frame["payload"]))["filtered"] == []


def test_filters_changed_while_the_gateways_channel_was_down_reach_its_streams_once_it_is_back(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User], stack_redis: Any
) -> None:
    """A change of filters reaches a gateway as a message on its channel: one made while the channel is down never
    arrives. Once the channel is back, the gateway reads the reader's filters again; its stream filters with them
    and is told ``filters_changed``, as it would have been live. A filter made while the channel is down, then
    deleted while it is down again (the gateway kept filtering with a deleted filter after such a loss).

    The loss is made sure of: the gateway is stopped (SIGSTOP), its channel closed by Redis, and the change made
    through the graph service itself, before the gateway runs again and subscribes anew."""
    reader, author = make_user("flc_r"), make_user("flc_a")
    follow(http, reader, author)
    gateway = service_pid("gateway")
    graph = f"http://127.0.0.1:{service_port('graph')}/internal/filters"
    acting = {ACCOUNT_HEADER: str(reader.id), CLIENT_HEADER: "test", SCOPES_HEADER: "read write"}

    def while_away(change: Callable[[], httpx.Response]) -> httpx.Response:
        os.kill(gateway, signal.SIGSTOP)
        try:
            assert stack_redis.client_kill_filter(_type="pubsub") >= 1
            return change()
        finally:
            os.kill(gateway, signal.SIGCONT)

    with connect(ws_url(gateway_url) + "?stream=user", additional_headers=reader.auth, open_timeout=10) as ws:
        delivering(http, author, ws)
        taxes = {"title": "Taxes", "context": ["home"], "filter_action": "hide",
                 "keywords_attributes": [{"keyword": "taxes"}]}
        made = while_away(lambda: httpx.post(graph, headers=acting, timeout=10, json=taxes))
        assert made.status_code == 200, made.text
        events = [f["event"] for f in frames_until_quiet(ws)]
        assert events.count("filters_changed") == 1 and "kicau.refetch" in events, events
        hidden, plain = post(http, author, "my taxes"), post(http, author, "plain")
        shown = [json.loads(str(f["payload"]))["id"] for f in frames_until_quiet(ws) if f["event"] == "update"]
        assert shown == [plain] and hidden not in shown

        gone = while_away(lambda: httpx.delete(f"{graph}/{made.json()['id']}", headers=acting, timeout=10))
        assert gone.status_code == 200, gone.text
        events = [f["event"] for f in frames_until_quiet(ws)]
        assert events.count("filters_changed") == 1 and "kicau.refetch" in events, events
        again = post(http, author, "more taxes")
        shown = [json.loads(str(f["payload"]))["id"] for f in frames_until_quiet(ws) if f["event"] == "update"]
        assert shown == [again]


def test_a_stream_opened_after_its_filters_were_made_applies_them(gateway_url: str, http: httpx.Client,
                                                                  make_user: Callable[..., User]) -> None:
    """The gateway reads the reader's filters as its first stream opens (the graph service's
    ``/internal/accounts/:id/filters``, once shadowed by the follow lists' route: such streams went unfiltered)."""
    reader, author = make_user("flo_r"), make_user("flo_a")
    follow(http, reader, author)
    make_filter(http, reader, title="Taxes", context=["home"], filter_action="hide",
                keywords_attributes=[{"keyword": "taxes"}])
    make_filter(http, reader, title="Shows", context=["home"], keywords_attributes=[{"keyword": "finale"}])
    with connect(ws_url(gateway_url) + "?stream=user", additional_headers=reader.auth, open_timeout=10) as ws:
        delivering(http, author, ws)
        post(http, author, "my taxes")
        warned = post(http, author, "the finale!")
        frames = [(f["event"], json.loads(str(f["payload"]))) for f in frames_until_quiet(ws)]
        assert [(event, status["id"]) for event, status in frames] == [("update", warned)]
        assert matches(frames[0][1]) == [("Shows", ["finale"], None)]

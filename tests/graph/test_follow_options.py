"""A follow's options against the running stack (kicau/follow_options.py): ``reblogs``, ``notify`` and ``languages``
given to ``POST /api/v1/accounts/:id/follow``, shown by the Relationship, changed by a repeated follow and gone with
an unfollow; what they keep out of the follower's home timeline and stream, and the ``status`` notifications they
bring; bad input answered 4xx."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import redis

from kicau import keys
from tests.conftest import User, eventually
from tests.gateway.test_streaming import read_events, warm_until_seen
from tests.graph.test_blocks_and_mutes import notification_ids, relationship
from tests.timeline.test_home_invariant import home_ids
from tests.timeline.test_large_accounts import in_home_feed
from tests.timeline.test_visibility import post


def follow(http: httpx.Client, follower: User, followee: User, **options: Any) -> dict[str, Any]:
    answer = http.post(f"/api/v1/accounts/{followee.id}/follow", headers=follower.auth, json=options or None)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def shown(body: dict[str, Any]) -> tuple[bool, bool, bool, list[str] | None]:
    return body["following"], body["showing_reblogs"], body["notifying"], body["languages"]


def test_the_options_are_kept_changed_and_dropped(http: httpx.Client, make_user: Callable[..., User]) -> None:
    reader, author = make_user("fo_r"), make_user("fo_a")
    assert shown(follow(http, reader, author)) == (True, True, False, None)  # the defaults
    assert shown(follow(http, reader, author, reblogs=False, languages=["en", "de"])) == (True, False, False,
                                                                                          ["de", "en"])
    # A repeated follow changes what it names and keeps the rest; a form's words count.
    answer = http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth, data={"notify": "true"})
    assert answer.status_code == 200 and shown(answer.json()) == (True, False, True, ["de", "en"]), answer.text
    assert shown(follow(http, reader, author, languages=[])) == (True, False, True, None)  # every language again
    assert shown(relationship(http, reader, author)) == (True, False, True, None)
    assert shown(relationship(http, author, reader)) == (False, False, False, None)  # the options are the follower's
    # An unfollow drops them; a new follow starts from the defaults.
    answer = http.post(f"/api/v1/accounts/{author.id}/unfollow", headers=reader.auth)
    assert answer.status_code == 200 and shown(answer.json()) == (False, False, False, None), answer.text
    assert shown(follow(http, reader, author)) == (True, True, False, None)


def test_follow_options_answer_bad_input_with_4xx(http: httpx.Client, make_user: Callable[..., User]) -> None:
    reader, author = make_user("fo_bad"), make_user("fo_bad_a")
    for options in ({"reblogs": "perhaps"}, {"notify": 2}, {"notify": [True]}, {"languages": [1]},
                    {"languages": ["e n"]}, {"languages": ["x" * 17]}, {"languages": ["en"] * 51},
                    {"languages": {"en": True}}):
        answer = http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth, json=options)
        assert answer.status_code == 422 and set(answer.json()) == {"error"}, (options, answer.text)
    assert shown(relationship(http, reader, author)) == (False, False, False, None)  # nothing written


def test_hidden_reblogs_and_languages_stay_out_of_the_home_timeline(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    reader, author, other, fan = make_user("foh_r"), make_user("foh_a"), make_user("foh_o"), make_user("foh_f")
    follow(http, reader, author, reblogs=False, languages=["de"])
    follow(http, fan, author)
    assert home_ids(http, reader) == [] and home_ids(http, fan) == []
    original = post(http, other, "to be reblogged")
    answer = http.post(f"/api/v1/statuses/{original}/reblog", headers=author.auth)
    assert answer.status_code == 200, answer.text
    reblog = answer.json()["id"]
    english = post(http, author, "in English", language="en")
    german = post(http, author, "auf Deutsch", language="de")
    unsaid = post(http, author, "no language given")
    eventually(lambda: unsaid in home_ids(http, fan) or None)  # the fan gets them all
    assert home_ids(http, fan) == [unsaid, german, english, reblog]
    assert home_ids(http, reader) == [unsaid, german]
    assert not in_home_feed(stack_redis, reader, reblog) and not in_home_feed(stack_redis, reader, english)
    # A home timeline rebuilt from Cassandra (Redis lost it) leaves them out too, as a new follow's backfill does.
    stack_redis.delete(keys.home_feed(int(reader.id)))
    assert home_ids(http, reader) == [unsaid, german]
    late = make_user("foh_l")
    assert home_ids(http, late) == []  # a timeline of its own, so the follow's backfill goes into it
    follow(http, late, author, reblogs=False, languages=["de"])
    eventually(lambda: home_ids(http, late) == [unsaid, german] or None)

    # Changed: reblogs and every language reach it from then on.
    follow(http, reader, author, reblogs=True, languages=[])
    later = post(http, author, "in English again", language="en")
    eventually(lambda: later in home_ids(http, reader) or None)


def test_notify_brings_a_status_notification(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    reader, author, other = make_user("fon_r"), make_user("fon_a"), make_user("fon_o")
    follow(http, reader, author, notify=True)
    with httpx.Client(base_url=gateway_url, timeout=httpx.Timeout(30, read=30)) as client, \
            client.stream("GET", "/api/v1/streaming/user/notification", headers=reader.auth) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        warm_until_seen(gateway_url, author, lines, text="warm-up")
        said = post(http, author, "news")
        event = read_events(lines, 1)[0]
        assert event["event"] == "notification", event
        assert '"type":"status"' in event["data"] and f'"id":"{said}"' in event["data"], event

    # Not for a reblog nor a reply to someone else; for a reply to itself, yes; a status that mentions the reader
    # tells it twice, as Mastodon: the mention, and the status under an id of its own.
    elsewhere = post(http, other, "someone else's")
    assert http.post(f"/api/v1/statuses/{elsewhere}/reblog", headers=author.auth).status_code == 200
    post(http, author, "a reply to someone else", in_reply_to_id=elsewhere)
    thread = post(http, author, "a reply to itself", in_reply_to_id=said)
    mention = post(http, author, f"@{reader.username} hello")

    def both_told() -> list[dict[str, Any]]:
        notices: list[dict[str, Any]] = http.get("/api/v1/notifications?limit=40", headers=reader.auth).json()
        assert len([n for n in notices if n["status"]["id"] == mention]) == 2
        return notices
    notices = eventually(both_told)
    statuses = [n["status"]["id"] for n in notices if n["type"] == "status"]
    assert statuses[:3] == [mention, thread, said], notices
    about_mention = {n["type"]: n["id"] for n in notices if n["status"]["id"] == mention}
    assert about_mention["mention"] == mention and int(about_mention["status"]) > int(mention)
    assert "status" in {n["type"] for n in http.get("/api/v1/notifications?types[]=status",
                                                    headers=reader.auth).json()}

    # Turned off: no more.
    follow(http, reader, author, notify=False)
    quiet = post(http, author, "quiet")
    marker = post(http, other, f"@{reader.username} marker")
    eventually(lambda: marker in notification_ids(http, reader) or None)
    eventually(lambda: quiet in home_ids(http, reader) or None)
    assert quiet not in notification_ids(http, reader)


def test_a_direct_status_notifies_the_mentioned_followers_that_asked(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    """As Mastodon (its fanout puts a direct status in the mentioned followers' home feeds, and its feed worker
    notifies whatever the visibility): the mentioned follower that asked is told of the mention and of the status;
    a follower that asked but is not mentioned is told of nothing."""
    reader, bystander, author = make_user("fod_r"), make_user("fod_b"), make_user("fod_a")
    follow(http, reader, author, notify=True)
    follow(http, bystander, author, notify=True)
    whisper = post(http, author, f"@{reader.username} between us", visibility="direct")

    def both_told() -> dict[str, str]:
        notices = http.get("/api/v1/notifications?limit=40", headers=reader.auth).json()
        told = {n["type"]: n["id"] for n in notices if n.get("status") and n["status"]["id"] == whisper}
        assert set(told) == {"mention", "status"}, notices
        return told
    told = eventually(both_told)
    assert told["mention"] == whisper and int(told["status"]) > int(whisper)
    # The author's events are ordered on their partition: once its next status notified the bystander, the
    # direct one had been fanned out, and told the bystander nothing.
    said = post(http, author, "for everyone")
    eventually(lambda: said in notification_ids(http, bystander) or None)
    assert whisper not in notification_ids(http, bystander)

"""Mentions (kicau/mentions.py) through the public API of the running system: how a status lists and links the
accounts it names, and whom a direct or followers-only status then reaches (kicau/visibility.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import redis

from kicau import keys
from tests.conftest import User, eventually
from tests.gateway.test_streaming import read_events
from tests.timeline.test_home_invariant import home_ids
from tests.timeline.test_large_accounts import in_home_feed
from tests.timeline.test_visibility import post, profile, user_streams

PUBLIC_URL = "http://127.0.0.1:8080"  # the stack's KICAU_PUBLIC_URL (kicau/settings.py)


def status(http: httpx.Client, status_id: str, reader: User | None) -> httpx.Response:
    return http.get(f"/api/v1/statuses/{status_id}", headers=reader.auth if reader else {})


def mention_of(user: User) -> dict[str, str]:
    return {"id": user.id, "username": user.username, "url": f"{PUBLIC_URL}/@{user.username}",
            "acct": user.username}


def link_of(user: User) -> str:
    return (f'<span class="h-card" translate="no"><a href="{PUBLIC_URL}/@{user.username}" class="u-url mention">'
            f"@<span>{user.username}</span></a></span>")


def test_a_status_lists_and_links_the_local_accounts_it_names(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    author, bob, carol = make_user("men_a"), make_user("men_b"), make_user("men_c")
    text = (f"hi @{bob.username.upper()} & @{carol.username}@127.0.0.1, again @{bob.username}\n\n"
            f"not @{carol.username}@elsewhere.example, @nobody_{bob.id}, mail{bob.username}@x or /@{bob.username}")
    answer = http.post("/api/v1/statuses", headers=author.auth, json={"status": text})
    assert answer.status_code == 200, answer.text
    created: dict[str, Any] = answer.json()
    # Each account once, in the order the text first names it, spelled as the account spells itself.
    assert created["mentions"] == [mention_of(bob), mention_of(carol)]
    assert created["content"] == (
        f"<p>hi {link_of(bob)} &amp; {link_of(carol)}, again {link_of(bob)}</p>"
        f"<p>not @{carol.username}@elsewhere.example, @nobody_{bob.id}, mail{bob.username}@x or /@{bob.username}</p>")
    # The same from Cassandra, once the cached copy is gone.
    stack_redis.delete(keys.status_cache(int(created["id"])))
    again = status(http, created["id"], None)
    assert again.status_code == 200, again.text
    assert (again.json()["mentions"], again.json()["content"]) == (created["mentions"], created["content"])

    plain = http.post("/api/v1/statuses", headers=author.auth, json={"status": "nobody named, a@b c@"}).json()
    assert (plain["mentions"], plain["content"]) == ([], "<p>nobody named, a@b c@</p>")


def test_a_direct_status_reaches_the_accounts_it_mentions(
    http: httpx.Client, make_user: Callable[..., User], stack_redis: redis.Redis,
) -> None:
    author, follower, mentioned, stranger = (make_user("mdm_a"), make_user("mdm_f"), make_user("mdm_m"),
                                             make_user("mdm_s"))
    bystander = make_user("mdm_b")  # follows the author too, and is not named
    for reader in (follower, bystander):
        assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth).status_code == 200
    for reader in (author, follower, mentioned, stranger, bystander):
        assert home_ids(http, reader) == []  # every home timeline exists: what is in them below was written
    direct = post(http, author, f"@{follower.username} @{mentioned.username} between us", visibility="direct")
    private = post(http, author, f"followers, and @{mentioned.username}", visibility="private")
    last = post(http, author, "the last one")
    eventually(lambda: last in home_ids(http, bystander))

    # Home timelines: the mentioned follower's, as Mastodon does; not the mentioned account that follows no one,
    # nor the follower it does not name.
    assert home_ids(http, follower)[:3] == [last, private, direct]
    assert in_home_feed(stack_redis, follower, direct)
    assert home_ids(http, bystander)[:2] == [last, private]
    for reader in (bystander, mentioned, stranger):
        assert not in_home_feed(stack_redis, reader, direct)  # not written, not merely hidden
    assert home_ids(http, mentioned) == []

    # By id, on the profile, and as the status replied to: whoever it names may see it, whether or not it follows.
    may_see = {direct: [author, follower, mentioned], private: [author, follower, bystander, mentioned]}
    for status_id, readers in may_see.items():
        for someone in (author, follower, mentioned, stranger, bystander, None):
            answer = status(http, status_id, someone)
            if someone in readers:
                assert answer.status_code == 200 and answer.json()["id"] == status_id, answer.text
            else:
                assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), answer.text
    assert profile(http, author, mentioned) == [last, private, direct]
    assert profile(http, author, bystander) == [last, private]
    assert profile(http, author, stranger) == [last]

    def reply(replier: User, to: str) -> int:
        return http.post("/api/v1/statuses", headers=replier.auth,
                         json={"status": "re", "in_reply_to_id": to, "visibility": "direct"}).status_code

    assert (reply(mentioned, direct), reply(follower, direct), reply(bystander, direct),
            reply(stranger, private)) == (200, 200, 422, 422)

    # Deleted: gone for each of them, from the follower's home timeline too.
    assert http.delete(f"/api/v1/statuses/{direct}", headers=author.auth).status_code == 200
    eventually(lambda: not in_home_feed(stack_redis, follower, direct))
    for reader in (author, follower, mentioned):
        assert status(http, direct, reader).status_code == 404
    assert direct not in home_ids(http, follower)


def test_a_direct_status_and_its_deletion_stream_to_the_mentioned_follower(
    gateway_url: str, http: httpx.Client, make_user: Callable[..., User],
) -> None:
    author, follower, bystander = make_user("mds_a"), make_user("mds_f"), make_user("mds_b")
    for reader in (follower, bystander):
        assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=reader.auth).status_code == 200
    with user_streams(gateway_url, http, author, follower, bystander) as (follower_lines, bystander_lines):
        secret = post(http, author, f"to @{follower.username}", visibility="direct")
        after = post(http, author, "to everyone")
        # The update, the mention's notification (kicau/notifications.py) beside it, then the public status.
        events = read_events(follower_lines, 3)
        updates = [e for e in events if e["event"] == "update"]
        assert [e["id"] for e in updates] == [secret, after]
        assert json.loads(updates[0]["data"])["mentions"] == [mention_of(follower)]
        (notified,) = [json.loads(e["data"]) for e in events if e["event"] == "notification"]
        assert (notified["type"], notified["status"]["id"]) == ("mention", secret)
        assert read_events(bystander_lines, 1)[0]["id"] == after  # the direct status never came
        assert http.delete(f"/api/v1/statuses/{secret}", headers=author.auth).status_code == 200
        later = post(http, author, "to everyone, later")
        assert [(e["event"], e["data"]) for e in read_events(follower_lines, 1)] == [("delete", secret)]
        assert [(e["event"], e["id"]) for e in read_events(follower_lines, 1)] == [("update", later)]
        assert [(e["event"], e["id"]) for e in read_events(bystander_lines, 1)] == [("update", later)]

"""Status edits against the running stack (services/post/edits.py): ``PUT /api/v1/statuses/:id`` rewrites the
status everywhere it is read (the status itself, its author's and followers' timelines, cached or not), keeps each
version for ``/history``, gives ``/source``, moves the status between hashtag timelines, and streams a
``status.update`` to its followers' and the public streams; bad input is a 4xx that changes nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from redis.asyncio import Redis

from kicau import keys, resp
from kicau.status_cards import cache_command, shown_fragment
from stack.services import service_env
from tests.conftest import User, eventually, narrow_token
from tests.gateway.test_public_stream import public_stream
from tests.gateway.test_streaming import read_events, status_of, warm_until_seen
from tests.timeline.test_tag_timeline import fresh_tag, ids, tagged


def post(http: httpx.Client, author: User, text: str, **fields: Any) -> dict[str, Any]:
    answer = http.post("/api/v1/statuses", headers=author.auth, json={"status": text, **fields})
    assert answer.status_code == 200, answer.text
    posted: dict[str, Any] = answer.json()
    return posted


def edit(http: httpx.Client, author: User, status_id: str, text: str, **fields: Any) -> httpx.Response:
    return http.put(f"/api/v1/statuses/{status_id}", headers=author.auth, json={"status": text, **fields})


def history(http: httpx.Client, status_id: str, reader: User | None = None) -> list[dict[str, Any]]:
    answer = http.get(f"/api/v1/statuses/{status_id}/history", headers=reader.auth if reader else {})
    assert answer.status_code == 200, answer.text
    versions: list[dict[str, Any]] = answer.json()
    return versions


def contents(http: httpx.Client, reader: User, path: str) -> dict[str, str]:
    answer = http.get(path, headers=reader.auth)
    assert answer.status_code == 200, answer.text
    return {s["id"]: s["content"] for s in answer.json()}


def test_an_edit_is_read_everywhere_and_every_version_is_kept(http: httpx.Client,
                                                              make_user: Callable[..., User]) -> None:
    author, follower = make_user("ed_a"), make_user("ed_f")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=follower.auth).status_code == 200
    first, second = fresh_tag(), fresh_tag()
    posted = post(http, author, f"first words #{first}", spoiler_text="cw", language="en")
    status_id = posted["id"]
    assert posted["edited_at"] is None
    assert history(http, status_id) == [{**history(http, status_id)[0], "content": posted["content"],
                                         "spoiler_text": "cw", "sensitive": False, "created_at": posted["created_at"]}]
    # Every reader has it cached before the edit: home, the author's profile, the status itself, the hashtag.
    eventually(lambda: status_id in contents(http, follower, "/api/v1/timelines/home") or None)
    assert contents(http, follower, f"/api/v1/accounts/{author.id}/statuses")[status_id] == posted["content"]
    assert eventually(lambda: ids(tagged(http, first)) == [status_id] or None)

    answer = edit(http, author, status_id, f"second words #{second} @{follower.username}", sensitive=True)
    assert answer.status_code == 200, answer.text
    edited = answer.json()
    assert edited["id"] == status_id and edited["created_at"] == posted["created_at"]
    assert "second words" in edited["content"] and f"/tags/{second}" in edited["content"]
    assert [m["id"] for m in edited["mentions"]] == [follower.id]
    assert [t["name"] for t in edited["tags"]] == [second]
    # Without a spoiler the edit has none; without a language it keeps the status's own (as Mastodon's).
    assert (edited["spoiler_text"], edited["sensitive"], edited["language"]) == ("", True, "en")
    assert edited["edited_at"] is not None and edited["edited_at"] > edited["created_at"]
    assert edited["account"]["statuses_count"] == posted["account"]["statuses_count"]

    for path in ("/api/v1/timelines/home", f"/api/v1/accounts/{author.id}/statuses"):
        assert contents(http, follower, path)[status_id] == edited["content"], path
    shown = http.get(f"/api/v1/statuses/{status_id}", headers=follower.auth).json()
    assert (shown["content"], shown["edited_at"]) == (edited["content"], edited["edited_at"])
    # The hashtag timelines follow the text: off the one it dropped, onto the one it gained.
    eventually(lambda: (ids(tagged(http, first)), ids(tagged(http, second))) == ([], [status_id]) or None)

    source = http.get(f"/api/v1/statuses/{status_id}/source", headers=follower.auth)
    assert source.json() == {"id": status_id, "text": f"second words #{second} @{follower.username}",
                             "spoiler_text": ""}, source.text

    third = edit(http, author, status_id, "third words", language="de").json()
    assert third["edited_at"] > edited["edited_at"] and third["language"] == "de"
    versions = history(http, status_id, follower)
    assert [v["content"] for v in versions] == [posted["content"], edited["content"], third["content"]]
    assert [v["created_at"] for v in versions] == [posted["created_at"], edited["edited_at"], third["edited_at"]]
    assert [v["sensitive"] for v in versions] == [False, True, False]
    assert [v["spoiler_text"] for v in versions] == ["cw", "", ""]
    assert all(v["account"]["id"] == author.id for v in versions)
    eventually(lambda: ids(tagged(http, second)) == [] or None)

    # An edit that changes nothing keeps no version.
    same = edit(http, author, status_id, "third words", language="de").json()
    assert same["edited_at"] == third["edited_at"] and len(history(http, status_id)) == 3


def test_an_edit_streams_a_status_update(gateway_url: str, http: httpx.Client,
                                         make_user: Callable[..., User]) -> None:
    author, follower, stranger = make_user("eds_a"), make_user("eds_f"), make_user("eds_s")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=follower.auth).status_code == 200
    with public_stream(gateway_url, follower, "/api/v1/streaming/user") as home, \
            public_stream(gateway_url, stranger, "/api/v1/streaming/public") as public:
        warm_until_seen(gateway_url, author, home)
        warm_until_seen(gateway_url, author, public, text="public warm-up")
        # The home stream got the public warm-ups too (how many, it tells): read both up to the new status.
        status_id = post(http, author, "before")["id"]
        for lines in (home, public):
            while status_of(read_events(lines, 1)[0]) != status_id:
                pass
        for round_ in range(2):  # each edit is its own event
            edited = edit(http, author, status_id, f"after {round_}").json()
            for lines in (home, public):
                (event,) = read_events(lines, 1)
                # Mastodon's name; no SSE id (a resume point is a new status's).
                assert event["event"] == "status.update" and "id" not in event, event
                streamed = json.loads(event["data"])
                assert (streamed["id"], streamed["content"], streamed["edited_at"]) == (
                    status_id, edited["content"], edited["edited_at"])
                assert streamed["account"]["id"] == author.id


def test_bad_edits_answer_4xx_and_change_nothing(http: httpx.Client, make_user: Callable[..., User],
                                                 app_credentials: dict[str, Any]) -> None:
    author, other = make_user("edb_a"), make_user("edb_o")
    status_id = post(http, author, "as posted")["id"]
    private_id = post(http, author, "followers only", visibility="private")["id"]
    reblog_id = http.post(f"/api/v1/statuses/{status_id}/reblog", headers=other.auth).json()["id"]

    def refused(answer: httpx.Response, code: int) -> None:
        assert answer.status_code == code and set(answer.json()) == {"error"}, answer.text

    refused(edit(http, other, status_id, "not mine"), 404)  # someone else's: as a missing one
    refused(edit(http, author, "999999999999", "nothing there"), 404)
    refused(edit(http, author, "not-an-id", "nothing there"), 404)
    refused(edit(http, other, reblog_id, "a reblog"), 422)
    refused(http.put(f"/api/v1/statuses/{status_id}", headers=author.auth, json={"sensitive": True}), 422)
    refused(edit(http, author, status_id, "   "), 422)
    refused(edit(http, author, status_id, "x" * 501), 422)
    refused(edit(http, author, status_id, "x" * 400, spoiler_text="y" * 101), 422)
    refused(edit(http, author, status_id, "bad language", language="e n"), 422)
    refused(edit(http, author, status_id, "with media", media_ids=["1"]), 422)
    refused(edit(http, author, status_id, "nul \x00"), 422)
    refused(http.put(f"/api/v1/statuses/{status_id}", json={"status": "no token"}), 401)
    reader_only = narrow_token(http, app_credentials, author, "read")
    refused(http.put(f"/api/v1/statuses/{status_id}", headers=reader_only, json={"status": "read scope"}), 403)
    refused(http.put(f"/api/v1/statuses/{status_id}", headers={**author.auth, "Content-Type": "application/json"},
                     content=b"{not json"), 400)
    # The status is as posted, with one version.
    shown = http.get(f"/api/v1/statuses/{status_id}").json()
    assert (shown["content"], shown["edited_at"]) == ("<p>as posted</p>", None)
    assert [v["content"] for v in history(http, status_id)] == ["<p>as posted</p>"]
    # What a reader may not see has no history or source either; a source needs a token.
    refused(http.get(f"/api/v1/statuses/{private_id}/history", headers=other.auth), 404)
    refused(http.get(f"/api/v1/statuses/{private_id}/source", headers=other.auth), 404)
    refused(http.get(f"/api/v1/statuses/{status_id}/source"), 401)
    refused(http.get("/api/v1/statuses/123/history"), 404)
    # A deleted status is not edited.
    assert http.delete(f"/api/v1/statuses/{status_id}", headers=author.auth).status_code == 200
    refused(edit(http, author, status_id, "too late"), 404)


def test_an_edit_notifies_who_reblogged_it(gateway_url: str, http: httpx.Client,
                                           make_user: Callable[..., User]) -> None:
    """As Mastodon's: each edit of a status notifies every account that reblogged it (``update``), over its
    streams and in its notifications, never the author for its own reblog; the notification shows the status as
    it now reads, and replaces the one of the edit before (one ``update`` a status and account)."""
    author, booster, other = make_user("edn_a"), make_user("edn_b"), make_user("edn_o")
    status_id = post(http, author, "to be boosted")["id"]
    for account in (booster, author):
        assert http.post(f"/api/v1/statuses/{status_id}/reblog", headers=account.auth).status_code == 200
    with public_stream(gateway_url, booster, "/api/v1/streaming/user/notification") as lines:
        warm_until_seen(gateway_url, other, lines, text=f"warm-up @{booster.username}")
        changed = edit(http, author, status_id, "boosted, then edited").json()
        (event,) = read_events(lines, 1)
        assert event["event"] == "notification", event
        notice = json.loads(event["data"])
        assert (notice["type"], notice["account"]["id"], notice["status"]["id"]) == ("update", author.id, status_id)
        assert notice["status"]["content"] == changed["content"]

    def updates(reader: User) -> list[dict[str, Any]]:
        answer = http.get("/api/v1/notifications?types[]=update", headers=reader.auth)
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()
        return found

    (listed,) = updates(booster)
    assert (listed["id"], listed["status"]["content"]) == (notice["id"], changed["content"])
    assert updates(author) == []
    again = edit(http, author, status_id, "edited twice").json()
    def replaced() -> dict[str, Any]:
        found = updates(booster)
        assert len(found) == 1 and found[0]["id"] != notice["id"], found
        return found[0]
    latest = eventually(replaced)
    assert latest["status"]["content"] == again["content"]
    assert int(latest["id"]) > int(notice["id"])


def test_an_edit_notifies_the_accounts_it_adds_a_mention_of(http: httpx.Client,
                                                             make_user: Callable[..., User]) -> None:
    """An account an edit newly mentions gets the mention notification a new status would have given it (Mastodon
    gives none: its issue 20543); one mentioned before, or mentioned again in a later edit, gets no second one,
    and the author never one of its own."""
    author, kept, added, late = (make_user(p) for p in ("edm_a", "edm_k", "edm_n", "edm_l"))
    status_id = post(http, author, f"hello @{kept.username}")["id"]

    def mentions(reader: User) -> list[dict[str, Any]]:
        answer = http.get("/api/v1/notifications?types[]=mention", headers=reader.auth)
        assert answer.status_code == 200, answer.text
        return [n for n in answer.json() if n["status"]["id"] == status_id]

    eventually(lambda: len(mentions(kept)) == 1 or None)
    changed = edit(http, author, status_id, f"hello @{kept.username} and @{added.username} @{author.username}").json()
    eventually(lambda: len(mentions(added)) == 1 or None)
    (notice,) = mentions(added)
    assert (notice["account"]["id"], notice["status"]["content"]) == (author.id, changed["content"])
    # A later edit that adds another: only that one is told; the others keep the one notification they have.
    edit(http, author, status_id, f"hello @{kept.username}, @{added.username} and @{late.username}")
    eventually(lambda: len(mentions(late)) == 1 or None)
    assert len(mentions(kept)) == 1 and len(mentions(added)) == 1 and mentions(author) == []


def test_edits_of_one_status_run_one_at_a_time(http: httpx.Client, make_user: Callable[..., User],
                                               stack_redis: Any) -> None:
    """Eight edits sent at once: each is answered (200, or 409 after waiting its turn too long), and the status,
    its history and the answers agree: one version for each edit answered 200, the status reading as the last."""
    author = make_user("ed_c")
    posted = post(http, author, "before the race")
    status_id = posted["id"]
    texts = [f"edit number {n}" for n in range(8)]
    with ThreadPoolExecutor(len(texts)) as pool:
        answers = list(pool.map(lambda text: edit(http, author, status_id, text), texts))
    assert all(a.status_code in (200, 409) for a in answers), [a.text for a in answers]
    done = [a.json() for a in answers if a.status_code == 200]
    assert done and all(a.json() == {"error": "Another edit of this status is in progress; try again"}
                        for a in answers if a.status_code == 409)
    versions = history(http, status_id)
    assert len(versions) == 1 + len(done)
    assert sorted(v["content"] for v in versions[1:]) == sorted(d["content"] for d in done)
    assert [v["created_at"] for v in versions[1:]] == sorted(d["edited_at"] for d in done)
    shown = http.get(f"/api/v1/statuses/{status_id}", headers=author.auth).json()
    assert (shown["content"], shown["edited_at"]) == (versions[-1]["content"], versions[-1]["created_at"])

    # The lock held by an edit that runs on (its lease renewed; here set for a minute): the next waits its 3 s,
    # then is a 409 that changes nothing.
    lock = keys.status_edit_lock(int(status_id))
    stack_redis.set(lock, b"someone else", px=60_000)
    started = time.monotonic()
    answer = edit(http, author, status_id, "while locked")
    assert answer.status_code == 409 and time.monotonic() - started >= 2.5, answer.text
    assert len(history(http, status_id)) == 1 + len(done)
    # Left by a service that died mid-edit, it holds its last lease (2 s) at most: the next edit waits it out.
    stack_redis.set(lock, b"someone dead", px=2_000)
    assert edit(http, author, status_id, "after the lock").status_code == 200
    assert history(http, status_id)[-1]["content"] == "<p>after the lock</p>"
    assert stack_redis.get(lock) is None  # released once done


def test_a_creation_event_applied_after_an_edit_caches_nothing(http: httpx.Client, make_user: Callable[..., User],
                                                               stack_redis: Any) -> None:
    """The fanout may apply a status's creation event after the status was edited (a fanout behind, or replaying
    from its last commit after a crash), and the event carries the first version: caching it where the edit
    dropped the cached value would show the first version everywhere for a day. Seen in the concurrent-edits test:
    an edit answered with the version as posted."""
    author = make_user("ed_l")
    posted = post(http, author, "the first version")
    status_id = int(posted["id"])
    first = stack_redis.get(keys.status_cache(status_id))  # cached by the post service as it answered
    assert first is not None
    changed = edit(http, author, posted["id"], "the second version").json()
    # The edit's answer cached the new version again; a recount (a favourite's, a reply's) drops it, as the edit
    # itself did for a moment: the event lands in such a gap.
    stack_redis.delete(keys.status_cache(status_id))

    async def apply_creation_again() -> None:  # the fanout's own command for a StatusCreated
        redis = Redis.from_url(service_env()["KICAU_REDIS_URL"])
        try:
            await resp.round_trip(redis, [cache_command(status_id, int(author.id), bytes(shown_fragment(first)))])
        finally:
            await redis.aclose()

    asyncio.run(apply_creation_again())
    shown = http.get(f"/api/v1/statuses/{status_id}", headers=author.auth).json()
    assert (shown["content"], shown["edited_at"]) == (changed["content"], changed["edited_at"])
    assert contents(http, author, f"/api/v1/accounts/{author.id}/statuses")[posted["id"]] == changed["content"]

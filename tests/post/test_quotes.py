"""Quote posts against the running stack (kicau/quotes.py, Mastodon 4.5): posting a quote, who may quote what,
the Quote and QuoteApproval each reader is shown, ``quotes_count``, the quotes of a status, revoking a quote,
changing who may quote, the ``quote`` and ``quoted_update`` notifications, edits and deletions, Mastodon.py."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from mastodon import Mastodon
from websockets.sync.client import connect

from tests.conftest import User, eventually
from tests.gateway.test_hashtag_stream import frames_until_quiet
from tests.gateway.test_streaming_bounds import ws_url
from tests.timeline.test_filters import delivering
from tests.timeline.test_notifications import follow, notifications

STATUS = re.compile(r"/statuses/([0-9]+)$")


def post(http: httpx.Client, author: User, text: str, **fields: Any) -> dict[str, Any]:
    answer = http.post("/api/v1/statuses", headers=author.auth, json={"status": text, **fields})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def refused(http: httpx.Client, author: User, text: str, error: str, **fields: Any) -> None:
    answer = http.post("/api/v1/statuses", headers=author.auth, json={"status": text, **fields})
    assert answer.status_code == 422, answer.text
    assert answer.json() == {"error": f"Validation failed: {error}"}


def read(http: httpx.Client, status_id: str, reader: User | None) -> dict[str, Any]:
    answer = http.get(f"/api/v1/statuses/{status_id}", headers=reader.auth if reader else {})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def home(http: httpx.Client, reader: User) -> dict[str, dict[str, Any]]:
    answer = http.get("/api/v1/timelines/home", headers=reader.auth)
    assert answer.status_code == 200, answer.text
    return {s["id"]: s for s in answer.json()}


def in_home(http: httpx.Client, reader: User, status_id: str) -> dict[str, Any]:
    def found() -> dict[str, Any]:
        page = home(http, reader)
        assert status_id in page
        return page[status_id]
    return eventually(found)


def notified(http: httpx.Client, user: User, kind: str) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]]:
        got = notifications(http, user, f"?types[]={kind}")
        assert got
        return got
    return eventually(found)


def test_a_quote_shows_the_quoted_status_to_each_reader(http: httpx.Client, make_user: Callable[..., User],
                                                        gateway_url: str) -> None:
    author, quoter, reader = make_user("qt_a"), make_user("qt_q"), make_user("qt_r")
    follow(http, reader, quoter)
    quoted = post(http, author, "the original thought")
    assert quoted["quote"] is None and quoted["quotes_count"] == 0
    assert quoted["quote_approval"] == {"automatic": ["public"], "manual": [], "current_user": "automatic"}

    made = post(http, quoter, "well said", quoted_status_id=quoted["id"])
    assert made["quote"]["state"] == "accepted"
    assert made["quote"]["quoted_status"]["id"] == quoted["id"]
    assert made["quote"]["quoted_status"]["account"]["id"] == author.id
    # For clients that show no quotes, a link to the quoted status leads the text (hidden by those that do).
    assert made["content"].startswith('<p class="quote-inline">RE: <a href="')
    assert quoted["url"] in made["content"] and made["content"].endswith("<p>well said</p>")

    # Everywhere it is read: by id, anonymously, in a follower's home timeline, and through Mastodon.py.
    for reader_of in (quoter, reader, None):
        shown = read(http, made["id"], reader_of)
        assert (shown["quote"]["state"], shown["quote"]["quoted_status"]["id"]) == ("accepted", quoted["id"])
    assert in_home(http, reader, made["id"])["quote"]["quoted_status"]["content"] == "<p>the original thought</p>"
    client = Mastodon(access_token=reader.token, api_base_url=gateway_url)
    assert str(client.status(made["id"]).quote.quoted_status.id) == quoted["id"]

    # The quoted status counts it; its author is told.
    assert read(http, quoted["id"], author)["quotes_count"] == 1
    told = notified(http, author, "quote")
    assert [(n["type"], n["account"]["id"], n["status"]["id"]) for n in told] == [("quote", quoter.id, made["id"])]
    assert told[0]["status"]["quote"]["quoted_status"]["id"] == quoted["id"]

    # A quote posted through Mastodon.py, which names the quoted status by its own field.
    again = Mastodon(access_token=quoter.token, api_base_url=gateway_url).status_post(
        "again", quoted_status_id=quoted["id"])
    assert again.quote.state == "accepted" and str(again.quote.quoted_status.id) == quoted["id"]
    assert read(http, quoted["id"], author)["quotes_count"] == 2


def test_a_quote_that_mentions_the_quoted_author_tells_it_twice(http: httpx.Client,
                                                               make_user: Callable[..., User]) -> None:
    """As Mastodon: the mention is one notification, the quote another, each with an id of its own; dismissing one
    leaves the other, and a deleted quote takes both. A retry with the same Idempotency-Key, which publishes the
    status again, tells no one twice."""
    author, quoter = make_user("qm_a"), make_user("qm_q")
    quoted = post(http, author, "say my name")
    form = {"status": f"@{author.username} quoted you", "quoted_status_id": quoted["id"]}
    headers = {**quoter.auth, "Idempotency-Key": f"quote-{quoter.id}"}
    answers = [http.post("/api/v1/statuses", headers=headers, json=form) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200] and answers[0].json()["id"] == answers[1].json()["id"]
    made = answers[0].json()
    assert [m["id"] for m in made["mentions"]] == [author.id] and made["quote"]["state"] == "accepted"

    def both() -> list[dict[str, Any]]:
        got = notifications(http, author, "?types[]=mention&types[]=quote")
        assert len(got) == 2
        return got
    told = eventually(both)
    assert sorted((n["type"], n["account"]["id"], n["status"]["id"]) for n in told) == [
        ("mention", quoter.id, made["id"]), ("quote", quoter.id, made["id"])]
    assert len({n["id"] for n in told}) == 2
    by_type = {n["type"]: n for n in told}
    assert by_type["mention"]["id"] == made["id"] and int(by_type["quote"]["id"]) > int(made["id"])

    dismissed = http.post(f"/api/v1/notifications/{by_type['mention']['id']}/dismiss", headers=author.auth)
    assert dismissed.status_code == 200
    assert [n["type"] for n in notifications(http, author, "?types[]=mention&types[]=quote")] == ["quote"]
    assert http.delete(f"/api/v1/statuses/{made['id']}", headers=quoter.auth).status_code == 200

    def none_left() -> bool:
        return notifications(http, author, "?types[]=mention&types[]=quote") == []
    eventually(none_left)


def test_who_may_quote_what(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, follower, stranger = make_user("qw_a"), make_user("qw_f"), make_user("qw_s")
    follow(http, follower, author)
    for_followers = post(http, author, "followers may quote", quote_approval_policy="followers")
    only_me = post(http, author, "no one may quote", quote_approval_policy="nobody")
    private = post(http, author, "for my followers", visibility="private")
    direct = post(http, author, f"@{follower.username} between us", visibility="direct")

    assert for_followers["quote_approval"] == {"automatic": ["followers"], "manual": [], "current_user": "automatic"}
    assert only_me["quote_approval"] == {"automatic": [], "manual": [], "current_user": "automatic"}
    # As each reader is shown whether it may quote.
    assert read(http, for_followers["id"], follower)["quote_approval"]["current_user"] == "automatic"
    assert read(http, for_followers["id"], stranger)["quote_approval"]["current_user"] == "denied"
    assert read(http, only_me["id"], follower)["quote_approval"]["current_user"] == "denied"
    assert read(http, only_me["id"], author)["quote_approval"]["current_user"] == "automatic"
    assert read(http, private["id"], follower)["quote_approval"] == {
        "automatic": [], "manual": [], "current_user": "denied"}
    assert read(http, direct["id"], author)["quote_approval"]["current_user"] == "denied"
    public = post(http, author, "anyone may quote")
    assert read(http, public["id"], None)["quote_approval"]["current_user"] == "denied"  # no account, no quote

    not_allowed = "You are not allowed to quote this post"
    refused(http, stranger, "mine now", not_allowed, quoted_status_id=for_followers["id"])
    assert post(http, follower, "allowed", quoted_status_id=for_followers["id"])["quote"]["state"] == "accepted"
    refused(http, follower, "mine now", not_allowed, quoted_status_id=only_me["id"])
    assert post(http, author, "my own", quoted_status_id=only_me["id"])["quote"]["state"] == "accepted"
    # One the quoter may not see is missing to it; a direct status is quoted by no one, its author neither.
    refused(http, stranger, "peek", "The post you are trying to quote does not appear to exist",
            quoted_status_id=private["id"])
    refused(http, author, "again", not_allowed, quoted_status_id=direct["id"])
    # A followers-only status's quote is followers-only at most.
    mine = post(http, author, "quoting my private one", quoted_status_id=private["id"], visibility="public")
    assert mine["visibility"] == "private"
    # A direct quote must mention the quoted status's author; a quote carries no poll and no attachments.
    refused(http, follower, "psst", "A direct quote must mention the author of the quoted post",
            quoted_status_id=public["id"], visibility="direct")
    assert post(http, follower, f"@{author.username} psst", quoted_status_id=public["id"],
                visibility="direct")["visibility"] == "direct"
    refused(http, follower, "vote", "A quote post cannot have attachments or a poll", quoted_status_id=public["id"],
            poll={"options": ["a", "b"], "expires_in": 3600})
    # A reblog is no status to quote.
    boosted = http.post(f"/api/v1/statuses/{public['id']}/reblog", headers=follower.auth).json()
    refused(http, stranger, "boost", "A reblog cannot be quoted", quoted_status_id=boosted["id"])


def test_the_quote_state_each_reader_is_shown(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, quoter, reader = make_user("qs_a"), make_user("qs_q"), make_user("qs_r")
    public = post(http, author, "public words")
    quote = post(http, quoter, "quoting", quoted_status_id=public["id"])
    # The quoted status's author blocks the reader: the reader still sees the quote, not what it quotes.
    assert http.post(f"/api/v1/accounts/{reader.id}/block", headers=author.auth).status_code == 200
    assert read(http, quote["id"], reader)["quote"] == {"state": "unauthorized", "quoted_status": None}
    assert read(http, quote["id"], quoter)["quote"]["state"] == "accepted"

    other = make_user("qs_o")
    # Hiding the quoted author shows the quote as such, the status still there (as Mastodon's).
    assert http.post(f"/api/v1/accounts/{author.id}/mute", headers=other.auth).status_code == 200
    muted = read(http, quote["id"], other)["quote"]
    assert (muted["state"], muted["quoted_status"]["id"]) == ("muted_account", public["id"])
    assert http.post(f"/api/v1/accounts/{author.id}/block", headers=other.auth).status_code == 200
    assert read(http, quote["id"], other)["quote"]["state"] == "blocked_account"
    # Deleted since: the quote says so.
    assert http.delete(f"/api/v1/statuses/{public['id']}", headers=author.auth).status_code == 200
    assert read(http, quote["id"], quoter)["quote"] == {"state": "deleted", "quoted_status": None}

    # Its author quotes its own followers-only status: a follower sees both.
    follower = make_user("qs_f")
    follow(http, follower, author)
    private = post(http, author, "followers only", visibility="private")
    own = post(http, author, "as I said", quoted_status_id=private["id"])
    assert own["visibility"] == "private"
    assert read(http, own["id"], follower)["quote"]["quoted_status"]["id"] == private["id"]


def test_the_quotes_of_a_status_revoking_and_deleting(http: httpx.Client, make_user: Callable[..., User],
                                                      gateway_url: str) -> None:
    author, first, second, stranger = (make_user("ql_a"), make_user("ql_1"), make_user("ql_2"),
                                       make_user("ql_s"))
    quoted = post(http, author, "quote me")
    made = [post(http, quoter, f"quote {n}", quoted_status_id=quoted["id"])["id"]
            for n, quoter in enumerate((first, second, first))]
    listed = http.get(f"/api/v1/statuses/{quoted['id']}/quotes", headers=stranger.auth)
    assert listed.status_code == 200 and [s["id"] for s in listed.json()] == made[::-1]
    paged = http.get(f"/api/v1/statuses/{quoted['id']}/quotes?limit=2", headers=stranger.auth)
    assert [s["id"] for s in paged.json()] == made[:0:-1]
    older = re.search(r'<([^>]+)>; rel="next"', paged.headers["Link"])
    assert older is not None
    rest = http.get(older.group(1).removeprefix(gateway_url), headers=stranger.auth)
    assert [s["id"] for s in rest.json()] == made[:1]
    client = Mastodon(access_token=author.token, api_base_url=gateway_url)
    assert [str(s.id) for s in client.status_quotes(quoted["id"])] == made[::-1]
    assert read(http, quoted["id"], author)["quotes_count"] == 3

    # Revoked by the quoted status's author: the quote shows it, the status counts and lists it no more.
    assert http.post(f"/api/v1/statuses/{quoted['id']}/quotes/{made[1]}/revoke",
                     headers=first.auth).status_code == 403
    revoked = client.status_quote_revoke(quoted["id"], made[1])
    assert str(revoked.id) == made[1] and revoked.quote.state == "revoked" and revoked.quote.quoted_status is None
    assert read(http, made[1], stranger)["quote"] == {"state": "revoked", "quoted_status": None}
    assert read(http, quoted["id"], author)["quotes_count"] == 2
    assert [str(s.id) for s in client.status_quotes(quoted["id"])] == [made[2], made[0]]
    # Again: nothing more to revoke, the same answer. No such quote: 404.
    again = http.post(f"/api/v1/statuses/{quoted['id']}/quotes/{made[1]}/revoke", headers=author.auth)
    assert again.status_code == 200 and again.json()["quote"]["state"] == "revoked"
    unquoting = post(http, first, "quotes nothing")
    for quoting in (unquoting["id"], "123"):
        missing = http.post(f"/api/v1/statuses/{quoted['id']}/quotes/{quoting}/revoke", headers=author.auth)
        assert (missing.status_code, missing.json()) == (404, {"error": "Record not found"})

    # A deleted quote leaves the list and the count.
    assert http.delete(f"/api/v1/statuses/{made[2]}", headers=first.auth).status_code == 200
    assert read(http, quoted["id"], author)["quotes_count"] == 1
    assert [s["id"] for s in http.get(f"/api/v1/statuses/{quoted['id']}/quotes",
                                      headers=author.auth).json()] == made[:1]
    # The quotes of a status the reader may not see: 404; without a token: 401.
    private = post(http, author, "mine", visibility="private")
    hidden = http.get(f"/api/v1/statuses/{private['id']}/quotes", headers=stranger.auth)
    assert (hidden.status_code, hidden.json()) == (404, {"error": "Record not found"})
    assert http.get(f"/api/v1/statuses/{quoted['id']}/quotes").status_code == 401


def test_changing_who_may_quote(http: httpx.Client, make_user: Callable[..., User], gateway_url: str) -> None:
    author, other = make_user("qp_a"), make_user("qp_o")
    status = post(http, author, "open to quotes")
    earlier = post(http, other, "quoted in time", quoted_status_id=status["id"])
    client = Mastodon(access_token=author.token, api_base_url=gateway_url)
    closed = client.status_update_quote_approval_policy(status["id"], "nobody")
    assert closed.quote_approval.automatic == [] and closed.quote_approval.current_user == "automatic"
    assert read(http, status["id"], other)["quote_approval"]["current_user"] == "denied"
    refused(http, other, "too late", "You are not allowed to quote this post", quoted_status_id=status["id"])
    assert read(http, earlier["id"], other)["quote"]["state"] == "accepted"  # past quotes stand
    # An edit refused leaves who may quote as it was (the policy goes with the edit's own write).
    too_long = http.put(f"/api/v1/statuses/{status['id']}", headers=author.auth,
                        json={"status": "x" * 501, "quote_approval_policy": "public"})
    assert too_long.status_code == 422, too_long.text
    assert read(http, status["id"], other)["quote_approval"]["automatic"] == []
    # Through an edit too, which also keeps the quote of a quoting status and its leading link.
    edited = http.put(f"/api/v1/statuses/{status['id']}", headers=author.auth,
                      json={"status": "open again", "quote_approval_policy": "public"})
    assert edited.status_code == 200 and edited.json()["quote_approval"]["automatic"] == ["public"]
    assert post(http, other, "now I can", quoted_status_id=status["id"])["quote"]["state"] == "accepted"
    rewritten = http.put(f"/api/v1/statuses/{earlier['id']}", headers=other.auth,
                         json={"status": "quoted in time, edited", "quoted_status_id": status["id"]})
    assert rewritten.status_code == 200, rewritten.text
    assert rewritten.json()["quote"]["quoted_status"]["id"] == status["id"]
    assert rewritten.json()["content"].startswith('<p class="quote-inline">RE: ')
    changed = http.put(f"/api/v1/statuses/{earlier['id']}", headers=other.auth,
                       json={"status": "another", "quoted_status_id": post(http, author, "x")["id"]})
    assert changed.status_code == 422 and "quote" in changed.json()["error"]
    # Someone else's status: 404; a policy that is none: 422.
    assert http.put(f"/api/v1/statuses/{status['id']}/interaction_policy", headers=other.auth,
                    json={"quote_approval_policy": "nobody"}).status_code == 404
    bad = http.put(f"/api/v1/statuses/{status['id']}/interaction_policy", headers=author.auth,
                   json={"quote_approval_policy": "friends"})
    assert bad.status_code == 422 and "error" in bad.json()


def test_a_revoke_and_a_policy_change_are_streamed(http: httpx.Client, make_user: Callable[..., User],
                                                   gateway_url: str) -> None:
    """As Mastodon distributes them: a ``status.update`` of the quote revoked, and of the status whose policy
    changed, to the streams its edits reach; neither tells anyone (no ``update`` or ``quoted_update``)."""
    author, quoter, reader = make_user("qs_a"), make_user("qs_q"), make_user("qs_r")
    follow(http, reader, quoter)
    follow(http, reader, author)
    follow(http, author, quoter)  # a reblog of the quote by the author would be notified of an edit: none is
    quoted = post(http, author, "stream me")
    with connect(ws_url(gateway_url) + "?stream=user", additional_headers=reader.auth, open_timeout=10) as ws:
        delivering(http, quoter, ws)
        quote = post(http, quoter, "on the stream", quoted_status_id=quoted["id"])
        assert http.post(f"/api/v1/statuses/{quote['id']}/reblog", headers=author.auth).status_code == 200
        assert quote["id"] in [json.loads(str(f["payload"]))["id"] for f in frames_until_quiet(ws)]

        assert http.post(f"/api/v1/statuses/{quoted['id']}/quotes/{quote['id']}/revoke",
                         headers=author.auth).status_code == 200
        (frame,) = list(frames_until_quiet(ws))
        updated = json.loads(str(frame["payload"]))
        assert (frame["event"], updated["id"]) == ("status.update", quote["id"])
        assert updated["quote"] == {"state": "revoked", "quoted_status": None}
        assert updated["edited_at"] is None and updated["content"] == quote["content"]

        assert http.put(f"/api/v1/statuses/{quoted['id']}/interaction_policy", headers=author.auth,
                        json={"quote_approval_policy": "followers"}).status_code == 200
        (frame,) = list(frames_until_quiet(ws))
        updated = json.loads(str(frame["payload"]))
        assert (frame["event"], updated["id"]) == ("status.update", quoted["id"])
        assert updated["quote_approval"]["automatic"] == ["followers"] and updated["edited_at"] is None
        # The same policy again changes nothing, and streams nothing.
        assert http.put(f"/api/v1/statuses/{quoted['id']}/interaction_policy", headers=author.auth,
                        json={"quote_approval_policy": "followers"}).status_code == 200
        assert list(frames_until_quiet(ws)) == []
    # A real edit after both notifies as an edit does; neither change before it told anyone.
    assert http.put(f"/api/v1/statuses/{quote['id']}", headers=quoter.auth,
                    json={"status": "on the stream, edited"}).status_code == 200
    assert [n["type"] for n in notified(http, author, "update")] == ["update"]
    assert notifications(http, quoter, "?types[]=quoted_update&types[]=update") == []


def test_an_edit_of_a_quoted_status_tells_those_who_quote_it(http: httpx.Client, make_user: Callable[..., User],
                                                               gateway_url: str) -> None:
    author, quoter, booster = make_user("qu_a"), make_user("qu_q"), make_user("qu_b")
    status = post(http, author, "first words")
    quote = post(http, quoter, "about that", quoted_status_id=status["id"])
    assert http.post(f"/api/v1/statuses/{status['id']}/reblog", headers=booster.auth).status_code == 200
    # One that both reblogged and quotes it is told both, as Mastodon tells it.
    both = post(http, booster, "and me", quoted_status_id=status["id"])
    with connect(ws_url(gateway_url) + "?stream=user:notification", additional_headers=quoter.auth,
                 open_timeout=10) as ws:
        def streamed() -> list[dict[str, Any]]:
            assert http.put(f"/api/v1/statuses/{status['id']}", headers=author.auth,
                            json={"status": "second words"}).status_code == 200
            frames = [json.loads(str(f["payload"])) for f in frames_until_quiet(ws) if f["event"] == "notification"]
            assert frames, "the stream is registered asynchronously: edit again until it carries one"
            return frames
        # Streamed as it is kept: the quote, as its author sees it, showing the edited status.
        (live, *_) = eventually(streamed)
        assert (live["type"], live["status"]["id"]) == ("quoted_update", quote["id"])
        assert live["status"]["quote"]["quoted_status"]["content"] == "<p>second words</p>"
    told = notified(http, quoter, "quoted_update")
    assert {(n["type"], n["account"]["id"], n["status"]["id"]) for n in told} == {
        ("quoted_update", author.id, quote["id"])}
    assert told[0]["status"]["quote"]["quoted_status"]["content"] == "<p>second words</p>"
    # The update of each edit replaces the one before (one a status and account, as Mastodon keeps).
    def one_update() -> list[dict[str, Any]]:
        found = notifications(http, booster, "?types[]=update")
        assert len(found) == 1, found
        return found
    updates = eventually(one_update)
    assert {n["type"] for n in updates} == {"update"}
    quoted_updates = notified(http, booster, "quoted_update")
    assert {(n["type"], n["status"]["id"]) for n in quoted_updates} == {("quoted_update", both["id"])}
    assert updates[0]["id"] not in {n["id"] for n in quoted_updates}


@pytest.mark.parametrize("policy", ["public", "followers", "nobody"])
def test_a_status_keeps_the_policy_it_was_posted_with(http: httpx.Client, make_user: Callable[..., User],
                                                      policy: str) -> None:
    author = make_user("qk_a")
    made = post(http, author, "with a policy", quote_approval_policy=policy)
    expected = [policy] if policy != "nobody" else []
    assert read(http, made["id"], None)["quote_approval"]["automatic"] == expected

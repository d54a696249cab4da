"""Edits change a status's attachments (services/post/edits.py), as Mastodon's do: added from the author's own
uploads, removed (kept for the history, which shows each version's), reordered; a failed edit changes nothing
and keeps nothing claimed; the status's delete frees all it ever showed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from mastodon import Mastodon

from tests.conftest import User, eventually
from tests.post.test_media import image_bytes, uploaded
from tests.timeline.test_notifications import follow


def ids(status: dict[str, Any]) -> list[str]:
    return [m["id"] for m in status["media_attachments"]]


def edit(http: httpx.Client, user: User, status_id: str, **body: Any) -> httpx.Response:
    return http.put(f"/api/v1/statuses/{status_id}", headers=user.auth, json=body)


def history(http: httpx.Client, user: User, status_id: str) -> list[list[str]]:
    answer = http.get(f"/api/v1/statuses/{status_id}/history", headers=user.auth)
    assert answer.status_code == 200, answer.text
    return [ids(version) for version in answer.json()]


def test_an_edit_adds_removes_and_keeps_attachments(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, follower = make_user("med_e"), make_user("med_f")
    follow(http, follower, author)
    a, b = (uploaded(http, author, image_bytes(colour=c))["id"] for c in ("red", "blue"))
    status = http.post("/api/v1/statuses", headers=author.auth, json={"status": "one", "media_ids": [a]}).json()

    added = edit(http, author, status["id"], status="two", media_ids=[a, b])
    assert added.status_code == 200, added.text
    assert ids(added.json()) == [a, b] and added.json()["edited_at"] is not None
    assert ids(http.get(f"/api/v1/statuses/{status['id']}", headers=follower.auth).json()) == [a, b]

    removed = edit(http, author, status["id"], status="three", media_ids=[b])
    assert removed.status_code == 200 and ids(removed.json()) == [b]
    # Named no attachments: unchanged.
    worded = edit(http, author, status["id"], status="four")
    assert worded.status_code == 200 and ids(worded.json()) == [b]
    assert history(http, author, status["id"]) == [[a], [a, b], [b], [b]]
    # What an edit removed stays the status's (its history shows it).
    taken = http.post("/api/v1/statuses", headers=author.auth, json={"status": "mine?", "media_ids": [a]})
    assert taken.status_code == 422 and "already attached" in taken.json()["error"]

    # Every attachment gone: the text must say something then.
    blank = edit(http, author, status["id"], status="", media_ids=[])
    assert blank.status_code == 422 and "can't be blank" in blank.json()["error"]
    bare = edit(http, author, status["id"], status="words alone", media_ids=[])
    assert bare.status_code == 200 and ids(bare.json()) == []
    in_home: dict[str, Any] = eventually(lambda: next(
        (s for s in http.get("/api/v1/timelines/home", headers=follower.auth).json() if s["id"] == status["id"]),
        None) or {})
    assert ids(in_home) == []

    # The delete frees all it ever showed: a redraft takes both.
    assert http.delete(f"/api/v1/statuses/{status['id']}", headers=author.auth).status_code == 200
    redraft = http.post("/api/v1/statuses", headers=author.auth, json={"status": "again", "media_ids": [a, b]})
    assert redraft.status_code == 200, redraft.text
    assert ids(redraft.json()) == [a, b]


def test_a_refused_edit_changes_nothing_and_claims_nothing(http: httpx.Client,
                                                           make_user: Callable[..., User]) -> None:
    author, other = make_user("med_g"), make_user("med_h")
    a, free, *more = (uploaded(http, author)["id"] for _ in range(5))
    theirs = uploaded(http, other)["id"]
    status = http.post("/api/v1/statuses", headers=author.auth, json={"status": "s", "media_ids": [a]}).json()
    elsewhere = http.post("/api/v1/statuses", headers=author.auth,
                          json={"status": "t", "media_ids": [more[0]]}).json()

    for media_ids, message in (([a, free, theirs], f"Media {theirs} not found"),
                               ([a, free, more[0]], "already attached to another post"),
                               ([a, free, *more], "more than 4 files")):
        refused = edit(http, author, status["id"], status="changed", media_ids=media_ids)
        assert refused.status_code == 422, refused.text
        assert message in refused.json()["error"]
    assert ids(http.get(f"/api/v1/statuses/{status['id']}", headers=author.auth).json()) == [a]
    assert history(http, author, status["id"]) == [[a]]  # never edited: its one version
    # The uploads the refused edits named first are free still.
    later = http.post("/api/v1/statuses", headers=author.auth, json={"status": "u", "media_ids": [free]})
    assert later.status_code == 200, later.text
    assert ids(elsewhere) == [more[0]]

    polled = http.post("/api/v1/statuses", headers=author.auth, json={
        "status": "vote", "poll": {"options": ["x", "y"], "expires_in": 3600}}).json()
    with_poll = edit(http, author, polled["id"], status="vote", media_ids=[more[1]],
                     poll={"options": ["x", "y"], "expires_in": 3600})
    assert with_poll.status_code == 422 and "both files and a poll" in with_poll.json()["error"]


def test_versions_kept_before_they_held_attachments(http: httpx.Client, make_user: Callable[..., User],
                                                    stack_cassandra: Any) -> None:
    """A status edited before versions kept their attachments (migration 0044): its old versions show what it
    had, also once an edit changes them."""
    author = make_user("med_i")
    a, b = uploaded(http, author)["id"], uploaded(http, author)["id"]
    status = http.post("/api/v1/statuses", headers=author.auth, json={"status": "v1", "media_ids": [a]}).json()
    assert edit(http, author, status["id"], status="v2", media_ids=[a]).status_code == 200
    for row in list(stack_cassandra.execute("SELECT version_id FROM status_edits WHERE status_id = %s",
                                            (int(status["id"]),))):
        stack_cassandra.execute("UPDATE status_edits SET media = null WHERE status_id = %s AND version_id = %s",
                                (int(status["id"]), row["version_id"]))
    assert history(http, author, status["id"]) == [[a], [a]]
    assert edit(http, author, status["id"], status="v3", media_ids=[b]).status_code == 200
    assert history(http, author, status["id"]) == [[a], [a], [b]]


def test_mastodon_py_edits_attachments(gateway_url: str, make_user: Callable[..., User]) -> None:
    author = make_user("med_j")
    client = Mastodon(access_token=author.token, api_base_url=gateway_url, version_check_mode="none")
    first = client.media_post(image_bytes(colour="green"), mime_type="image/png", description="first")
    second = client.media_post(image_bytes(colour="purple"), mime_type="image/png", description="second")
    status = client.status_post("pictures", media_ids=[first])
    changed = client.status_update(status.id, "pictures, swapped", media_ids=[second, first])
    assert [m.id for m in changed.media_attachments] == [second.id, first.id]
    assert [m.description for m in changed.media_attachments] == ["second", "first"]
    assert [len(v.media_attachments) for v in client.status_history(status.id)] == [1, 2]

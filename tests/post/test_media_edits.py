"""Edits change a status's attachments (services/post/edits.py), as Mastodon's do: added from the author's own
uploads, removed (kept for the history, which shows each version's), reordered; a failed edit changes nothing
and keeps nothing claimed; the status's delete frees all it ever showed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

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


def described(status: dict[str, Any]) -> list[tuple[str, str | None, dict[str, float] | None]]:
    return [(m["id"], m["description"], m["meta"].get("focus")) for m in status["media_attachments"]]


def test_an_edit_describes_attachments_anew(http: httpx.Client, make_user: Callable[..., User]) -> None:
    """``media_attributes[]`` (Mastodon's): a new description and focal point for attachments the status is to
    have, by id, in JSON or either form spelling; a new version, the history keeping the old text; the
    attachment's own record follows (``GET /api/v1/media/:id``)."""
    author, follower = make_user("med_d"), make_user("med_g")
    follow(http, follower, author)
    a = uploaded(http, author, image_bytes(colour="red"), description="a red square")["id"]
    b = uploaded(http, author, image_bytes(colour="blue"))["id"]
    c = uploaded(http, author, image_bytes(colour="green"))["id"]
    status = http.post("/api/v1/statuses", headers=author.auth, json={"status": "alt", "media_ids": [a, b]}).json()

    # JSON, attributes alone: the attachments stay, described anew.
    first = edit(http, author, status["id"], status="alt",
                 media_attributes=[{"id": a, "description": "a red square, bright", "focus": "0.5,-0.25"}])
    assert first.status_code == 200, first.text
    assert described(first.json()) == [(a, "a red square, bright", {"x": 0.5, "y": -0.25}), (b, None,
                                                                                             {"x": 0.0, "y": 0.0})]
    assert first.json()["edited_at"] is not None
    assert described(http.get(f"/api/v1/statuses/{status['id']}", headers=follower.auth).json()) == described(
        first.json())
    own = http.get(f"/api/v1/media/{a}", headers=author.auth).json()
    assert (own["description"], own["meta"]["focus"]) == ("a red square, bright", {"x": 0.5, "y": -0.25})

    # A form, Rails's list spelling, with an attachment added in the same edit and described.
    form = [("status", "alt"), ("media_ids[]", c), ("media_ids[]", a),
            ("media_attributes[][id]", c), ("media_attributes[][description]", "green"),
            ("media_attributes[][id]", a), ("media_attributes[][focus]", "1,1")]
    second = http.put(f"/api/v1/statuses/{status['id']}", content=urlencode(form),
                      headers={**author.auth, "Content-Type": "application/x-www-form-urlencoded"})
    assert second.status_code == 200, second.text
    assert described(second.json()) == [(c, "green", {"x": 0.0, "y": 0.0}),
                                        (a, "a red square, bright", {"x": 1.0, "y": 1.0})]
    # Indexed form spelling; an unchanged description keeps no new version.
    third = http.put(f"/api/v1/statuses/{status['id']}", headers=author.auth, data={
        "status": "alt", "media_attributes[0][id]": c, "media_attributes[0][description]": "green"})
    assert third.status_code == 200 and described(third.json()) == described(second.json()), third.text
    versions = http.get(f"/api/v1/statuses/{status['id']}/history", headers=author.auth).json()
    assert [[m["description"] for m in v["media_attachments"]] for v in versions] == [
        ["a red square", None], ["a red square, bright", None], ["green", "a red square, bright"]]
    # The follower's home timeline shows it as edited.
    in_home: dict[str, Any] = eventually(lambda: next(
        (s for s in http.get("/api/v1/timelines/home", headers=follower.auth).json()
         if s["id"] == status["id"] and s["media_attachments"][0]["id"] == c), None) or {})
    assert described(in_home) == described(second.json())
    # Removed by a later edit and posted again after the delete: it carries the description an edit gave it.
    assert edit(http, author, status["id"], status="alt", media_ids=[c]).status_code == 200
    assert http.delete(f"/api/v1/statuses/{status['id']}", headers=author.auth).status_code == 200
    again = http.post("/api/v1/statuses", headers=author.auth, json={"status": "again", "media_ids": [a]})
    assert again.status_code == 200 and described(again.json()) == [(a, "a red square, bright", {"x": 1.0,
                                                                                                   "y": 1.0})]


def test_media_attributes_refused_change_nothing(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, other = make_user("med_r"), make_user("med_s")
    a = uploaded(http, author, image_bytes(colour="red"), description="kept")["id"]
    loose = uploaded(http, author, image_bytes(colour="blue"))["id"]
    theirs = uploaded(http, other, image_bytes(colour="green"))["id"]
    status = http.post("/api/v1/statuses", headers=author.auth, json={"status": "s", "media_ids": [a]}).json()
    for attributes in (
        [{"id": loose, "description": "not the status's"}],  # not among the attachments it is to have
        [{"id": theirs, "description": "someone else's"}],
        [{"id": a, "description": "x" * 1501}],
        [{"id": a, "focus": "2,0"}], [{"id": a, "focus": "left"}], [{"id": a, "focus": 5}],
        [{"id": a, "description": 7}], [{"id": "abc"}], [{"description": "no id"}], ["just a string"],
        [{"id": a, "description": "one"}, {"id": a, "description": "twice"}],
        [{"id": a, "thumbnail": "data"}],
        [{"id": a}] * 5, "not a list", {"x": {"id": a}},
    ):
        answer = edit(http, author, status["id"], status="changed?", media_attributes=attributes)
        assert answer.status_code == 422 and set(answer.json()) == {"error"}, (attributes, answer.text)
    for form in ({"status": "s", "media_attributes[0][colour]": "red"},
                 {"status": "s", "media_attributes[x][id]": str(a)}):
        answer = http.put(f"/api/v1/statuses/{status['id']}", headers=author.auth, data=form)
        assert answer.status_code == 422 and set(answer.json()) == {"error"}, (form, answer.text)
    shown = http.get(f"/api/v1/statuses/{status['id']}", headers=author.auth).json()
    assert (shown["edited_at"], shown["content"], described(shown)) == (None, "<p>s</p>",
                                                                        [(a, "kept", {"x": 0.0, "y": 0.0})])
    assert http.get(f"/api/v1/media/{a}", headers=author.auth).json()["description"] == "kept"
    # The one outside the status is still free for a status of the author's.
    assert http.post("/api/v1/statuses", headers=author.auth,
                     json={"status": "free", "media_ids": [loose]}).status_code == 200


def test_mastodon_py_describes_attachments_in_an_edit(gateway_url: str, make_user: Callable[..., User]) -> None:
    author = make_user("med_k")
    client = Mastodon(access_token=author.token, api_base_url=gateway_url, version_check_mode="none")
    picture = client.media_post(image_bytes(colour="green"), mime_type="image/png", description="before")
    status = client.status_post("described", media_ids=[picture])
    changed = client.status_update(status.id, "described", media_attributes=[
        {"id": picture.id, "description": "after", "focus": "-0.5,0.5"}])
    assert [m.description for m in changed.media_attachments] == ["after"]
    assert [m.description for v in client.status_history(status.id) for m in v.media_attachments] == [
        "before", "after"]

"""Status edits meeting faults (services/post/edits.py).

- The post service dies (``os._exit`` at a crash point, as a SIGKILL would end it) after the edit is written to
  Cassandra and the cached value dropped, before its event is published: the client gets a Mastodon error, never
  500, and its retry, once `stack up` has restarted the service, finds the edit written and publishes it: one new
  version, read everywhere, the status moved to its new hashtag's timeline.
- Kafka is paused (SIGSTOP) while an edit is published: the edit answers 503 and is taken back (the status reads
  as before, with one version), and once Kafka resumes, the event that timed out, if the producer still delivers
  it, is followed by the one restoring the status: its hashtag timelines end as its text says.
- The fanout is paused while a reblogged status is edited twice: both edits reach it in one batch, and the booster
  holds one ``update``, the second's."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import User, eventually
from tests.faults import harness
from tests.faults.conftest import Faults
from tests.post.test_edits import edit, history, post
from tests.timeline.test_home_invariant import home_ids
from tests.timeline.test_tag_timeline import fresh_tag, ids, tagged


def _read_by(http: httpx.Client, reader: User, status_id: str) -> str:
    answer = http.get(f"/api/v1/statuses/{status_id}", headers=reader.auth)
    assert answer.status_code == 200, answer.text
    content: str = answer.json()["content"]
    return content


def _fanned_out(http: httpx.Client, author: User, reader: User) -> None:
    """Wait until the fanout has applied every event of ``author`` so far, whole.

    A new status of its is published after them (an event only handed to the producer, as an edit's undo, is in
    the log before it), and reaches ``reader``'s home timeline once the fanout has come to it (one author's events
    are fanned out in order). That alone is not the end of the batch that carried it: the batch's home timeline
    writes go out beside its Cassandra records (hashtag timelines, notifications), so a read right after the marker
    shows could find an event of the same batch half written (a fresh-clone CI run, 2026-12-07: the hashtag
    timelines of an edit taken back read empty, the restoring event's insert not yet there). The fanout commits a
    batch's offsets only once all of it is written: no lag left means the batch is done."""
    marker = post(http, author, "marker")["id"]
    eventually(lambda: marker in home_ids(http, reader) or None, timeout=60)
    harness.wait_for(lambda: harness.consumer_lag() == 0, 60, "the fanout to commit the marker's batch")


@pytest.mark.timeout(300)
def test_an_edit_retried_after_a_post_service_crash_is_published_once(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults,
) -> None:
    author, follower = make_user("efc_a"), make_user("efc_f")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=follower.auth).status_code == 200
    assert home_ids(http, follower) == []  # read once: from here the fanout writes it
    before, after = fresh_tag(), fresh_tag()
    status_id = post(http, author, f"as posted #{before}")["id"]
    eventually(lambda: ids(tagged(http, before)) == [status_id] or None)
    assert _read_by(http, follower, status_id) == _read_by(http, author, status_id)  # cached for both

    broken, restart_seconds = faults.crash_during(
        "post", "post.edit.written", lambda: edit(http, author, status_id, f"as edited #{after}"))

    retried = edit(http, author, status_id, f"as edited #{after}")
    assert retried.status_code == 200, retried.text
    assert [v["content"] for v in history(http, status_id)][1:] == [retried.json()["content"]]
    assert _read_by(http, follower, status_id) == retried.json()["content"]
    # The retry published the edit: its hashtag timelines moved.
    eventually(lambda: (ids(tagged(http, before)), ids(tagged(http, after))) == ([], [status_id]) or None)
    harness.figure(f"post service died at post.edit.written: answered {broken.status_code}; restarted in "
                   f"{restart_seconds:.1f}s; the retry published the edit once")


@pytest.mark.timeout(300)
def test_an_edit_kafka_does_not_take_is_taken_back(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults,
) -> None:
    author, follower = make_user("efk_a"), make_user("efk_f")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=follower.auth).status_code == 200
    assert home_ids(http, follower) == []
    before, after = fresh_tag(), fresh_tag()
    posted = post(http, author, f"as posted #{before}")
    status_id = posted["id"]
    eventually(lambda: ids(tagged(http, before)) == [status_id] or None)

    broker = harness.engine_pid("kafka")
    faults.pause(broker)
    try:
        refused = edit(http, author, status_id, f"never kept #{after}")
    finally:
        faults.resume(broker)
    assert refused.status_code == 503 and set(refused.json()) == {"error"}, refused.text
    shown = http.get(f"/api/v1/statuses/{status_id}").json()
    assert (shown["content"], shown["edited_at"]) == (posted["content"], None)
    assert [v["content"] for v in history(http, status_id)] == [posted["content"]]

    _fanned_out(http, author, follower)
    assert (ids(tagged(http, before)), ids(tagged(http, after))) == ([status_id], [])
    assert _read_by(http, follower, status_id) == posted["content"]
    harness.figure("Kafka paused during an edit: answered 503, the status as before, its hashtags' timelines too")


@pytest.mark.timeout(300)
def test_an_edit_of_descriptions_kafka_does_not_take_is_taken_back(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults,
) -> None:
    """The same with ``media_attributes[]``: the attachment's description is restored in the status and in its
    own record (written in the edit's batch, taken back in the undo's)."""
    from tests.post.test_media import image_bytes, uploaded

    author = make_user("efm_a")
    picture = uploaded(http, author, image_bytes(colour="red"), description="as posted")["id"]
    posted = http.post("/api/v1/statuses", headers=author.auth, json={"status": "pic", "media_ids": [picture]})
    assert posted.status_code == 200, posted.text
    status_id = posted.json()["id"]

    broker = harness.engine_pid("kafka")
    faults.pause(broker)
    try:
        refused = http.put(f"/api/v1/statuses/{status_id}", headers=author.auth, json={
            "status": "pic", "media_attributes": [{"id": picture, "description": "never kept", "focus": "1,1"}]})
    finally:
        faults.resume(broker)
    assert refused.status_code == 503 and set(refused.json()) == {"error"}, refused.text
    shown = http.get(f"/api/v1/statuses/{status_id}", headers=author.auth).json()
    assert shown["edited_at"] is None
    assert [(m["description"], m["meta"]["focus"]) for m in shown["media_attachments"]] == [
        ("as posted", {"x": 0.0, "y": 0.0})]
    own = http.get(f"/api/v1/media/{picture}", headers=author.auth).json()
    assert (own["description"], own["meta"]["focus"]) == ("as posted", {"x": 0.0, "y": 0.0})
    assert len(history(http, status_id)) == 1
    harness.figure("Kafka paused during an edit of descriptions: answered 503, status and attachment as before")


@pytest.mark.timeout(300)
def test_two_edits_in_one_fanout_batch_leave_one_update(
    http: httpx.Client, make_user: Callable[..., User], faults: Faults,
) -> None:
    """The fanout paused (SIGSTOP) while a reblogged status is edited twice: both edits reach it in one batch, and
    the booster is told once, by the second (the first's ``update`` replaced before it was ever recorded: a row
    both recorded and removed in one write would race; kicau/notifications.py ``UpdateNotices``)."""
    author, booster = make_user("e2b_a"), make_user("e2b_b")
    assert http.post(f"/api/v1/accounts/{author.id}/follow", headers=booster.auth).status_code == 200
    assert home_ids(http, booster) == []
    status_id = post(http, author, "to be edited twice")["id"]
    assert http.post(f"/api/v1/statuses/{status_id}/reblog", headers=booster.auth).status_code == 200
    assert edit(http, author, status_id, "edited once").status_code == 200
    _fanned_out(http, author, booster)

    def updates() -> list[dict[str, object]]:
        answer = http.get("/api/v1/notifications?types[]=update", headers=booster.auth)
        assert answer.status_code == 200, answer.text
        found: list[dict[str, object]] = answer.json()
        return found

    (first,) = updates()
    fanout = harness.service_pid("fanout")
    faults.pause(fanout)
    try:
        assert edit(http, author, status_id, "edited twice").status_code == 200
        third = edit(http, author, status_id, "edited thrice")
        assert third.status_code == 200, third.text
    finally:
        faults.resume(fanout)
    _fanned_out(http, author, booster)
    found = updates()
    assert len(found) == 1 and found[0]["id"] != first["id"], found
    status = found[0]["status"]
    assert isinstance(status, dict) and status["content"] == third.json()["content"]
    harness.figure("two edits in one fanout batch: the booster holds one update, the second's")

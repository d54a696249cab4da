"""Pure logic of edits in the fanout (services/fanout/service.py) and the post service (services/post/edits.py):
which hashtag timelines and featured-hashtag uses an edit moves, in the order of the batch; whose streams hear of
it; whom it notifies; what counts as a change."""

from __future__ import annotations

from datetime import UTC, datetime

from kicau.events import StatusCreated, StatusDeleted, StatusEdited
from kicau.featured_tags import COUNTED
from kicau.ids import ms_from_id
from kicau.notifications import QUOTED_UPDATE, UPDATE, Notification
from services.fanout.service import (
    PUBLIC_ONLY,
    edited_tags,
    stream_tags,
    tag_changes,
    tag_followed,
    update_notifications,
)
from services.post.edits import StatusChange, changes_anything, version_time


def edited(status_id: int, tags: list[str], before: list[str], visibility: str = "public",
           version_id: int = 99) -> StatusEdited:
    return StatusEdited(status_id=status_id, account_id=7, version_id=version_id, status_json="{}",
                        visibility=visibility, tags=tags, tags_before=before)


def test_an_edit_moves_its_status_between_hashtag_timelines() -> None:
    events = [edited(1, ["b", "c"], ["a", "b"])]
    assert edited_tags(events, [], [], PUBLIC_ONLY) == ([("c", 1)], [("a", 1)])
    # Featured hashtags count unlisted statuses too, by author.
    unlisted = [edited(1, ["b"], ["a"], visibility="unlisted")]
    assert edited_tags(unlisted, [], [], PUBLIC_ONLY) == ([], [])
    assert edited_tags(unlisted, [], [], COUNTED, account=True) == ([(7, "b", 1)], [(7, "a", 1)])
    # Neither timelines nor counts move for a private status or an edit that keeps its hashtags.
    assert edited_tags([edited(1, ["b"], ["a"], visibility="private")], [], [], COUNTED) == ([], [])
    assert edited_tags([edited(1, ["a"], ["a"])], [("x", 5)], [], PUBLIC_ONLY) == ([("x", 5)], [])


def test_a_batchs_changes_end_as_its_last_event_left_them() -> None:
    created = StatusCreated(status_id=1, account_id=7, status_json="{}", tags=["a"])
    first, second = edited(1, ["b"], ["a"], version_id=2), edited(1, ["a"], ["b"], version_id=3)
    listed, unlisted = tag_changes([created, first], [1], [])
    assert edited_tags([created, first], listed, unlisted, PUBLIC_ONLY) == ([("b", 1)], [("a", 1)])
    assert edited_tags([created, first, second], listed, unlisted, PUBLIC_ONLY) == ([("a", 1)], [("b", 1)])
    deleted = StatusDeleted(status_id=5, account_id=7, tags=["z"])
    assert edited_tags([deleted, first], [], [("z", 5)], PUBLIC_ONLY) == ([("b", 1)], [("z", 5), ("a", 1)])


def test_an_edit_reaches_the_followers_of_both_versions_hashtags() -> None:
    event = edited(1, ["b", "c"], ["a", "b"])
    assert stream_tags(event) == ["b", "c", "a"]
    dropped = edited(2, [], ["gone"])
    assert tag_followed([event, dropped, edited(3, [], [])]) == [event, dropped]
    assert tag_followed([edited(4, ["a"], [], visibility="unlisted")]) == []


def test_an_edit_notifies_each_booster_once_and_never_its_author() -> None:
    first, second = edited(1, [], [], version_id=10), edited(2, [], [], version_id=11)
    assert update_notifications([first, second], [[5, 7, 5, 6], []]) == [
        Notification(5, 10, UPDATE, 7, 1), Notification(6, 10, UPDATE, 7, 1)]


def test_an_edit_tells_those_who_quote_it_under_an_id_of_its_own() -> None:
    """Account 5 reblogged status 1 and quotes it (in 100 and 102), 8 quotes it, 7 is its author: 5 is told both,
    its quoted_update naming its newest quote; by an event from before ``quoted_update_id``, the update alone."""
    quoting = [(100, 5), (101, 8), (102, 5), (103, 7)]
    now = StatusEdited(status_id=1, account_id=7, version_id=10, status_json="{}", quoted_update_id=11)
    assert update_notifications([now], [[5]], [quoting]) == [
        Notification(5, 10, UPDATE, 7, 1), Notification(5, 11, QUOTED_UPDATE, 7, 102),
        Notification(8, 11, QUOTED_UPDATE, 7, 101)]
    older = StatusEdited(status_id=1, account_id=7, version_id=10, status_json="{}")
    assert update_notifications([older], [[5]], [quoting]) == [
        Notification(5, 10, UPDATE, 7, 1), Notification(8, 10, QUOTED_UPDATE, 7, 101)]


def test_what_counts_as_a_change() -> None:
    row = {"text": "hello", "sensitive": False, "spoiler_text": "", "language": "en"}
    assert not changes_anything(row, StatusChange("hello", language="en"), None)
    assert not changes_anything(row, StatusChange("hello").applied_to(row), None)  # no language: the status's own
    assert changes_anything(row, StatusChange("hello", sensitive=True, language="en"), None)
    assert changes_anything(row, StatusChange("hello", spoiler_text="cw", language="en"), None)
    assert changes_anything(row, StatusChange("hello", language="de"), None)
    assert changes_anything({**row, "text": None}, StatusChange("", language="en"), None) is False
    # Attachments: the ones it would have against the row's.
    assert changes_anything(row, StatusChange("hello", language="en"), '[{"id":1}]')
    assert not changes_anything({**row, "media": '[{"id":1}]'}, StatusChange("hello", language="en"), '[{"id":1}]')


def test_a_versions_time_is_its_ids_and_the_first_is_the_statuss() -> None:
    posted = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
    version_id = 117722042500451328
    assert version_time(42, 42, posted) == posted
    assert version_time(42, version_id, posted).timestamp() * 1000 == ms_from_id(version_id)

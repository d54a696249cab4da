"""Pure logic of grouped notifications (kicau/notification_groups.py): which notifications share a group, and how
a window of them becomes a page of groups with its cursors."""

from __future__ import annotations

import json

from kicau.ids import id_from_ms, ms_from_id
from kicau.notification_groups import GROUP_SPAN_HOURS, group_key, grouped_page

SPAN_MS = GROUP_SPAN_HOURS * 3_600_000
WINDOW_START_MS = 1_796_299_200_000 // SPAN_MS * SPAN_MS  # a window's start, early on 2026-12-03


def ids_at(*hours: float) -> list[int]:
    """Notification ids made at these hours after a window's start (Mastodon's layout: ``unix_ms << 16``)."""
    return [id_from_ms(int(WINDOW_START_MS + h * 3_600_000)) + n for n, h in enumerate(hours)]


def test_favourites_and_reblogs_of_a_status_and_follows_share_a_window() -> None:
    early, late, next_window = ids_at(0.5, 11.5, 12.5)
    assert ms_from_id(early) < ms_from_id(late) < ms_from_id(next_window)
    assert group_key(early, "favourite", 7) == group_key(late, "favourite", 7) != group_key(next_window, "favourite", 7)
    assert group_key(early, "favourite", 7) != group_key(early, "favourite", 8) != group_key(early, "reblog", 8)
    assert group_key(early, "follow", None) == group_key(late, "follow", None)
    assert group_key(early, "mention", 7) == f"ungrouped-{early}"
    assert group_key(early, "favourite", 7, grouped=["follow"]) == f"ungrouped-{early}"


def _notice(notification_id: int, kind: str, account: str, status: str | None = None) -> dict[str, object]:
    notice: dict[str, object] = {"id": str(notification_id), "type": kind, "created_at": "t",
                                 "account": {"id": account}}
    if status is not None:
        notice["status"] = {"id": status}
    return notice


def test_a_window_becomes_a_page_of_groups() -> None:
    a, b, c, d, e = sorted(ids_at(1, 2, 3, 4, 5), reverse=True)  # newest first
    window = json.dumps([_notice(a, "favourite", "1", "9"), _notice(b, "mention", "2", "8"),
                         _notice(c, "favourite", "3", "9"), _notice(d, "follow", "4"),
                         _notice(e, "favourite", "1", "9")]).encode()
    grouped = grouped_page(window, 2, more=True)
    page = json.loads(grouped.body())
    assert [(g["type"], g["notifications_count"]) for g in page["notification_groups"]] == [
        ("favourite", 1), ("mention", 1)]  # down to the mention: the older favourites wait for the next page
    assert (grouped.next_max_id, grouped.prev_min_id) == (str(b), str(a))
    # Older notifications exist below the window, in the favourites' span: their whole count is the service's.
    favourites_key = page["notification_groups"][0]["group_key"]
    assert grouped.uncounted == [favourites_key]
    counted = json.loads(grouped.body({favourites_key: 5}))["notification_groups"]
    assert [g["notifications_count"] for g in counted] == [5, 1]
    # A count read after a dismissal never shows fewer than the page holds.
    assert json.loads(grouped.body({favourites_key: 0}))["notification_groups"][0]["notifications_count"] == 1

    grouped = grouped_page(window, 3, more=False)
    page = json.loads(grouped.body())
    assert [(g["type"], g["notifications_count"]) for g in page["notification_groups"]] == [
        ("favourite", 3), ("mention", 1), ("follow", 1)]
    assert grouped.uncounted == [] and grouped.next_max_id is None
    favourites = page["notification_groups"][0]
    # Each account once in the sample, newest first; the group's oldest notification on the page.
    assert (favourites["sample_account_ids"], favourites["page_min_id"]) == (["1", "3"], str(e))
    assert [s["id"] for s in page["statuses"]] == ["9", "8"]


def test_a_group_counts_the_notifications_past_its_page_in_the_window() -> None:
    a, b, c, d = sorted(ids_at(1, 2, 3, 4), reverse=True)
    window = json.dumps([_notice(a, "follow", "1"), _notice(b, "mention", "2", "8"),
                         _notice(c, "follow", "3"), _notice(d, "follow", "4")]).encode()
    grouped = grouped_page(window, 1, more=False)
    (follows,) = json.loads(grouped.body())["notification_groups"]
    # One follow on the page (down to the next group), three in the group: the window read holds its whole span.
    assert (follows["notifications_count"], follows["page_min_id"], grouped.uncounted) == (3, str(a), [])


def test_a_span_past_the_read_is_uncounted() -> None:
    a, b = sorted(ids_at(1, 2), reverse=True)
    (later,) = ids_at(12.5)  # the next window's
    window = json.dumps([_notice(later, "reblog", "1", "9"), _notice(a, "reblog", "2", "9"),
                         _notice(b, "favourite", "3", "9")]).encode()
    whole = grouped_page(window, 3, more=True)
    # Older ones exist: only the span wholly above the oldest read is known whole.
    assert [k.split("-")[0] for k in whole.uncounted] == ["reblog", "favourite"]
    assert json.loads(whole.body())["notification_groups"][0]["notifications_count"] == 1
    # Read below a cursor inside the spans (the next page's) or above a lower cursor: the groups are uncounted;
    # below a cursor past the spans' window, they are whole.
    older = json.dumps([_notice(a, "reblog", "2", "9"), _notice(b, "favourite", "3", "9")]).encode()
    (inside,) = ids_at(6)
    assert len(grouped_page(older, 3, more=False, below=inside).uncounted) == 2
    assert len(grouped_page(older, 3, more=False, bounded=True).uncounted) == 2
    assert grouped_page(older, 3, more=False, below=later).uncounted == []

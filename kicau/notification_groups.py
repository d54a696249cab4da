"""Grouped notifications: Mastodon's ``/api/v2/notifications`` (what its web client and recent apps read once a
server says its API is version 2 or later, as Kicau's instance does).

A notification's ``group_key`` is a function of the notification alone, so that the v1 list, the stream and the
v2 groups agree: favourites and reblogs of one status within one window of ``GROUP_SPAN_HOURS`` share a group
(``favourite-<status id>-<window>``), as do follows (``follow-<window>``); any other notification is alone
(``ungrouped-<id>``). Mastodon keeps a group open for 12 hours from its first notification (a window that starts
with the group); Kicau's windows are fixed 12-hour spans of time, so two notifications a minute apart across a
window's end land in two groups.

A v2 page holds ``limit`` groups: read from a window of the newest notifications below the cursor (the v1 list's,
with its filters), the groups whose newest notification is newest, each with its notifications down to the newest
of the last group (``next``, the next page's cursor). A group with older notifications than that shows again on
a later page with them, its ``page_min_id`` and ``page_max_id`` saying which. Each group's count is of all its
notifications, as Mastodon's: counted in the window where the window holds the whole group's span, and otherwise
by the timeline service (``uncounted``: the gateway asks for those groups' counts in one call). Its sample is the
accounts of its newest eight, and the accounts and statuses the groups name come once each beside them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from kicau.ids import id_from_ms, ms_from_id

GROUP_SPAN_HOURS: Final = 12
_SPAN_MS: Final = GROUP_SPAN_HOURS * 3600 * 1000
# The types grouped when a request names none (Mastodon's default ``grouped_types[]``).
GROUPED_TYPES: Final = frozenset({"favourite", "follow", "reblog"})
SAMPLE_ACCOUNTS: Final = 8


def group_key(notification_id: int, kind: str, status_id: int | None, grouped: Iterable[str] = GROUPED_TYPES) -> str:
    window = ms_from_id(notification_id) // _SPAN_MS
    if kind in grouped and kind in ("favourite", "reblog") and status_id is not None:
        return f"{kind}-{status_id}-{window}"
    if kind in grouped and kind == "follow":
        return f"follow-{window}"
    return f"ungrouped-{notification_id}"


_KEY = re.compile(r"(?:(favourite|reblog)-([0-9]{1,19})|(follow))-([0-9]{1,12})|ungrouped-([0-9]{1,19})")


@dataclass(frozen=True)
class GroupSpan:
    """The notifications a group key can name: of a ``kind`` (about a status, for favourites and reblogs), with
    ids from ``min_id`` (inclusive) to ``max_id`` (exclusive), the group's window."""

    kind: str
    status_id: int | None
    min_id: int
    max_id: int


def parse_group_key(key: str) -> int | GroupSpan | None:
    """An ungrouped key's notification id, a grouped key's span, or None for what is no group key."""
    found = _KEY.fullmatch(key)
    if found is None:
        return None
    kind, status_id, follow, window, alone = found.groups()
    if alone is not None:
        return int(alone)
    start = int(window) * _SPAN_MS
    return GroupSpan(kind or follow, int(status_id) if status_id else None, id_from_ms(start),
                     id_from_ms(start + _SPAN_MS))


def notices_of(page: bytes) -> list[dict[str, Any]]:
    return _decode(page)


def key_of(notice: dict[str, Any], grouped: Iterable[str] = GROUPED_TYPES) -> str:
    """A rendered Notification's group key (as ``group_key`` makes it)."""
    status = notice.get("status")
    return group_key(int(notice["id"]), notice["type"], int(status["id"]) if status else None, grouped)


def encode(value: Any) -> bytes:
    return _encode(value)


_decode = msgspec.json.Decoder(list[dict[str, Any]]).decode
_encode = msgspec.json.Encoder().encode


@dataclass
class GroupedPage:
    """A page of groups, before its counts are settled: ``uncounted`` names the groups whose span reaches past the
    window read (newer than its cursor, older than its oldest notification), whose whole count the page cannot
    know; ``body`` takes their counts."""

    groups: dict[str, dict[str, Any]]
    accounts: dict[str, Any]
    statuses: dict[str, Any]
    next_max_id: str | None
    prev_min_id: str | None
    uncounted: list[str]

    def body(self, counts: Mapping[str, int] | None = None) -> bytes:
        """``GroupedNotificationsResults``; a group counted (``counts``) never counts fewer than the page shows of
        it (a notification dismissed between the two reads)."""
        groups = list(self.groups.values())
        if counts:
            groups = [{**group, "notifications_count": max(counts[key], group["notifications_count"])}
                      if (key := group["group_key"]) in counts else group for group in groups]
        return _encode({"accounts": list(self.accounts.values()), "statuses": list(self.statuses.values()),
                        "notification_groups": groups})


def grouped_page(window: bytes, limit: int, more: bool, grouped: Iterable[str] = GROUPED_TYPES,
                 below: int | None = None, bounded: bool = False) -> GroupedPage:
    """A window of notifications (Notification JSON, newest first; ``more``: older ones exist beyond it) as a page
    of ``limit`` groups at most, with the next page's ``max_id`` and the previous page's ``min_id`` (None where
    there is none). The window was read below ``below`` (the request's ``max_id``), and ``bounded`` below too (a
    ``since_id`` or ``min_id``): a group's span past either bound is ``uncounted``."""
    kinds = frozenset(grouped)
    notices = _decode(window)
    keys = [key_of(n, kinds) for n in notices]
    in_window = Counter(keys)
    oldest = int(notices[-1]["id"]) if notices else None
    chosen = list(dict.fromkeys(keys))[:limit]
    next_max_id = notices[-1]["id"] if more and notices else None
    if len(chosen) == limit and (more or len(set(keys)) > limit):
        boundary = keys.index(chosen[-1])  # the newest notification of the last group shown
        next_max_id = notices[boundary]["id"]
        notices, keys = notices[:boundary + 1], keys[:boundary + 1]
        wanted = set(chosen)
        kept = [(n, k) for n, k in zip(notices, keys, strict=True) if k in wanted]
    else:
        kept = list(zip(notices, keys, strict=True))
    groups: dict[str, dict[str, Any]] = {}
    accounts: dict[str, Any] = {}
    statuses: dict[str, Any] = {}
    for notice, key in kept:
        status, account = notice.get("status"), notice["account"]
        group = groups.get(key)
        if group is None:  # the newest of its group on the page
            group = groups[key] = {
                "group_key": key, "notifications_count": 0, "type": notice["type"],
                "most_recent_notification_id": notice["id"], "page_min_id": notice["id"],
                "page_max_id": notice["id"], "latest_page_notification_at": notice["created_at"],
                "sample_account_ids": [],
            }
            if status:
                group["status_id"] = status["id"]
                statuses.setdefault(status["id"], status)
            if "report" in notice:  # an ``admin.report``'s, in the group as Mastodon's NotificationGroup has it
                group["report"] = notice["report"]
            if "moderation_warning" in notice:  # likewise a ``moderation_warning``'s
                group["moderation_warning"] = notice["moderation_warning"]
        group["notifications_count"] += 1
        group["page_min_id"] = notice["id"]
        if len(group["sample_account_ids"]) < SAMPLE_ACCOUNTS and account["id"] not in group["sample_account_ids"]:
            group["sample_account_ids"].append(account["id"])
            accounts.setdefault(account["id"], account)
    uncounted = []
    for key, group in groups.items():
        span = parse_group_key(key)
        if not isinstance(span, GroupSpan):
            continue
        # The window holds the whole span when nothing of it lies above the cursor or below what was read.
        whole = ((below is None or span.max_id <= below) and not bounded
                 and (not more or (oldest is not None and span.min_id > oldest)))
        if whole:
            group["notifications_count"] = in_window[key]  # those past the page's last group too
        else:
            uncounted.append(key)
    return GroupedPage(groups, accounts, statuses, next_max_id, kept[0][0]["id"] if kept else None, uncounted)

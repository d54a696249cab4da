"""The audit log's pure parts (kicau/audit_log.py): an entry's Mastodon shape, its partition, and the ids of entries
made where no snowflake worker is claimed."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from kicau.audit_log import ActionLog, entity, month_of, unclaimed_id
from kicau.ids import id_from_ms, ms_from_id

ACTOR = {"id": "7", "username": "mod"}
TARGET = {"id": "9", "username": "spammer"}


def test_an_entry_is_mastodons_admin_action_log() -> None:
    made = id_from_ms(int(datetime(2026, 12, 7, 18, 0, tzinfo=UTC).timestamp() * 1000))
    entry = ActionLog(made, 7, "suspend", "account", "9", "spammer", 9)
    assert entity(entry, {7: ACTOR, 9: TARGET}) == {
        "id": str(made), "account": ACTOR, "action_type": "suspend_account", "target_type": "account",
        "target_id": "9", "created_at": "2026-12-07T18:00:00.000Z", "updated_at": "2026-12-07T18:00:00.000Z",
        "human_identifier": "spammer", "link": None, "target_account": TARGET}
    # A block is shown as it was, under its own type's name; an account no longer there is null.
    block = {"id": "3", "ip": "203.0.113.7/32"}
    lifted = entity(ActionLog(made, 8, "destroy", "ip_block", "3", "203.0.113.7/32", target=block), {})
    assert (lifted["account"], lifted["ip_block"], "target_account" in lifted) == (None, block, False)
    # A target type whose entity is not kept shows none even if one was given.
    assert "tag" not in entity(ActionLog(made, 8, "reject", "tag", "spam", "spam", target={"name": "spam"}), {})


def test_entries_are_kept_by_month() -> None:
    assert month_of(datetime(1970, 1, 31, tzinfo=UTC)) == 0
    assert month_of(datetime(2026, 12, 7, tzinfo=UTC)) == 56 * 12 + 11
    assert month_of(datetime(2027, 1, 1, tzinfo=UTC)) == month_of(datetime(2026, 12, 31, tzinfo=UTC)) + 1


def test_an_unclaimed_id_is_this_milliseconds() -> None:
    before = int(time.time() * 1000)
    made = {unclaimed_id() for _ in range(100)}
    after = int(time.time() * 1000)
    assert all(before <= ms_from_id(i) <= after for i in made) and len(made) > 90

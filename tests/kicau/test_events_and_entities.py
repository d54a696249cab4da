"""Event round trips and entity shapes: the contracts services share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from kicau.account_cards import with_statuses_count_moved, without_suspended
from kicau.entities import (
    account_entity,
    compose_status,
    dumps,
    is_limited_card,
    is_sensitized_card,
    is_suspended_card,
    iso_time,
    shown_sensitive,
    status_fragment,
    text_to_html,
)
from kicau.events import FollowCreated, StatusCreated, StatusDeleted, decode_event, encode_event, event_key


def test_events_round_trip_with_their_type_tag() -> None:
    for event in (
        StatusCreated(status_id=1, account_id=2, status_json="{}"),
        StatusDeleted(status_id=1, account_id=2),
        FollowCreated(follower_id=3, followee_id=4),
    ):
        raw = encode_event(event)
        assert decode_event(raw) == event
        assert msgspec.json.decode(raw)["schema_version"] == 1


def test_events_of_one_author_share_a_key() -> None:
    assert event_key(StatusCreated(status_id=1, account_id=7, status_json="{}")) == event_key(
        StatusDeleted(status_id=1, account_id=7)
    )


def test_malformed_events_are_rejected() -> None:
    for raw in (b"", b"{", b'{"type": "status.created"}', b'{"type": "nope", "status_id": 1}'):
        with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
            decode_event(raw)


def test_status_fragment_composes_into_a_full_status() -> None:
    row = {"id": 42, "account_id": 7, "text": "a <b> & c\nd", "created_at": datetime(2026, 1, 2, tzinfo=UTC)}
    fragment = status_fragment(row, username="ann", public_url="http://x")
    status = msgspec.json.decode(compose_status(fragment, b'{"id":"7","username":"ann"}'))
    assert status["account"] == {"id": "7", "username": "ann"}
    assert status["id"] == "42" and status["created_at"] == "2026-01-02T00:00:00.000Z"
    assert status["content"] == "<p>a &lt;b&gt; &amp; c<br />d</p>"
    assert "scheduled_at" not in status
    assert status["media_attachments"] == [] and status["reblog"] is None


def test_text_to_html_escapes_everything() -> None:
    assert text_to_html('<script>alert("x")</script>') == "<p>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</p>"


@pytest.mark.parametrize(("moment", "written"), [
    (datetime(2026, 12, 2, 15, 4, 5, 678_901, tzinfo=UTC), "2026-12-02T15:04:05.678Z"),
    (datetime(2026, 12, 2, 15, 4, 5, 999_999), "2026-12-02T15:04:05.999Z"),  # naive: taken as UTC
    (datetime(2026, 12, 3, 1, 0, 0, 1_000, tzinfo=timezone(timedelta(hours=7))), "2026-12-02T18:00:00.001Z"),
    (datetime(5, 1, 2, 3, 4, 5, tzinfo=UTC), "0005-01-02T03:04:05.000Z"),  # strftime wrote "5-01-02..."
])
def test_times_are_written_as_mastodon_writes_them(moment: datetime, written: str) -> None:
    assert iso_time(moment) == written
    assert iso_time(None) is None


def test_a_suspended_account_shows_blank_and_its_card_says_so_at_its_end() -> None:
    row = {"id": 7, "username": "spam", "display_name": 'Spam ,"suspended":true}', "note": "buy now", "locked": True,
           "bot": True, "avatar": "/system/a.png", "header": "/system/h.png", "fields": '[["shop","cheap"]]',
           "created_at": datetime(2026, 12, 1, tzinfo=UTC)}
    roles = [{"id": "1", "name": "Moderator", "color": ""}]
    shown = account_entity(row, public_url="https://k.example", statuses_count=3, roles=roles)
    card = dumps(shown)
    assert "suspended" not in shown and not is_suspended_card(card)  # a display name cannot fake the end
    assert shown["display_name"].startswith("Spam") and shown["avatar"] == "https://k.example/system/a.png"
    suspended = account_entity({**row, "suspended_at": datetime(2026, 12, 7, tzinfo=UTC)},
                               public_url="https://k.example", statuses_count=3, roles=roles)
    assert suspended == {**shown, "display_name": "", "note": "", "locked": False, "bot": False, "discoverable": False,
                         "fields": [], "roles": [], "avatar": "https://k.example/avatars/original/missing.png",
                         "avatar_static": "https://k.example/avatars/original/missing.png",
                         "header": "https://k.example/headers/original/missing.png",
                         "header_static": "https://k.example/headers/original/missing.png", "suspended": True}
    suspended_card = dumps(suspended)
    assert is_suspended_card(suspended_card)
    # A count moved in place keeps the card a suspended one's.
    assert is_suspended_card(with_statuses_count_moved(suspended_card, +1))
    assert without_suspended({1: card, 2: suspended_card}) == {1: card}


def test_a_limited_account_says_so_and_keeps_its_profile() -> None:
    row = {"id": 8, "username": "loud", "display_name": "Loud", "note": "hi", "silenced_at": datetime(2026, 12, 7)}
    card = dumps(account_entity(row, public_url="https://k.example"))
    entity = msgspec.json.decode(card)
    assert (entity["limited"], entity["display_name"], "suspended" in entity) == (True, "Loud", False)
    assert is_limited_card(card) and not is_suspended_card(card)
    assert not is_limited_card(dumps(account_entity({**row, "silenced_at": None}, public_url="https://k.example")))
    both = dumps(account_entity({**row, "suspended_at": datetime(2026, 12, 7)}, public_url="https://k.example"))
    assert is_suspended_card(both) and msgspec.json.decode(both)["limited"] is True


def test_a_sensitized_accounts_card_says_so_before_its_other_marks() -> None:
    at = datetime(2026, 12, 8)
    row = {"id": 9, "username": "pics", "display_name": '"sensitized":true}', "sensitized_at": at}
    card = dumps(account_entity(row, public_url="https://k.example"))
    assert msgspec.json.decode(card)["sensitized"] is True and is_sensitized_card(card)
    limited = dumps(account_entity({**row, "silenced_at": at}, public_url="https://k.example"))
    assert is_sensitized_card(limited) and is_limited_card(limited)
    # A suspended card shows nothing of the profile, the mark neither; a display name cannot fake the end.
    suspended = dumps(account_entity({**row, "suspended_at": at}, public_url="https://k.example"))
    assert is_suspended_card(suspended) and not is_sensitized_card(suspended)
    assert "sensitized" not in msgspec.json.decode(suspended)
    plain = dumps(account_entity({**row, "sensitized_at": None}, public_url="https://k.example"))
    assert not is_sensitized_card(plain) and not is_sensitized_card(with_statuses_count_moved(plain, +1))
    assert is_sensitized_card(with_statuses_count_moved(card, +1))


def test_shown_sensitive_turns_the_statuses_own_flag_alone() -> None:
    row = {"id": 42, "account_id": 7, "text": '"sensitive":false', "created_at": datetime(2026, 1, 2, tzinfo=UTC)}
    fragment = status_fragment(row, username="ann", public_url="http://x")
    status = msgspec.json.decode(compose_status(shown_sensitive(fragment), b'{"id":"7"}'))
    assert status["sensitive"] is True and status["content"] == '<p>&quot;sensitive&quot;:false</p>'
    already = status_fragment({**row, "sensitive": True}, username="ann", public_url="http://x")
    assert shown_sensitive(already) == already

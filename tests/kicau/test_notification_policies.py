"""The policy's rules (kicau/notification_policies.py), apart from any table: which notices a policy could hold
back, the verdict for each kind of sender, the requests held notices make. The running system's behaviour is in
tests/timeline/test_notification_policies.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kicau.ids import id_from_ms
from kicau.notification_policies import (
    DEFAULT,
    MEANINGFUL,
    Facts,
    Policy,
    needs_facts,
    private_unanswered,
    requests_of,
    split,
    summary_counts,
    v1_entity,
    verdict,
)
from kicau.notifications import FAVOURITE, FOLLOW, MENTION, POLL, QUOTE, QUOTED_UPDATE, STATUS, Notification

NOW = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)
READER = id_from_ms(int((NOW - timedelta(days=400)).timestamp() * 1000))
OLD_SENDER = id_from_ms(int((NOW - timedelta(days=300)).timestamp() * 1000))
NEW_SENDER = id_from_ms(int((NOW - timedelta(days=2)).timestamp() * 1000))
STRANGER = Facts(follows_sender=False, followed_since=None)
FRIEND = Facts(follows_sender=True, followed_since=NOW - timedelta(days=100))


def notice(kind: str, sender: int = OLD_SENDER, status_id: int | None = 7, notice_id: int = 1) -> Notification:
    return Notification(READER, notice_id, kind, sender, status_id)


def test_mastodon_defaults_hold_back_private_mentions_from_strangers_alone() -> None:
    private = Facts(follows_sender=False, followed_since=None, private_unanswered=True)
    assert verdict(DEFAULT, notice(MENTION), private, permitted=False, now=NOW) == "filter"
    assert verdict(DEFAULT, notice(MENTION), STRANGER, permitted=False, now=NOW) == "accept"  # not private
    assert verdict(DEFAULT, notice(MENTION), Facts(True, None, True), permitted=False, now=NOW) == "accept"
    assert verdict(DEFAULT, notice(MENTION), private, permitted=True, now=NOW) == "accept"  # an accepted sender
    # Without a policy of its own, only a private mention needs the relations read.
    assert needs_facts(DEFAULT, notice(MENTION), private=True)
    assert not needs_facts(DEFAULT, notice(MENTION), private=False)
    assert not needs_facts(DEFAULT, notice(FAVOURITE), private=False)


def test_each_kind_of_sender_and_drop_over_filter() -> None:
    strict = Policy(for_not_following="drop", for_not_followers="filter", for_new_accounts="filter")
    assert verdict(strict, notice(FAVOURITE), STRANGER, permitted=False, now=NOW) == "drop"
    # Followed, but not a follower: filtered; a follower of less than three days is not one yet.
    assert verdict(strict, notice(FAVOURITE), Facts(True, None), permitted=False, now=NOW) == "filter"
    recent = Facts(True, NOW - timedelta(days=1))
    assert verdict(strict, notice(FOLLOW, status_id=None), recent, permitted=False, now=NOW) == "filter"
    assert verdict(strict, notice(FAVOURITE), FRIEND, permitted=False, now=NOW) == "accept"
    # A new account is one made less than 30 days ago (its id's time) that the reader does not follow.
    young = Policy(for_new_accounts="filter")
    assert verdict(young, notice(FAVOURITE, NEW_SENDER), STRANGER, permitted=False, now=NOW) == "filter"
    assert verdict(young, notice(FAVOURITE, NEW_SENDER), Facts(True, None), permitted=False, now=NOW) == "accept"
    assert verdict(young, notice(FAVOURITE, OLD_SENDER), STRANGER, permitted=False, now=NOW) == "accept"


def test_a_limited_sender_is_held_back_from_those_that_do_not_follow_it() -> None:
    limited = Facts(follows_sender=False, followed_since=None, sender_limited=True)
    assert verdict(DEFAULT, notice(MENTION), limited, permitted=False, now=NOW) == "filter"
    assert verdict(DEFAULT, notice(FOLLOW, status_id=None), limited, permitted=False, now=NOW) == "filter"
    assert verdict(DEFAULT, notice(MENTION), Facts(True, None, sender_limited=True), permitted=False,
                   now=NOW) == "accept"  # the reader follows it
    assert verdict(DEFAULT, notice(MENTION), limited, permitted=True, now=NOW) == "accept"  # an accepted sender
    assert verdict(Policy(for_limited_accounts="drop"), notice(MENTION), limited, permitted=False, now=NOW) == "drop"
    assert verdict(Policy(for_limited_accounts="accept"), notice(MENTION), limited, permitted=False,
                   now=NOW) == "accept"
    # The relations are read for a limited sender's notices only, unless the policy accepts them anyway.
    assert needs_facts(DEFAULT, notice(FAVOURITE), private=False, limited=True)
    assert not needs_facts(Policy(for_limited_accounts="accept"), notice(FAVOURITE), private=False, limited=True)
    assert not needs_facts(DEFAULT, notice(POLL), private=False, limited=True)


def test_kinds_never_filtered_and_oneself() -> None:
    everything = Policy("drop", "drop", "drop", "drop", "drop")
    for kind in (POLL, STATUS):
        assert not needs_facts(everything, notice(kind), private=False)
        assert verdict(everything, notice(kind), STRANGER, permitted=False, now=NOW) == "accept"
    own = Notification(READER, 1, FAVOURITE, READER, 7)
    assert verdict(everything, own, STRANGER, permitted=False, now=NOW) == "accept"


def test_a_private_mention_answers_its_reader_when_it_replies_to_it() -> None:
    private = {7: READER, 8: 0, 9: OLD_SENDER}  # direct statuses of the batch: the account each replies to
    assert not private_unanswered(notice(MENTION, status_id=7), private)
    assert private_unanswered(notice(MENTION, status_id=8), private)
    assert private_unanswered(notice(MENTION, status_id=9), private)
    assert not private_unanswered(notice(MENTION, status_id=10), private)  # not direct
    assert not private_unanswered(notice(FAVOURITE, status_id=8), private)


def test_requests_are_senders_of_held_mentions_and_quotes() -> None:
    """As Mastodon 4.5: a sender's held mentions and quotes make its request and its count; its other held
    notifications neither (they go with the request all the same)."""
    held = [notice(MENTION, OLD_SENDER, 70, 30), notice(FAVOURITE, OLD_SENDER, 71, 20),
            notice(MENTION, OLD_SENDER, 72, 10), notice(FOLLOW, NEW_SENDER, None, 25)]
    [request] = requests_of(held)
    assert (request.from_account_id, request.created_id, request.updated_id, request.last_status_id,
            request.count) == (OLD_SENDER, 10, 30, 70, 2)
    assert split([held[0], held[1], held[3]], {0: "filter", 1: "drop"}) == ([held[3]], [held[0]])
    quoted = [*held, notice(QUOTE, NEW_SENDER, 80, 40)]
    assert [(r.from_account_id, r.last_status_id, r.count) for r in requests_of(quoted)] == [
        (NEW_SENDER, 80, 1), (OLD_SENDER, 70, 2)]
    assert summary_counts(requests_of(quoted)) == (2, 3)


def test_counts_stop_where_mastodon_stops_counting() -> None:
    many = [notice(MENTION, OLD_SENDER, 1000 + n, 1000 + n) for n in range(MEANINGFUL + 5)]
    assert [r.count for r in requests_of(many)] == [MEANINGFUL]
    senders = [notice(MENTION, sender, 7, sender) for sender in range(1, MEANINGFUL + 8)]
    assert summary_counts(requests_of(senders)) == (MEANINGFUL, MEANINGFUL)


def test_quotes_are_filtered_edits_of_quoted_statuses_never() -> None:
    policy = Policy(for_not_following="filter")
    assert verdict(policy, notice(QUOTE), STRANGER, permitted=False, now=NOW) == "filter"
    assert verdict(policy, notice(QUOTED_UPDATE), STRANGER, permitted=False, now=NOW) == "accept"
    assert needs_facts(policy, notice(QUOTE), private=False)
    assert not needs_facts(policy, notice(QUOTED_UPDATE), private=False)


def test_v1_shows_a_drop_as_filtered() -> None:
    assert v1_entity(Policy(for_not_following="drop"), 1, 2) == {
        "filter_not_following": True, "filter_not_followers": False, "filter_new_accounts": False,
        "filter_private_mentions": True, "summary": {"pending_requests_count": 1, "pending_notifications_count": 2}}

"""The pure parts of kicau/conversations.py: a conversation's id, who a batch's direct statuses add to or take
from which conversation, and the entity."""

from __future__ import annotations

import json

from kicau.conversations import Conversation, conversation_id, joined, left, rendered, shown_accounts, thread_root
from kicau.events import StatusCreated, StatusDeleted
from kicau.notifications import FOLLOW, MENTION, Notification


def test_a_conversation_id_names_a_thread_and_its_accounts() -> None:
    one = conversation_id(100, [3, 1, 2])
    assert one == conversation_id(100, [1, 2, 3, 3])  # the same set, in any order
    assert one != conversation_id(100, [1, 2]) and one != conversation_id(101, [1, 2, 3])
    assert 0 < one < 1 << 48  # exact in a JavaScript number
    assert thread_root({"id": 7, "conversation_id": None}) == 7 and thread_root({"id": 7, "conversation_id": 5}) == 5


def test_direct_statuses_join_their_authors_and_notified_accounts_conversations() -> None:
    direct = StatusCreated(status_id=50, account_id=1, status_json="{}", visibility="direct", mentions=[2, 3, 4],
                           conversation_id=40)
    public = StatusCreated(status_id=51, account_id=1, status_json="{}", mentions=[2])
    notices = [Notification(2, 50, MENTION, 1, 50), Notification(3, 50, MENTION, 1, 50),
               Notification(2, 51, MENTION, 1, 51), Notification(4, 9, FOLLOW, 1)]  # 4 blocks the author: no mention
    changes = joined([direct, public], notices)
    key = conversation_id(40, [1, 2, 3, 4])
    assert [(c.account_id, c.conversation_id, c.root_id, c.participants, c.status_id, c.unread) for c in changes] == [
        (1, key, 40, (2, 3, 4), 50, False),  # read by its author
        (2, key, 40, (1, 3, 4), 50, True),
        (3, key, 40, (1, 2, 4), 50, True),
    ]
    # A status that replies to nothing is its thread's root; alone, its author's conversation shows its author.
    alone = joined([StatusCreated(status_id=60, account_id=5, status_json="{}", visibility="direct")], [])
    assert [(c.account_id, c.root_id, c.participants) for c in alone] == [(5, 60, ())]
    assert shown_accounts(alone[0]) == (5,)


def test_deleted_direct_statuses_leave_every_members_conversation() -> None:
    gone = StatusDeleted(status_id=50, account_id=1, visibility="direct", mentions=[2, 3], conversation_id=40)
    other = StatusDeleted(status_id=52, account_id=1, visibility="private", mentions=[2])
    changes = left([gone, other])
    assert [(c.account_id, c.conversation_id, c.status_id) for c in changes] == [
        (member, conversation_id(40, [1, 2, 3]), 50) for member in (1, 2, 3)]


def test_the_conversation_entity() -> None:
    conversation = Conversation(2, 77, 40, (1, 3), frozenset({50, 55}), unread=True)
    assert conversation.last_status_id == 55
    body = json.loads(rendered(conversation, [b'{"id":"1"}', b'{"id":"3"}'], b'{"id":"55"}'))
    assert body == {"id": "77", "unread": True, "accounts": [{"id": "1"}, {"id": "3"}], "last_status": {"id": "55"}}
    assert json.loads(rendered(conversation, [], None))["last_status"] is None

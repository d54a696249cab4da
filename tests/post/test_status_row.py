"""A created status's row and its place in the author's list, as Cassandra holds them: the values posted, missing
ones read back as null (they are left unset rather than written as null, services/post/store.py), and the list
entry beside the row. And the status as a client reads it once its cached copy is gone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from kicau import keys
from tests.conftest import User


def test_a_status_row_holds_what_was_posted_and_nothing_for_what_was_not(
        http: httpx.Client, make_user: Callable[..., User], stack_cassandra: Any, stack_redis: Any) -> None:
    author = make_user("row")
    plain = http.post("/api/v1/statuses", headers=author.auth, json={"status": "no language, no parent"})
    assert plain.status_code == 200, plain.text
    reply = http.post("/api/v1/statuses", headers=author.auth,
                      json={"status": "a reply", "language": "id", "in_reply_to_id": plain.json()["id"]})
    assert reply.status_code == 200, reply.text
    plain_id, reply_id = int(plain.json()["id"]), int(reply.json()["id"])

    rows = {row["id"]: row for row in stack_cassandra.execute(
        "SELECT id, account_id, text, language, in_reply_to_id, deleted_at FROM statuses WHERE id IN (%s, %s)",
        (plain_id, reply_id))}
    assert rows[plain_id]["language"] is None and rows[plain_id]["in_reply_to_id"] is None
    assert rows[plain_id]["deleted_at"] is None and rows[plain_id]["text"] == "no language, no parent"
    assert rows[reply_id]["language"] == "id" and rows[reply_id]["in_reply_to_id"] == plain_id
    listed = {row["status_id"] for row in stack_cassandra.execute(
        "SELECT status_id FROM statuses_by_account WHERE account_id = %s", (int(author.id),))}
    assert listed == {plain_id, reply_id}

    stack_redis.delete(keys.status_cache(plain_id), keys.status_cache(reply_id))
    read = {s["id"]: s for s in (http.get(f"/api/v1/statuses/{i}").json() for i in (plain_id, reply_id))}
    assert read[str(plain_id)]["language"] is None and read[str(plain_id)]["in_reply_to_id"] is None
    assert read[str(reply_id)]["language"] == "id" and read[str(reply_id)]["in_reply_to_id"] == str(plain_id)
    assert read[str(plain_id)]["in_reply_to_account_id"] is None
    assert read[str(reply_id)]["in_reply_to_account_id"] == author.id


def test_a_reply_names_the_account_it_answers(http: httpx.Client, make_user: Callable[..., User],
                                              stack_cassandra: Any, stack_redis: Any) -> None:
    asker, answerer = make_user("ask"), make_user("answer")
    question = http.post("/api/v1/statuses", headers=asker.auth, json={"status": "anyone?"}).json()
    answer = http.post("/api/v1/statuses", headers=answerer.auth,
                       json={"status": f"@{asker.username} me", "in_reply_to_id": question["id"]})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["in_reply_to_id"], answer.json()["in_reply_to_account_id"]) == (question["id"], asker.id)
    assert question["in_reply_to_account_id"] is None
    (row,) = stack_cassandra.execute("SELECT in_reply_to_account_id FROM statuses WHERE id = %s",
                                     (int(answer.json()["id"]),))
    assert row["in_reply_to_account_id"] == int(asker.id)
    stack_redis.delete(keys.status_cache(int(answer.json()["id"])))  # and as read back from Cassandra
    assert http.get(f"/api/v1/statuses/{answer.json()['id']}").json()["in_reply_to_account_id"] == asker.id

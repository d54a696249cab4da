"""Threads: ``GET /api/v1/statuses/:id/context`` on the running system, and the reply fields it rests on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import User


def reply(http: httpx.Client, author: User, to: str | None, text: str, **fields: Any) -> str:
    answer = http.post("/api/v1/statuses", headers=author.auth,
                       json={"status": text, **({"in_reply_to_id": to} if to else {}), **fields})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def context(http: httpx.Client, status_id: str, reader: User | None) -> tuple[list[str], list[str]]:
    answer = http.get(f"/api/v1/statuses/{status_id}/context", headers=reader.auth if reader else {})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"ancestors", "descendants"}
    return [s["id"] for s in body["ancestors"]], [s["id"] for s in body["descendants"]]


def test_a_threads_context_for_each_reader(http: httpx.Client, make_user: Callable[..., User]) -> None:
    alice, bob, carol, stranger = (make_user("thr_a"), make_user("thr_b"), make_user("thr_c"),
                                   make_user("thr_s"))
    assert http.post(f"/api/v1/accounts/{alice.id}/follow", headers=carol.auth).status_code == 200
    root = reply(http, alice, None, "a question")
    first = reply(http, bob, root, "an answer")
    deeper = reply(http, alice, first, "a follow-up")
    deepest = reply(http, bob, deeper, "and so on")
    second = reply(http, carol, root, "another answer")
    hidden = reply(http, alice, root, "for my followers", visibility="private")

    # Ancestors oldest first; descendants depth first, as Mastodon orders them.
    assert context(http, root, None) == ([], [first, deeper, deepest, second])
    assert context(http, root, carol) == ([], [first, deeper, deepest, second, hidden])  # carol follows alice
    assert context(http, deeper, stranger) == ([root, first], [deepest])
    assert context(http, hidden, alice) == ([root], [])
    answer = http.get(f"/api/v1/statuses/{deeper}/context")
    assert [s["in_reply_to_account_id"] for s in answer.json()["ancestors"]] == [None, alice.id]

    # A deleted reply is left out, and the thread goes on past it.
    assert http.delete(f"/api/v1/statuses/{first}", headers=bob.auth).status_code == 200
    assert context(http, root, None) == ([], [deeper, deepest, second])
    assert context(http, deepest, None) == ([deeper], [])  # above the deleted one, nothing is known from here
    # Missing, or not the reader's to see: 404, as a status by id.
    for status_id, reader in [(first, None), (hidden, stranger), (hidden, None), ("123", None), ("x", None)]:
        missing = http.get(f"/api/v1/statuses/{status_id}/context", headers=reader.auth if reader else {})
        assert (missing.status_code, missing.json()) == (404, {"error": "Record not found"}), status_id

    # A private reply in the middle of a thread: a reader who may not see it sees the thread on both sides of it,
    # as Mastodon walks a thread up past what its reader may not see.
    below = reply(http, carol, hidden, "carol answers the followers-only one")
    assert context(http, below, carol) == ([root, hidden], [])
    assert context(http, below, stranger) == ([root], [])
    assert context(http, below, None) == ([root], [])

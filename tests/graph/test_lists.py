"""Lists against the running stack (kicau/lists.py): making, changing and deleting them (``/api/v1/lists``), their
members (``/api/v1/lists/:id/accounts``, followed accounts only, paged by account id with Mastodon's cursors),
``/api/v1/accounts/:id/lists``; an unfollow or a block taking the followee out of the follower's lists; lists being
their owner's alone; bad input answered 4xx with nothing written."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from cassandra import ConsistencyLevel

from kicau.lists import MAX_LISTS, ListStore
from tests.conftest import User, narrow_token


def make_list(http: httpx.Client, owner: User, title: str = "Friends", **settings: Any) -> dict[str, Any]:
    answer = http.post("/api/v1/lists", headers=owner.auth, json={"title": title, **settings})
    assert answer.status_code == 200, answer.text
    made: dict[str, Any] = answer.json()
    return made


def follow(http: httpx.Client, follower: User, *followees: User) -> None:
    for followee in followees:
        answer = http.post(f"/api/v1/accounts/{followee.id}/follow", headers=follower.auth)
        assert answer.status_code == 200, answer.text


def add(http: httpx.Client, owner: User, list_id: str, *members: User) -> httpx.Response:
    return http.post(f"/api/v1/lists/{list_id}/accounts", headers=owner.auth,
                     data={"account_ids[]": [m.id for m in members]})


def member_ids(http: httpx.Client, owner: User, list_id: str, query: str = "") -> list[str]:
    answer = http.get(f"/api/v1/lists/{list_id}/accounts{query}", headers=owner.auth)
    assert answer.status_code == 200, answer.text
    return [account["id"] for account in answer.json()]


def lists_holding(http: httpx.Client, owner: User, member: User) -> list[str]:
    answer = http.get(f"/api/v1/accounts/{member.id}/lists", headers=owner.auth)
    assert answer.status_code == 200, answer.text
    return [found["id"] for found in answer.json()]


def test_lists_are_made_changed_listed_and_deleted(http: httpx.Client, make_user: Callable[..., User]) -> None:
    owner, other = make_user("ls_o"), make_user("ls_x")
    made = make_list(http, owner, "Friends")
    assert set(made) == {"id", "title", "replies_policy", "exclusive"}
    assert (made["title"], made["replies_policy"], made["exclusive"]) == ("Friends", "list", False)
    second = make_list(http, owner, "Work", replies_policy="none", exclusive=True)
    assert (second["replies_policy"], second["exclusive"]) == ("none", True)
    # A form's words, as Mastodon.py sends them.
    third = http.post("/api/v1/lists", headers=owner.auth,
                      data={"title": "  Art ", "replies_policy": "followed", "exclusive": "false"}).json()
    assert (third["title"], third["replies_policy"], third["exclusive"]) == ("  Art ", "followed", False)

    listed = http.get("/api/v1/lists", headers=owner.auth).json()
    assert [found["id"] for found in listed] == [made["id"], second["id"], third["id"]]  # in the order made
    assert http.get(f"/api/v1/lists/{made['id']}", headers=owner.auth).json() == made

    # Changed: only what is given.
    changed = http.put(f"/api/v1/lists/{made['id']}", headers=owner.auth, json={"title": "Close friends"}).json()
    assert changed == {**made, "title": "Close friends"}
    changed = http.put(f"/api/v1/lists/{made['id']}", headers=owner.auth,
                       data={"exclusive": "true", "replies_policy": "followed"}).json()
    assert changed == {**made, "title": "Close friends", "exclusive": True, "replies_policy": "followed"}
    assert http.get(f"/api/v1/lists/{made['id']}", headers=owner.auth).json() == changed

    # Someone else's lists are not there for another account.
    for method in ("GET", "PUT", "DELETE"):
        answer = http.request(method, f"/api/v1/lists/{made['id']}", headers=other.auth, json={"title": "Mine"})
        assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), answer.text
    assert http.get("/api/v1/lists", headers=other.auth).json() == []

    # Deleted: gone, and again a 404.
    answer = http.delete(f"/api/v1/lists/{second['id']}", headers=owner.auth)
    assert (answer.status_code, answer.json()) == (200, {}), answer.text
    assert http.delete(f"/api/v1/lists/{second['id']}", headers=owner.auth).status_code == 404
    assert http.get(f"/api/v1/lists/{second['id']}", headers=owner.auth).status_code == 404
    assert [found["id"] for found in http.get("/api/v1/lists", headers=owner.auth).json()] == [made["id"],
                                                                                                 third["id"]]


def test_members_are_followed_accounts_paged_and_leave_with_an_unfollow_or_a_block(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    owner, first, second, third, stranger = (make_user("lm_o"), make_user("lm_1"), make_user("lm_2"),
                                             make_user("lm_3"), make_user("lm_s"))
    friends, work = make_list(http, owner, "Friends")["id"], make_list(http, owner, "Work")["id"]

    # Only accounts the owner follows; nothing is added unless all can be.
    follow(http, owner, first, second, third)
    answer = add(http, owner, friends, first, stranger)
    assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), answer.text
    assert member_ids(http, owner, friends) == []
    answer = add(http, owner, friends, first, second, third)
    assert (answer.status_code, answer.json()) == (200, {}), answer.text
    answer = add(http, owner, friends, second)
    assert (answer.status_code, answer.json()) == (422, {"error": "Validation failed: Account has already been taken"})
    assert add(http, owner, work, first).status_code == 200

    # Highest account id first; Mastodon's cursors are account ids; limit=0 gives every one.
    everyone = sorted((first.id, second.id, third.id), key=int, reverse=True)
    assert member_ids(http, owner, friends) == everyone
    assert member_ids(http, owner, friends, "?limit=0") == everyone
    page = http.get(f"/api/v1/lists/{friends}/accounts?limit=2", headers=owner.auth)
    assert [a["id"] for a in page.json()] == everyone[:2]
    after = re.search(r'<([^>]+)>; rel="next"', page.headers["link"])
    before = re.search(r'<([^>]+)>; rel="prev"', page.headers["link"])
    assert after and before, page.headers["link"]
    assert member_ids(http, owner, friends, after.group(1)[after.group(1).index("?"):]) == everyone[2:]
    assert member_ids(http, owner, friends, before.group(1)[before.group(1).index("?"):]) == []
    assert member_ids(http, owner, friends, f"?min_id={everyone[2]}&limit=1") == [everyone[1]]

    assert sorted(lists_holding(http, owner, first)) == sorted([friends, work])
    assert lists_holding(http, owner, stranger) == []
    assert lists_holding(http, first, owner) == []  # the owner's lists are its own

    # Taken out: by hand (again: nothing changes), by an unfollow, by a block.
    for _ in range(2):
        answer = http.delete(f"/api/v1/lists/{friends}/accounts", headers=owner.auth,
                             params={"account_ids[]": [third.id]})
        assert (answer.status_code, answer.json()) == (200, {}), answer.text
    assert member_ids(http, owner, friends) == sorted((first.id, second.id), key=int, reverse=True)
    assert http.post(f"/api/v1/accounts/{first.id}/unfollow", headers=owner.auth).status_code == 200
    assert member_ids(http, owner, friends) == [second.id]
    assert member_ids(http, owner, work) == []
    assert lists_holding(http, owner, first) == []
    assert http.post(f"/api/v1/accounts/{second.id}/block", headers=owner.auth).status_code == 200
    assert member_ids(http, owner, friends) == []

    # A deleted list's memberships go with it.
    follow(http, owner, third)
    assert add(http, owner, work, third).status_code == 200
    assert http.delete(f"/api/v1/lists/{work}", headers=owner.auth).status_code == 200
    assert lists_holding(http, owner, third) == []


def test_lists_answer_bad_input_with_4xx_and_write_nothing(
    http: httpx.Client, make_user: Callable[..., User], app_credentials: dict[str, Any],
) -> None:
    owner, member = make_user("lb_o"), make_user("lb_m")
    follow(http, owner, member)
    made = make_list(http, owner, "Kept")
    for body, error in (
        ({}, "Validation failed: Title can't be blank"),
        ({"title": "   "}, "Validation failed: Title can't be blank"),
        ({"title": "x" * 257}, "Validation failed: Title is too long (maximum is 256 characters)"),
        ({"title": 5}, "Validation failed: title must be a string"),
        ({"title": "t", "replies_policy": "everyone"}, "Validation failed: Replies policy is not included in the list"),
        ({"title": "t", "exclusive": "perhaps"}, "Validation failed: exclusive must be true or false"),
        ({"title": "t\x00"}, "Validation failed: title must not contain NUL characters"),
    ):
        answer = http.post("/api/v1/lists", headers=owner.auth, json=body)
        assert (answer.status_code, answer.json()) == (422, {"error": error}), (body, answer.text)
        answer = http.put(f"/api/v1/lists/{made['id']}", headers=owner.auth, json=body)
        if body:  # a change names nothing: nothing changes
            assert (answer.status_code, answer.json()) == (422, {"error": error}), (body, answer.text)
    assert http.get("/api/v1/lists", headers=owner.auth).json() == [made]

    answer = http.post("/api/v1/lists", headers={**owner.auth, "Content-Type": "application/json"}, content=b"{")
    assert (answer.status_code, answer.json()) == (400, {"error": "The request body is not valid JSON"})
    answer = http.post("/api/v1/lists", headers={**owner.auth, "Content-Type": "text/plain"}, content=b"title=x")
    assert answer.status_code == 415, answer.text

    # Members: none named, not strings, not ids, more than a request may name.
    cases: list[tuple[dict[str, Any], int]] = [
        ({}, 422), ({"account_ids": []}, 422), ({"account_ids": [True]}, 422), ({"account_ids": ["x"]}, 422),
        ({"account_ids": [{"id": 1}]}, 422), ({"account_ids": [member.id] * 101}, 422),
        ({"account_ids": ["+1"]}, 422), ({"account_ids": [-1]}, 422), ({"account_ids": [""]}, 422),
        ({"account_ids": [1.5]}, 422)]
    for body, status in cases:
        for method in ("POST", "DELETE"):
            answer = http.request(method, f"/api/v1/lists/{made['id']}/accounts", headers=owner.auth, json=body)
            assert answer.status_code == status and "error" in answer.json(), (method, body, answer.text)
    # Ids that name no account (one beyond 63 bits too): none can be added (404), and taking them out changes
    # nothing (as on Mastodon).
    for nobody in ({"account_ids": [str(int(member.id) + 1)]}, {"account_ids": ["9" * 30]}, {"account_ids": 4934.0}):
        answer = http.post(f"/api/v1/lists/{made['id']}/accounts", headers=owner.auth, json=nobody)
        assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), (nobody, answer.text)
        answer = http.request("DELETE", f"/api/v1/lists/{made['id']}/accounts", headers=owner.auth, json=nobody)
        assert (answer.status_code, answer.json()) == (200, {}), (nobody, answer.text)
    assert member_ids(http, owner, made["id"]) == []

    # Records that are not there, cursors that are no ids, and tokens without the lists scopes.
    for path in ("/api/v1/lists/x", "/api/v1/lists/123", "/api/v1/lists/123/accounts", "/api/v1/timelines/list/9"):
        answer = http.get(path, headers=owner.auth)
        assert (answer.status_code, answer.json()) == (404, {"error": "Record not found"}), (path, answer.text)
    for query in ("?max_id=x", "?limit=x", "?min_id=-1"):
        answer = http.get(f"/api/v1/lists/{made['id']}/accounts{query}", headers=owner.auth)
        assert answer.status_code == 400, (query, answer.text)
        answer = http.get(f"/api/v1/timelines/list/{made['id']}{query}", headers=owner.auth)
        assert answer.status_code == 400, (query, answer.text)
    assert http.get("/api/v1/lists").status_code == 401
    statuses_only = narrow_token(http, app_credentials, owner)
    assert http.get("/api/v1/lists", headers=statuses_only).status_code == 403
    assert http.post("/api/v1/lists", headers=statuses_only, json={"title": "no"}).status_code == 403
    readers = narrow_token(http, app_credentials, owner, "read:lists")
    assert http.get("/api/v1/lists", headers=readers).json() == [made]
    assert http.post("/api/v1/lists", headers=readers, json={"title": "no"}).status_code == 403
    writers = narrow_token(http, app_credentials, owner, "write:lists")
    assert http.post(f"/api/v1/lists/{made['id']}/accounts", headers=writers,
                     json={"account_ids": [member.id]}).status_code == 200
    assert member_ids(http, owner, made["id"]) == [member.id]


def test_an_account_holds_at_most_fifty_lists(http: httpx.Client, make_user: Callable[..., User]) -> None:
    owner = make_user("ll_o")
    for number in range(MAX_LISTS):
        make_list(http, owner, f"list {number}")
    answer = http.post("/api/v1/lists", headers=owner.auth, json={"title": "one too many"})
    assert (answer.status_code, answer.json()) == (
        422, {"error": f"Validation failed: You cannot have more than {MAX_LISTS} lists"}), answer.text
    assert len(http.get("/api/v1/lists", headers=owner.auth).json()) == MAX_LISTS


async def test_a_members_copy_from_before_the_replies_policy_takes_its_lists(
    http: httpx.Client, make_user: Callable[..., User], stack_cassandra: Any,
) -> None:
    """A ``member_lists`` row written before it carried the replies policy (migration 0053) reads as its list's own
    policy, not the default: what the fanout sends the list's stream by (kicau/lists.py)."""
    owner, member = make_user("lpo_o"), make_user("lpo_m")
    follow(http, owner, member)
    quiet = make_list(http, owner, "Quiet", replies_policy="none")["id"]
    plain = make_list(http, owner, "Plain")["id"]
    for list_id in (quiet, plain):
        assert add(http, owner, list_id, member).status_code == 200
        stack_cassandra.execute("UPDATE member_lists SET replies_policy = null WHERE member_id = %s AND list_id = %s",
                                (int(member.id), int(list_id)))
    found = await ListStore(stack_cassandra, ConsistencyLevel.LOCAL_ONE).lists_of_member(int(member.id))
    assert {(m.list_id, m.replies_policy) for m in found} == {(int(quiet), "none"), (int(plain), "list")}

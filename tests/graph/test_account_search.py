"""Account search against the running stack (kicau/account_names.py): ``GET /api/v1/accounts/search`` finds
accounts by the start of their username (the one it names first, then in order of name), pages with ``limit``
and ``offset``, keeps to followed accounts with ``following``, leaves out blocks either way (not the account the
query names), and ``/api/v2/search`` finds the same; the index is rebuilt from Cassandra when Redis loses it, and
an entry naming no account is never shown; bad input is a 4xx."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import redis

from kicau import keys
from tests.conftest import User


def register(http: httpx.Client, app_credentials: dict[str, Any], username: str) -> User:
    app_token = http.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": app_credentials["client_id"],
        "client_secret": app_credentials["client_secret"], "scope": "read write follow",
    }).json()["access_token"]
    email, password = f"{username}@example.test", "correct horse battery staple"
    answer = http.post("/api/v1/accounts", headers={"Authorization": f"Bearer {app_token}"}, data={
        "username": username, "email": email, "password": password, "agreement": "true", "locale": "en"})
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    me = http.get("/api/v1/accounts/verify_credentials", headers={"Authorization": f"Bearer {token}"}).json()
    return User(id=me["id"], username=username, email=email, password=password, token=token)


def found(http: httpx.Client, reader: User, query: str) -> list[str]:
    answer = http.get(f"/api/v1/accounts/search?{query}", headers=reader.auth)
    assert answer.status_code == 200, answer.text
    return [account["username"] for account in answer.json()]


def test_accounts_are_found_by_the_start_of_their_username(
    http: httpx.Client, make_user: Callable[..., User], app_credentials: dict[str, Any], stack_redis: redis.Redis,
) -> None:
    base = "as" + uuid.uuid4().hex[:8]
    names = [base, f"{base}_b", f"{base}a", f"{base}ab"]  # in the order a search gives them
    accounts = {name: register(http, app_credentials, name) for name in reversed(names)}
    reader = make_user("as_r")
    assert found(http, reader, f"q={base}") == names
    assert found(http, reader, f"q={base.upper()}") == names  # any case
    assert found(http, reader, f"q=%40{base}") == names  # "@name", as a client completes it
    assert found(http, reader, f"q={base}%40example.test") == names  # "name@domain": the name
    assert found(http, reader, f"q={base}a") == [f"{base}a", f"{base}ab"]
    assert found(http, reader, f"q={base}&limit=2") == names[:2]
    assert found(http, reader, f"q={base}&limit=2&offset=2") == names[2:]
    assert found(http, reader, f"q={base}&offset=4") == []
    assert found(http, reader, f"q=zz{uuid.uuid4().hex[:10]}") == []
    entity = http.get(f"/api/v1/accounts/search?q={base}", headers=reader.auth).json()[0]
    assert (entity["id"], entity["acct"]) == (accounts[base].id, base)
    v2 = http.get(f"/api/v2/search?q={base}&type=accounts", headers=reader.auth).json()
    assert [a["username"] for a in v2["accounts"]] == names

    # Only followed accounts with ``following``; blocks either way leave an account out.
    for name in (f"{base}a", f"{base}ab"):
        assert http.post(f"/api/v1/accounts/{accounts[name].id}/follow", headers=reader.auth).status_code == 200
    assert found(http, reader, f"q={base}&following=true") == [f"{base}a", f"{base}ab"]
    assert http.post(f"/api/v1/accounts/{reader.id}/block", headers=accounts[f"{base}a"].auth).status_code == 200
    assert http.post(f"/api/v1/accounts/{accounts[base].id}/block", headers=reader.auth).status_code == 200
    # The account the query names shows whatever the blocks (as Mastodon's search: toot unblocks by finding it).
    assert found(http, reader, f"q={base}") == [base, f"{base}_b", f"{base}ab"]
    assert found(http, reader, f"q={base}a") == [f"{base}a", f"{base}ab"]
    assert found(http, accounts[f"{base}_b"], f"q={base}") == names  # the others' blocks are theirs

    # An entry that names no account (a registration that failed after it) is never shown; the index, lost, is
    # rebuilt from Cassandra.
    stack_redis.zadd(keys.account_names(), {f"{base}c:12345": 0})
    assert found(http, reader, f"q={base}c") == []
    stack_redis.delete(keys.account_names())
    assert found(http, accounts[f"{base}_b"], f"q={base}") == names
    assert stack_redis.zscore(keys.account_names(), f"{base}ab:{accounts[f'{base}ab'].id}") == 0


def test_account_search_refuses_bad_input(http: httpx.Client, make_user: Callable[..., User]) -> None:
    reader = make_user("as_bad")

    def refused(query: str, code: int, headers: dict[str, str] | None = None) -> None:
        answer = http.get(f"/api/v1/accounts/search?{query}", headers=reader.auth if headers is None else headers)
        assert answer.status_code == code and set(answer.json()) == {"error"}, (query, answer.text)

    refused("q=abc", 401, {})
    refused("q=abc&limit=many", 400)
    refused("q=abc&offset=-1", 400)
    refused("q=abc&offset=x", 400)
    refused("q=abc&following=maybe", 422)
    refused("q=" + "a" * 301, 422)
    refused("q=a%00b", 422)
    assert found(http, reader, "q=") == [] and found(http, reader, "q=%20") == []
    assert found(http, reader, "q=not!a!name") == []
    assert found(http, reader, f"q={reader.username}&resolve=true&limit=500") == [reader.username]


def rename(http: httpx.Client, user: User, display_name: str) -> None:
    answer = http.patch("/api/v1/accounts/update_credentials", headers=user.auth,
                        data={"display_name": display_name})
    assert answer.status_code == 200 and answer.json()["display_name"] == display_name, answer.text


def test_accounts_are_found_by_the_words_of_their_display_name(
    http: httpx.Client, make_user: Callable[..., User], app_credentials: dict[str, Any], stack_redis: redis.Redis,
) -> None:
    word, other = "dn" + uuid.uuid4().hex[:8], "dn" + uuid.uuid4().hex[:8]
    named = register(http, app_credentials, "zz" + uuid.uuid4().hex[:10])
    by_username = register(http, app_credentials, word + "_user")
    blocker, reader = make_user("dn_b"), make_user("dn_r")
    rename(http, named, f"Zoë {word.upper()} Quartz")
    rename(http, blocker, f"{word} the blocker")
    assert http.post(f"/api/v1/accounts/{reader.id}/block", headers=blocker.auth).status_code == 200

    # A word's start, in any case (NFKC, case-folded); every word of the query must begin a word of the name;
    # accounts found by their username come first; a blocker is left out.
    assert found(http, reader, f"q={word}") == [by_username.username, named.username]
    assert found(http, reader, f"q={word[:5].upper()}") == [by_username.username, named.username]
    assert found(http, reader, f"q=ZOË%20{word[:4]}") == [named.username]
    assert found(http, reader, f"q=quartz%20{word}%20zo") == [named.username]
    assert found(http, reader, f"q={word}%20nowhere") == []
    assert found(http, reader, f"q={word}&limit=1&offset=1") == [named.username]
    entity = http.get(f"/api/v1/accounts/search?q=quartz%20{word}", headers=reader.auth).json()[0]
    assert (entity["id"], entity["display_name"]) == (named.id, f"Zoë {word.upper()} Quartz")
    v2 = http.get(f"/api/v2/search?q=zo%C3%AB%20{word}&type=accounts", headers=reader.auth).json()
    assert [a["id"] for a in v2["accounts"]] == [named.id]

    # Renamed: found by the new name's words, no longer by the old's.
    rename(http, named, f"Ana {other}")
    assert found(http, reader, f"q={word}") == [by_username.username]
    assert found(http, reader, f"q=ana%20{other}") == [named.username]
    # An entry left behind (a crash between a rename's steps) is checked against the name; the index, lost, is
    # rebuilt from Cassandra.
    stack_redis.zadd(keys.display_name_words(), {f"{word}:{named.id}": 0})
    assert found(http, reader, f"q={word}") == [by_username.username]
    stack_redis.delete(keys.display_name_words())
    assert found(http, reader, f"q={other}") == [named.username]
    assert stack_redis.zscore(keys.display_name_words(), f"{other}:{named.id}") == 0

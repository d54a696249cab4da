"""PATCH /api/v1/accounts/update_credentials through the public API of the running system: the display name, note
and bot flag change everywhere the account is shown (its profile, verify_credentials, its statuses on another
reader's home timeline, notifications), only the fields given change, Mastodon's limits are 422s, what Kicau has
no place for is refused rather than dropped, and bad input writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import User, eventually
from tests.timeline.test_notifications import follow, notifications


def update(http: httpx.Client, user: User, **fields: Any) -> httpx.Response:
    return http.patch("/api/v1/accounts/update_credentials", headers=user.auth, data=fields)


def test_a_profile_change_shows_everywhere_the_account_is_shown(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    author, reader = make_user("prf_a"), make_user("prf_r")
    follow(http, reader, author)
    status = http.post("/api/v1/statuses", headers=author.auth,
                       json={"status": f"hello @{reader.username}"}).json()["id"]
    eventually(lambda: [s["id"] for s in http.get("/api/v1/timelines/home", headers=reader.auth).json()] == [status])
    eventually(lambda: len(notifications(http, reader)) == 1)

    changed = update(http, author, display_name="Ada L.", note="Counting engines\nand poems", bot="true")
    assert changed.status_code == 200, changed.text
    shown = changed.json()
    assert (shown["display_name"], shown["bot"], shown["source"]["note"]) == ("Ada L.", True,
                                                                               "Counting engines\nand poems")
    assert shown["note"] == "<p>Counting engines<br />and poems</p>"
    # Read back by everyone, wherever the card is spliced in (each reader's copies dropped with the cached card).
    assert http.get(f"/api/v1/accounts/{author.id}").json()["display_name"] == "Ada L."
    assert http.get("/api/v1/accounts/verify_credentials", headers=author.auth).json()["bot"] is True
    home = http.get("/api/v1/timelines/home", headers=reader.auth).json()
    assert home[0]["account"]["display_name"] == "Ada L."
    assert http.get(f"/api/v1/statuses/{status}").json()["account"]["display_name"] == "Ada L."
    assert notifications(http, reader)[0]["account"]["display_name"] == "Ada L."

    # Only the fields given change; JSON works as a form does (toot sends JSON).
    again = http.patch("/api/v1/accounts/update_credentials", headers=author.auth, json={"bot": False})
    assert again.status_code == 200, again.text
    assert (again.json()["display_name"], again.json()["bot"]) == ("Ada L.", False)
    assert update(http, author, display_name="").json()["display_name"] == ""  # cleared, as Mastodon allows
    # What every client's edit-profile screen sends along, unchanged, is taken.
    same = update(http, author, locked="false", discoverable="true", **{"source[privacy]": "public"})
    assert same.status_code == 200, same.text


def test_bad_profile_input_is_a_clear_4xx_and_writes_nothing(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    user = make_user("prf_b")
    before = http.get("/api/v1/accounts/verify_credentials", headers=user.auth).json()
    for fields, code in [
        ({"display_name": "x" * 31}, 422),
        ({"note": "y" * 501}, 422),
        ({"bot": "perhaps"}, 422),
        ({"locked": "perhaps"}, 422),
        ({"discoverable": "false"}, 422),
        ({"source[privacy]": "private"}, 422),
        ({"fields_attributes[0][name]": "site"}, 422),  # no profile fields here
        ({"fields_attributes[0][name]": "", "fields_attributes[0][value]": ""}, 200),  # empty, as clients send
        ({"display_name": "nul\x00"}, 422),
    ]:
        answer = update(http, user, **fields)
        assert answer.status_code == code, (fields, answer.text)
        if code != 200:
            assert set(answer.json()) == {"error"}, answer.text
    answer = http.patch("/api/v1/accounts/update_credentials", headers=user.auth,
                        json={"display_name": 5, "note": "fine"})
    assert answer.status_code == 422 and set(answer.json()) == {"error"}, answer.text
    answer = http.patch("/api/v1/accounts/update_credentials", headers=user.auth,
                        json={"fields_attributes": [{"name": "site", "value": "x"}]})
    assert answer.status_code == 422, answer.text
    assert http.get("/api/v1/accounts/verify_credentials", headers=user.auth).json() == before, "nothing changed"
    assert http.patch("/api/v1/accounts/update_credentials", data={"note": "x"}).status_code == 401

"""Mastodon's profile parameters on ``GET /api/v1/accounts/:id/statuses``: ``exclude_replies`` leaves out replies
to other accounts (a thread of one's own stays), paging past runs of them; ``exclude_reblogs`` leaves out reblogs,
alone or with replies; ``only_media`` keeps statuses with attachments (tests/post/test_media.py), of which these
have none; a ``tagged`` that names no hashtag gets an empty page; ``pinned`` with nothing pinned gets one too."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx

from tests.conftest import User
from tests.timeline.test_threads import reply


def page(http: httpx.Client, account: User, query: str) -> httpx.Response:
    answer = http.get(f"/api/v1/accounts/{account.id}/statuses{query}")
    assert answer.status_code == 200, answer.text
    return answer


def ids(answer: httpx.Response) -> list[str]:
    return [status["id"] for status in answer.json()]


def walk(http: httpx.Client, account: User, query: str) -> list[str]:
    """Every status of the pages that the Link headers lead through, from the first."""
    seen: list[str] = []
    answer = page(http, account, query)
    while answer.json():
        seen += ids(answer)
        found = re.search(r'<([^>]+)>; rel="next"', answer.headers.get("link", ""))
        if not found:
            break
        answer = http.get(found.group(1))
    return seen


def test_a_profile_without_replies_and_with_what_kicau_does_not_have(
    http: httpx.Client, make_user: Callable[..., User],
) -> None:
    author, other = make_user("prf_a"), make_user("prf_o")
    elsewhere = reply(http, other, None, "a status to answer")
    first = reply(http, author, None, "a thread of mine")
    answers = [reply(http, author, elsewhere, f"@{other.username} answer {n}") for n in range(7)]
    own = reply(http, author, first, "and it goes on")
    last = reply(http, author, None, "the newest")
    everything = [last, own, *reversed(answers), first]

    assert ids(page(http, author, "?limit=40")) == everything
    for true in ("true", "1", "True", "yes"):
        assert ids(page(http, author, f"?exclude_replies={true}")) == [last, own, first]
    for false in ("false", "0", "", "off"):
        assert ids(page(http, author, f"?exclude_replies={false}&limit=40")) == everything
    # Paged one at a time, past the run of seven answers between the thread's two statuses.
    assert walk(http, author, "?exclude_replies=true&limit=1") == [last, own, first]
    assert walk(http, author, "?exclude_replies=true&limit=2") == [last, own, first]
    # min_id walks forward: the two just above the oldest.
    assert ids(page(http, author, f"?exclude_replies=true&limit=2&min_id={first}")) == [last, own]

    for query in ("?pinned=true", "?tagged=!!", "?pinned=true&exclude_replies=true"):
        answer = page(http, author, query)
        assert answer.json() == [] and "link" not in answer.headers, query
    # No status of the account's carries #kicau: the page reads them all and keeps none (its cursors go on
    # from where it stopped, as exclude_replies's do). Hashtags: tests/timeline/test_tag_timeline.py.
    assert page(http, author, "?tagged=kicau").json() == []
    assert page(http, author, "?only_media=1").json() == []  # none has attachments
    assert ids(page(http, author, "?pinned=false&only_media=0&exclude_reblogs=true&limit=40")) == everything


def test_a_profile_without_reblogs(http: httpx.Client, make_user: Callable[..., User]) -> None:
    author, other = make_user("prb_a"), make_user("prb_o")
    theirs = reply(http, other, None, "worth sharing")
    mine = reply(http, author, None, "my own")
    shared = [http.post(f"/api/v1/statuses/{status}/reblog", headers=author.auth).json()["id"]
              for status in (theirs, reply(http, other, None, "and this"))]
    answer = reply(http, author, theirs, f"@{other.username} agreed")
    newest = reply(http, author, None, "the newest")
    assert ids(page(http, author, "?limit=40")) == [newest, answer, *reversed(shared), mine]
    assert ids(page(http, author, "?exclude_reblogs=true")) == [newest, answer, mine]
    assert walk(http, author, "?exclude_reblogs=1&limit=1") == [newest, answer, mine]
    assert ids(page(http, author, "?exclude_reblogs=true&exclude_replies=true")) == [newest, mine]
    assert ids(page(http, author, "?exclude_replies=true")) == [newest, *reversed(shared), mine]
    assert ids(page(http, author, "?exclude_reblogs=false&limit=40")) == [newest, answer, *reversed(shared), mine]

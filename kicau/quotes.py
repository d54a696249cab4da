"""Quote posts (Mastodon 4.5): a status that shows another inside it, and who may quote a status.

**Posting a quote** (``quoted_status_id``, services/post/service.py): the quoted status must exist and be one its
quoter may see, and its policy must let the quoter quote it (``may_quote``, Mastodon's automatic approval; Kicau
has no manual approval, so a quote is accepted when it is posted or refused with a 422). A direct status is quoted
by no one, a reblog neither; a followers-only one only by its author, and a quote of it is followers-only at most
(``visibility_of_quote``); a direct quote must mention the quoted status's author. The quoting status's HTML begins
with Mastodon's ``<p class="quote-inline">RE: <link></p>`` (clients that show quotes hide it; others show the link)
unless its text already links the quoted status. A quote carries no poll and no attachments (Mastodon 4.5's rule).

**Who may quote** (``quote_approval_policy``, a status's own, changed by ``PUT /api/v1/statuses/:id/
interaction_policy`` or an edit): ``public`` (anyone who may see it), ``followers`` (its author's followers) or
``nobody`` (its author alone). A followers-only or direct status is always ``nobody``. Accounts have no default of
their own here: a status names its policy, or it is ``public``.

**The record** (migration 0047): the quoting status's row names the quoted status (``quote_of_id``) and whether its
quote stands (``quote_state``: ``accepted``, or ``revoked`` once the quoted status's author took it back); Cassandra's
``quotes`` lists the accepted quotes of each status, newest first (``GET /api/v1/statuses/:id/quotes`` and
``quotes_count``, the fourth count in a cached status's head, kicau/status_tallies.py, moved in place as replies'
counts are). Deleting the quoting status or revoking its quote removes its row there.

**Reading** (kicau/status_cards.py): a status's cached fragment holds its quote as a ShallowQuote
(``{"state":"accepted","quoted_status_id":"…"}``) and its ``quote_approval`` as a reader who is neither its author
nor anonymous sees it. A read renders the quoted status for its reader and puts the whole Quote in its place:
``accepted`` with the status, ``deleted`` (gone since), ``unauthorized`` (the reader may not see it),
``blocked_account`` or ``muted_account`` (the reader hides its author; the status is shown, as Mastodon's); a quoted
status's own quote stays shallow, as Mastodon nests them. ``current_user`` is corrected for the reader where it
differs: the author (who may quote any status of its own but direct ones), a follower under ``followers``, anyone
without an account (``denied``). Stream events carry the fragment as posted: the ShallowQuote, which clients fetch.
A revoke and a change of policy are streamed as ``status.update`` of the status changed, telling no one
(``StatusEdited.notifies``), as Mastodon distributes them. A scheduled status may quote: checked when it is
scheduled and again when it is posted.
"""

from __future__ import annotations

import html
import re
from typing import Any, Final

from cassandra.cluster import Session
from cassandra.query import PreparedStatement

from kicau.clients import execute, write_preparer
from kicau.links import link_html
from kicau.marked_lists import MarkedList
from kicau.visibility import DIRECT, PRIVATE, PUBLIC, UNLISTED

# Who may quote a status (``quote_approval_policy``).
ANYONE: Final = "public"
FOLLOWERS: Final = "followers"
NOBODY: Final = "nobody"
POLICIES: Final = (ANYONE, FOLLOWERS, NOBODY)
# A quote's state: as the quoting status's row keeps it, then as a reader is shown it.
ACCEPTED: Final = "accepted"
REVOKED: Final = "revoked"
DELETED: Final = "deleted"
UNAUTHORIZED: Final = "unauthorized"
BLOCKED_ACCOUNT: Final = "blocked_account"
MUTED_ACCOUNT: Final = "muted_account"

COUNT_QUERY: Final = "SELECT COUNT(*) AS n FROM quotes WHERE status_id = ?"

_SHALLOW: Final = re.compile(rb'"quote":\{"state":"accepted","quoted_status_id":"([0-9]+)"\}')
_AUTOMATIC: Final = b'"current_user":"automatic"'
_DENIED: Final = b'"current_user":"denied"'
# What a fragment's quote_approval says of its policy (kicau.entities.status_fragment writes exactly these).
QUOTABLE_BY_ANYONE: Final = b'"quote_approval":{"automatic":["public"]'
QUOTABLE_BY_FOLLOWERS: Final = b'"quote_approval":{"automatic":["followers"]'


def policy_of(row: dict[str, Any]) -> str:
    """Who may quote the status of this row: its own policy where its visibility allows one, else ``nobody``."""
    if row.get("reblog_of_id") or (row.get("visibility") or PUBLIC) not in (PUBLIC, UNLISTED):
        return NOBODY
    policy = row.get("quote_policy")
    return policy if policy in POLICIES else ANYONE


def approval(policy: str) -> dict[str, Any]:
    """The QuoteApproval of a status with this policy, as a reader who is neither its author nor anonymous sees it
    when not following its author."""
    automatic = [policy] if policy in (ANYONE, FOLLOWERS) else []
    return {"automatic": automatic, "manual": [], "current_user": "automatic" if policy == ANYONE else "denied"}


def may_quote(policy: str, visibility: str, author_id: int, quoter_id: int, follows_author: bool) -> bool:
    """Whether the quoter may quote a status (its ``policy`` as ``policy_of`` reads it) and have the quote accepted:
    Mastodon's automatic approval. Its author may quote any of its own but direct ones."""
    if visibility == DIRECT:
        return False
    if quoter_id == author_id:
        return True
    return policy == ANYONE or (policy == FOLLOWERS and follows_author)


def visibility_of_quote(quoted_visibility: str, asked: str) -> str:
    """A quote of a followers-only status is followers-only at most (or direct, as asked)."""
    return PRIVATE if quoted_visibility == PRIVATE and asked in (PUBLIC, UNLISTED) else asked


def stands(row: dict[str, Any]) -> bool:
    """Whether a status's row holds a quote that stands (accepted: listed among the quoted status's quotes and
    counted in them, its author told of it)."""
    return bool(row.get("quote_of_id")) and (row.get("quote_state") or ACCEPTED) == ACCEPTED


def shallow(row: dict[str, Any]) -> dict[str, str | None] | None:
    """The quote a status's fragment holds, from its row: an accepted one as a ShallowQuote (each read puts the
    Quote its reader sees in its place), a revoked one as the Quote everyone sees; None for no quote."""
    quoted = row.get("quote_of_id")
    if not quoted:
        return None
    state = row.get("quote_state") or ACCEPTED
    return {"state": state, "quoted_status_id": str(quoted)} if state == ACCEPTED else {"state": state,
                                                                                          "quoted_status": None}


def quoted_in(fragment: bytes | memoryview) -> int | None:
    """The status whose accepted quote a cached fragment holds, if it holds one."""
    found = _SHALLOW.search(fragment)
    return int(found.group(1)) if found is not None else None


def entity(state: str, quoted_status: bytes | None = None) -> bytes:
    """Mastodon's Quote: its state and, where it is shown, the quoted status (Status JSON)."""
    return b'{"state":"%s","quoted_status":%s}' % (state.encode(), quoted_status or b"null")


def with_quote(fragment: bytes, quote: bytes) -> bytes:
    """The fragment with its accepted ShallowQuote replaced by the reader's Quote (``entity``)."""
    return _SHALLOW.sub(lambda _: b'"quote":' + quote, fragment, count=1)


def with_current_user(fragment: bytes, allowed: bool) -> bytes:
    """The fragment's ``quote_approval.current_user`` as the reader is to see it: its last, the status's own (a
    quoted or reblogged status spliced in comes before it)."""
    old, new = (_DENIED, _AUTOMATIC) if allowed else (_AUTOMATIC, _DENIED)
    head, found, tail = fragment.rpartition(old)
    return head + new + tail if found else fragment


def inline_link(status_url: str) -> str:
    """Mastodon's paragraph naming the quoted status in the quoting one's HTML, for clients that show no quotes."""
    return f'<p class="quote-inline">RE: {link_html(status_url)}</p>'


_INLINE: Final = re.compile(r'<p class="quote-inline">RE: <a href="([^"]*)"[^>]*>.*?</a></p>')


def kept_inline(old_content: str, new_text: str, new_content: str) -> str:
    """An edited quote's HTML: the paragraph naming the quoted status (``inline_link``) kept from the version
    before, unless the new text links the quoted status itself."""
    found = _INLINE.match(old_content)
    if found is None or html.unescape(found.group(1)) in new_text:
        return new_content
    return found.group(0) + new_content


def links_to(text: str, quoted_url: str, quoted_uri: str) -> bool:
    """Whether a status's text already links the status it quotes (then no ``inline_link``)."""
    return quoted_url in text or quoted_uri in text


class QuoteStore:
    """Cassandra's ``quotes``: the accepted quotes of each status, newest first."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._list = write("INSERT INTO quotes (status_id, quote_id, account_id) VALUES (?, ?, ?)")
        self._unlist = write("DELETE FROM quotes WHERE status_id = ? AND quote_id = ?")
        prepare = session.prepare
        self._of_status = MarkedList.prepare(prepare, "quotes", "status_id", "quote_id", "account_id")
        self._all = prepare("SELECT quote_id, account_id FROM quotes WHERE status_id = ?")
        self._one = prepare("SELECT account_id FROM quotes WHERE status_id = ? AND quote_id = ?")
        # Whom a quoter follows, for a ``followers`` policy (the graph service's table).
        self._follows = prepare("SELECT followee_id FROM following WHERE follower_id = ? AND followee_id = ?")

    def listing(self, status_id: int, quote_id: int, account_id: int) -> tuple[PreparedStatement, tuple[Any, ...]]:
        """The quote's row, as a statement for another store's batch (the quoting status's writes)."""
        return self._list, (status_id, quote_id, account_id)

    def unlisting(self, status_id: int, quote_id: int) -> tuple[PreparedStatement, tuple[Any, ...]]:
        return self._unlist, (status_id, quote_id)

    async def follows(self, follower_id: int, followee_id: int) -> bool:
        return bool(await execute(self._session, self._follows, (follower_id, followee_id)))

    async def lists(self, status_id: int, quote_id: int) -> bool:
        """Whether the status's accepted quotes include this one."""
        return bool(await execute(self._session, self._one, (status_id, quote_id)))

    async def page(self, status_id: int, *, max_id: int | None, since_id: int | None, min_id: int | None,
                   limit: int) -> list[int]:
        """Quoting statuses' ids, newest first, with Mastodon's cursors (kicau/marked_lists.py)."""
        return [quote_id for quote_id, _ in await self._of_status.page(
            self._session, status_id, max_id=max_id, since_id=since_id, min_id=min_id, limit=limit)]

    async def quoters(self, status_id: int) -> list[tuple[int, int]]:
        """(quoting status, its author) of every accepted quote of the status (an edit tells each author)."""
        return [(int(row["quote_id"]), int(row["account_id"]))
                for row in await execute(self._session, self._all, (status_id,))]

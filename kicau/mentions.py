"""Mentions: the local accounts a status names, as ``@username`` or ``@username@<this server>``.

They are found in the text once, when the status is posted, and kept with it (the ``mentions`` column of
``statuses``, the ``mentions`` of its events, the ``mentions`` array of its JSON), because they decide who else
may see a restricted status (kicau/visibility.py):

- a ``direct`` status: its author and the accounts it mentions; it is written into the home timelines and
  streams of the mentioned accounts that follow its author (Mastodon's rule: a home timeline holds only the
  statuses of accounts one follows);
- a ``private`` status: its author, its followers, and the accounts it mentions.

A name that is no account here, or names another server (Kicau does not federate), stays plain text, as in
Mastodon. The pattern is Mastodon's (``Account::MENTION_RE``): an ``@`` not preceded by a word character, ``/``
or ``=`` (so neither ``mail@example.com`` nor a URL's ``/@user`` counts), then a username, then an optional
``@domain``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final, NamedTuple
from urllib.parse import urlsplit

import msgspec
from cassandra.cluster import Session

from kicau.clients import execute

if TYPE_CHECKING:  # kicau.entities renders mentions, and account cards are rendered by kicau.entities
    from kicau.account_cards import AccountCards

MENTION: Final = re.compile(r"(?<![=/\w])@([a-z0-9_]+(?:[a-z0-9_.-]+[a-z0-9_]+)?)(?:@([\w.-]+\w))?", re.IGNORECASE)
# Username -> account id pairs this process keeps (usernames are never reused or renamed here): ~100 bytes each.
MAX_REMEMBERED_USERNAMES: Final = 100_000


class Mention(NamedTuple):
    """A mentioned account, as stored (Cassandra's ``tuple<bigint, text>``) and rendered."""

    account_id: int
    username: str  # as the account spells it, not as the text did


def local_domains(public_url: str) -> frozenset[str]:
    """The domains that name this server in ``@user@domain``: the public URL's host, with and without its port."""
    parts = urlsplit(public_url)
    names = {parts.netloc.lower()}
    if parts.hostname:
        names.add(parts.hostname.lower())
    return frozenset(names)


def local_username(match: re.Match[str], domains: frozenset[str]) -> str | None:
    """The username a match names, in lower case (how accounts are looked up), or None if it is another
    server's."""
    domain = match.group(2)
    if domain is not None and domain.lower() not in domains:
        return None
    return match.group(1).lower()


def named(text: str, domains: frozenset[str]) -> list[str]:
    """The local usernames the text mentions, lower-cased, each once, in the order they first appear."""
    if "@" not in text:
        return []
    found: dict[str, None] = {}
    for match in MENTION.finditer(text):
        username = local_username(match, domains)
        if username is not None:
            found[username] = None
    return list(found)


def entity(mention: Mention, public_url: str) -> dict[str, str]:
    """Mastodon's Status.mentions[] item."""
    return {"id": str(mention.account_id), "username": mention.username, "url": f"{public_url}/@{mention.username}",
            "acct": mention.username}


def link_html(mention: Mention, public_url: str) -> str:
    """How Mastodon writes a mention into a status's HTML content (usernames are ``[A-Za-z0-9_]``: nothing to
    escape)."""
    return (f'<span class="h-card" translate="no"><a href="{public_url}/@{mention.username}" class="u-url mention">'
            f"@<span>{mention.username}</span></a></span>")


class _MentionedId(msgspec.Struct):
    id: str


class _Mentions(msgspec.Struct):
    mentions: list[_MentionedId] = []


_read_mentions = msgspec.json.Decoder(_Mentions).decode


def mentioned_in(fragment: bytes | memoryview) -> set[int]:
    """The account ids a rendered Status JSON mentions. Decoded only for a restricted status read by someone
    other than its author (kicau/status_cards.py): ~2 µs for a 1 KB status, where the fields it does not name are
    skipped unparsed."""
    return {int(m.id) for m in _read_mentions(fragment).mentions}


class MentionResolver:
    """Usernames to accounts: ``accounts_by_username`` in Cassandra (written by the graph service when an account
    is registered), remembered in process; the spelling of each name from the account's cached card."""

    def __init__(self, session: Session, accounts: AccountCards, public_url: str) -> None:
        self._session = session
        self._accounts = accounts
        self._domains = local_domains(public_url)
        self._by_username = session.prepare("SELECT account_id FROM accounts_by_username WHERE username = ?")
        self._ids: dict[str, int] = {}

    async def resolve(self, text: str) -> list[Mention]:
        """The accounts the text mentions, in the order they first appear; names of no account are left out."""
        usernames = named(text, self._domains)
        if not usernames:
            return []
        ids = await self._ids_of(usernames)
        found = [(username, ids[username]) for username in usernames if username in ids]
        cards = await self._accounts.cards({account_id for _, account_id in found})
        mentions = []
        for username, account_id in found:
            card = cards.get(account_id)
            if card is not None:
                spelled = msgspec.json.decode(card, type=dict[str, object]).get("username")
                mentions.append(Mention(account_id, spelled if isinstance(spelled, str) else username))
        return mentions

    async def _ids_of(self, usernames: Sequence[str]) -> dict[str, int]:
        known = {u: self._ids[u] for u in usernames if u in self._ids}
        unknown = [u for u in usernames if u not in known]
        if unknown:
            results = await asyncio.gather(*(execute(self._session, self._by_username, (u,)) for u in unknown))
            for username, rows in zip(unknown, results, strict=True):
                if rows:
                    known[username] = int(rows[0]["account_id"])
                    self._remember(username, known[username])
        return known

    def _remember(self, username: str, account_id: int) -> None:
        if len(self._ids) >= MAX_REMEMBERED_USERNAMES:
            del self._ids[next(iter(self._ids))]  # the oldest entry (dicts keep insertion order)
        self._ids[username] = account_id


def stored(mentions: Iterable[tuple[int, str]] | None) -> list[Mention]:
    """Mentions as a row holds them: tuples from Cassandra (None for none), or ``Mention``s."""
    return [Mention(int(account_id), username) for account_id, username in mentions or ()]

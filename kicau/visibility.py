"""Who may see a status: Mastodon's four visibilities, as the fanout, the timelines and single-status reads all
apply them.

- ``public`` and ``unlisted``: anyone (Kicau has no public timelines, so the two differ in nothing yet).
- ``private`` (followers only): the author, the accounts that follow it, and the accounts the status mentions
  (kicau/mentions.py). It is fanned out as a public status is (only followers receive anything), and left out of
  the author's profile and of ``GET /statuses/:id`` for anyone else, anonymous readers included.
- ``direct``: the author and the accounts it mentions. The fanout writes it into the author's home timeline and
  stream and into those of the mentioned accounts that follow the author (as Mastodon does: a home timeline
  holds the statuses of accounts one follows); the others read it by id or on the author's profile.

Reads apply the rule to a status's ``audience``, a number the status cache keeps beside each status
(kicau/status_cards.py). It is taken once, when a status is cached, from its rendered JSON
(``kicau.entities.status_fragment``) without decoding it: in that JSON every quote inside a string value is
escaped, so ``"visibility":"`` occurs once, as the key. Whom a restricted status mentions is read from its JSON
only when someone other than its author reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from kicau.follow_options import FollowOptions

PUBLIC: Final = "public"
UNLISTED: Final = "unlisted"
PRIVATE: Final = "private"
DIRECT: Final = "direct"
VISIBILITIES: Final = frozenset({PUBLIC, UNLISTED, PRIVATE, DIRECT})

_KEY = b'"visibility":"'


def reaches_followers(visibility: str) -> bool:
    """Whether the fanout writes a status into all its author's followers' timelines and streams (a direct status
    reaches only the followers it mentions)."""
    return visibility != DIRECT


# The four values by their first six bytes, which differ: told apart without decoding the value.
_BY_OPENING = {value.encode()[:6]: value for value in VISIBILITIES}


def of_fragment(fragment: bytes | memoryview, start: int = 0) -> str:
    """The visibility a rendered Status JSON (from byte ``start`` on) carries; ``public`` if it has none.

    Searched from the end: the key follows the content, and the fixed members after it are shorter than most
    contents (on a 1 KB status, 0.36 against 0.57 µs)."""
    raw = bytes(fragment) if isinstance(fragment, memoryview) else fragment
    at = raw.rfind(_KEY, start)
    if at < 0:
        return PUBLIC
    at += len(_KEY)
    known = _BY_OPENING.get(raw[at:at + 6])
    if known is not None and raw[at + len(known):at + len(known) + 1] == b'"':
        return known
    return raw[at:raw.index(b'"', at)].decode()


# Who may see a status, as one small number (kept beside each cached status, kicau/status_cards.py, so a read
# tells without looking into the JSON: a search of it cost ~1.2 µs a status, ~50 µs a home page in Python).
EVERYONE: Final = 0  # public, unlisted (0: a page or-s its statuses' audiences to see whether any is restricted)
FOLLOWERS: Final = 1  # private
AUTHOR: Final = 2  # direct, and any value this code does not know

_AUDIENCES = {PUBLIC: EVERYONE, UNLISTED: EVERYONE, PRIVATE: FOLLOWERS, DIRECT: AUTHOR}


def audience(visibility: str) -> int:
    return _AUDIENCES.get(visibility, AUTHOR)


@dataclass(frozen=True, slots=True)
class Reader:
    """Who is reading: an account, or nobody (``account_id`` None, an anonymous request)."""

    account_id: int | None
    # A home timeline holds the reader's own statuses and its followees' only (an unfollow takes the followee's
    # out): the followers-only statuses in it are the reader's to see, with no follow to check.
    follows_every_author: bool = False
    # Where it reads, for its filters (kicau/filters.py: ``home``, ``public``, ``account``, ``thread``,
    # ``notifications``); "" where filters do not apply.
    context: str = ""
    # Its follows' options (kicau/follow_options.py) for authors whose statuses reach its page at read time (large
    # accounts merged into its home timeline): those the options do not admit are left out.
    followed_options: Mapping[int, FollowOptions] | None = None
    # A moderator reading a report's statuses (services/gateway/routes/admin.py): a suspended author's are shown too,
    # as Mastodon shows them to its staff; every other reader is shown none (kicau/status_cards.py).
    moderating: bool = False

    @classmethod
    def home_of(cls, account_id: int, followed_options: Mapping[int, FollowOptions] | None = None) -> Reader:
        return cls(account_id, follows_every_author=True, context="home", followed_options=followed_options or None)


ANONYMOUS: Final = Reader(None)


def needs_follow_check(audience: int, author: int, reader: Reader) -> bool:
    """Whether the status is visible to the reader only if the reader follows its author."""
    return audience == FOLLOWERS and author != reader.account_id and not reader.follows_every_author \
        and reader.account_id is not None


def needs_mentions(audience: int, author: int, reader: Reader) -> bool:
    """Whether the status's mentions can decide if the reader sees it."""
    if audience == EVERYONE or author == reader.account_id or reader.account_id is None:
        return False
    return audience != FOLLOWERS or not reader.follows_every_author


def may_see(audience: int, author: int, reader: Reader, follows_author: bool = False,
            mentioned: bool = False) -> bool:
    """The rule itself, for a status's ``audience``; ``follows_author``: whether the reader follows the author
    (asked only when ``needs_follow_check``); ``mentioned``: whether the status mentions the reader (asked only
    when ``needs_mentions``)."""
    if audience == EVERYONE or author == reader.account_id:
        return True
    if reader.account_id is None:
        return False
    if audience == FOLLOWERS:
        return reader.follows_every_author or follows_author or mentioned
    return mentioned  # direct: its author and the accounts it mentions

"""Accounts found by the start of their username, or of the words of their display name: ``GET
/api/v1/accounts/search`` (a client's ``@`` completion) and the accounts of ``GET /api/v2/search``.

The index is one Redis sorted set (``keys.account_names``, every score 0, so ordered by member and read by prefix
with ``ZRANGEBYLEX``) of ``<username in lower case>:<account id>``; its member ``""`` says it exists. ``:`` sorts
before every letter, digit and ``_`` (what a username is made of), so a name's own entry comes before the longer
names it begins. The graph service adds an account's entry before it writes the account, so the index never
misses a registered account; an entry whose registration then failed (or whose name was released) names no
account, and readers check every entry against the account it names. Lost with Redis, the index is rebuilt from
Cassandra's ``accounts_by_username``, whose partitions are the names (as hashtags' names are, kicau/tag_history.py).

Display names have an index of their own (``DisplayNameWords``, ``keys.display_name_words``): ``<word>:<account
id>`` for each word of a display name set through ``update_credentials`` (a word: a run of letters, digits and
``_``, in NFKC and case-folded, so "Zoë" is found by "zoë" and "ZOË"). The graph service adds the new name's
words before it writes the name, and removes the old name's other words after: an entry may name an account whose
name has changed since (a crash between), so readers check every entry against the account's current name, as for
usernames. Lost with Redis, it is rebuilt from Cassandra's ``accounts`` (every display name).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from cassandra.cluster import Session
from redis.asyncio import Redis

from kicau import keys
from kicau.clients import execute
from kicau.lex_index import LexIndex
from kicau.resp import command

_NAMES: Final = keys.account_names()


def entry(username_key: str, account_id: int) -> bytes:
    return b"%s:%d" % (username_key.encode(), account_id)


def _parsed(member: bytes) -> tuple[str, int]:
    name, _, account_id = member.decode().rpartition(":")
    return name, int(account_id)


class AccountNames:
    """The index, read by prefix (kicau/lex_index.py); rebuilt from Cassandra's ``accounts_by_username``."""

    def __init__(self, redis: Redis, session: Session) -> None:
        every_name = session.prepare("SELECT username, account_id FROM accounts_by_username")

        async def record() -> list[bytes]:
            return [entry(str(row["username"]), int(row["account_id"]))
                    for row in await execute(session, every_name)]

        self._index = LexIndex(redis, _NAMES, record)

    def add_command(self, username_key: str, account_id: int) -> bytes:
        """The entry of a new account (safe to repeat)."""
        return self._index.add_command(entry(username_key, account_id))

    async def starting_with(self, prefix: str, limit: int, after: tuple[str, int] | None = None,
                            ) -> list[tuple[str, int]]:
        """Up to ``limit`` (username, account id) entries whose name begins with ``prefix`` (lower case), in
        order (a name before the longer ones it begins), from the one after ``after`` if given. Entries may name
        accounts that do not exist."""
        members = await self._index.starting_with(prefix.encode(), limit,
                                                  None if after is None else entry(*after))
        return [_parsed(member) for member in members]


_WORDS: Final = keys.display_name_words()
_WORD: Final = re.compile(r"\w+")
# Bounds: the words of one name indexed, and a word's length in the index (a longer word is found by its start).
MAX_WORDS: Final = 16
MAX_WORD: Final = 64


def name_words(text: str) -> list[str]:
    """The words of a display name (or of a query), in NFKC and case-folded, each once, in order."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return list(dict.fromkeys(word[:MAX_WORD] for word in _WORD.findall(folded)))[:MAX_WORDS]


def names_match(display_name: str, terms: list[str]) -> bool:
    """Whether every query term begins a word of the display name."""
    words = name_words(display_name)
    return all(any(word.startswith(term) for word in words) for term in terms)


class DisplayNameWords:
    """The index of display names' words (kicau/lex_index.py), rebuilt from Cassandra's ``accounts``."""

    def __init__(self, redis: Redis, session: Session) -> None:
        every_name = session.prepare("SELECT id, display_name FROM accounts")

        async def record() -> list[bytes]:
            return [entry(word, int(row["id"])) for row in await execute(session, every_name)
                    for word in name_words(str(row["display_name"] or ""))]

        self._index = LexIndex(redis, _WORDS, record)
        self._key = _WORDS.encode()

    def add_commands(self, account_id: int, display_name: str) -> list[bytes]:
        """The entries of a name's words (safe to repeat)."""
        return [self._index.add_command(entry(word, account_id)) for word in name_words(display_name)]

    def remove_commands(self, account_id: int, old_name: str, new_name: str) -> list[bytes]:
        """The removal of the entries of the old name's words that the new name does not have."""
        gone = set(name_words(old_name)) - set(name_words(new_name))
        return [command(b"ZREM", self._key, entry(word, account_id)) for word in sorted(gone)]

    async def starting_with(self, prefix: str, limit: int, after: tuple[str, int] | None = None,
                            ) -> list[tuple[str, int]]:
        """Up to ``limit`` (word, account id) entries whose word begins with ``prefix`` (a folded word), in order,
        from the one after ``after`` if given. Entries may name accounts whose names have changed since."""
        members = await self._index.starting_with(prefix.encode(), limit,
                                                  None if after is None else entry(*after))
        return [_parsed(member) for member in members]

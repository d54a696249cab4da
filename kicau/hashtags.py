"""Hashtags: the ``#names`` a status's text carries.

Found with Mastodon's rules (``Tag::Naming``): a ``#`` (or the full-width number sign U+FF03) at the start of
the text or after whitespace, then a name of word characters and the separators ``_``, U+00B7, U+30FB (middle
dots) and U+200C (zero-width non-joiner), holding at least one letter, neither starting nor ending with a
separator other than ``_``. So ``#kicau``, ``#día_1`` and ``#東京`` are hashtags; ``#123``, ``a#b`` and a URL's
``/#fragment`` are not.

A name is compared in its *normal form* (NFKC, lower case): ``#Kicau`` and ``#kicau`` are one hashtag, as in
Mastodon. The normal form is what a status's ``tags`` array names, what its ``/tags/<name>`` links point at, and
the key of its hashtag timeline (kicau/tag_timeline.py); the text keeps the name as written.

Names are found in the text whenever a status is rendered or its events are made, never stored on their own:
the text is the record, so a status posted before hashtags existed gets its ``tags`` on its next rendering (not
its content's links: a status's content is rendered once, when it is posted).
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterator
from typing import Final
from urllib.parse import quote

_SEPARATORS = "\u00b7\u30fb\u200c"  # and "_", which \w already holds
# The first form: a name that may hold separators inside it, with a letter (or separator) somewhere after its
# first character; the second: word characters around a letter.
_FIRST = rf"\w[\w{_SEPARATORS}]*(?:[^\W\d]|[{_SEPARATORS}])[\w{_SEPARATORS}]*\w"
_LAST = r"\w*[^\W\d_]\w*"
_NAME = rf"(?:{_FIRST}|{_LAST})"

HASHTAG: Final = re.compile(rf"(?<!\S)[#\uff03]({_NAME})")
NAME: Final = re.compile(rf"{_NAME}")
# A hashtag is read from 500 characters at most; a name longer than Mastodon's column is no hashtag's.
MAX_NAME: Final = 100


def normal(name: str) -> str:
    """The form names are compared in: NFKC, lower case."""
    return unicodedata.normalize("NFKC", name).lower()


def valid(name: str) -> bool:
    """Whether ``name`` (without its ``#``) is a hashtag's name, as a hashtag timeline's path names one."""
    return 0 < len(name) <= MAX_NAME and NAME.fullmatch(name) is not None


def may_carry(text: str) -> bool:
    """Whether the text may hold a hashtag at all: most statuses hold no number sign, and cost no more than this
    test (a post renders its text twice and makes its event: ~3.5 µs a post without it, under 1 µs with it)."""
    return "#" in text or "\uff03" in text


def found(text: str) -> Iterator[re.Match[str]]:
    """Each hashtag in the text, its name as written in ``group(1)``."""
    if may_carry(text):
        for match in HASHTAG.finditer(text):
            if len(match.group(1)) <= MAX_NAME:
                yield match


def names(text: str) -> list[str]:
    """The hashtags the text carries, in normal form, each once, in the order they first appear."""
    if not may_carry(text):
        return []
    return list(dict.fromkeys(normal(match.group(1)) for match in found(text)))


def url(name: str, public_url: str) -> str:
    """The hashtag's page: its normal form, percent-encoded as a path segment (as Rails writes ``/tags/...``)."""
    return f"{public_url}/tags/{quote(normal(name), safe='')}"


def entity(name: str, public_url: str) -> dict[str, str]:
    """Mastodon's Status.tags[] item (``name`` in normal form)."""
    return {"name": name, "url": url(name, public_url)}


def link_html(written: str, public_url: str) -> str:
    """The link Mastodon writes for a hashtag in a status's content; ``written`` as the text spells it."""
    return (f'<a href="{html.escape(url(written, public_url), quote=True)}" class="mention hashtag" rel="tag">'
            f"#<span>{html.escape(written, quote=True)}</span></a>")

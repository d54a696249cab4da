"""Web addresses in a status's text: found, linked in its HTML as Mastodon links them, and the first of them is
the one its preview card shows (services/post/link_previews.py).

An address starts with ``http://`` or ``https://`` after a space, the start of the text or an opening bracket or
quote, has a host, and runs to the next space or ``<``, ``>``, ``"``. What a sentence puts after an address is not
part of it: trailing ``.,:;!?'`` and a closing bracket that has no opening one inside the address (so
``(see https://example.com/a_(b))`` keeps ``a_(b)``, and ``https://example.com.`` ends before the full stop).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Final
from urllib.parse import urlsplit

# Where an address may start: not inside a word, an address or a mention.
_ADDRESS: Final = re.compile(r"(?<![\w/.@:#-])https?://[^\s<>\"/?#]+[^\s<>\"]*", re.IGNORECASE)
_TRAILING: Final = ".,:;!?'*"
_PAIRS: Final = {")": "(", "]": "[", "}": "{"}
# Mastodon shows this many characters of an address (after its scheme and "www."), the rest hidden.
SHOWN_CHARACTERS: Final = 30


def _trimmed(found: str) -> str:
    """``found`` less what a sentence put after the address (module doc)."""
    while found:
        last = found[-1]
        if last in _TRAILING or (last in _PAIRS and found.count(_PAIRS[last]) < found.count(last)):
            found = found[:-1]
        else:
            break
    return found


def addresses(text: str) -> Iterator[tuple[int, int, str]]:
    """Each web address in ``text``: (start, end, the address)."""
    if "://" not in text:
        return
    for match in _ADDRESS.finditer(text):
        address = _trimmed(match.group())
        if "://" in address and address.split("://", 1)[1].split("/", 1)[0].strip(".:"):
            yield match.start(), match.start() + len(address), address


def first_address(text: str) -> str | None:
    return next((address for _, _, address in addresses(text)), None)


def preview_address(text: str, own_url: str) -> str | None:
    """The address a status's preview card shows: its first that is not on this server (``own_url``, the
    server's public address; the same host and port), as Mastodon makes no card for its own pages."""
    own = origin(own_url)
    return next((address for _, _, address in addresses(text) if origin(address) != own), None)


def origin(url: str) -> tuple[str, int | None]:
    """An address's host and port (the scheme's own when it names none)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(parts.scheme.lower())


def link_html(address: str) -> str:
    """How Mastodon writes an address into a status's HTML: a link whose text hides the scheme (and ``www.``) and
    shows the next 30 characters, an ellipsis class marking an address cut there."""
    scheme, rest = address.split("://", 1)
    prefix = f"{scheme}://"
    if rest.lower().startswith("www."):
        prefix, rest = prefix + rest[:4], rest[4:]
    shown, hidden = rest[:SHOWN_CHARACTERS], rest[SHOWN_CHARACTERS:]
    return (f'<a href="{html.escape(address, quote=True)}" target="_blank" rel="nofollow noopener" translate="no">'
            f'<span class="invisible">{html.escape(prefix)}</span>'
            f'<span class="{"ellipsis" if hidden else ""}">{html.escape(shown)}</span>'
            f'<span class="invisible">{html.escape(hidden)}</span></a>')

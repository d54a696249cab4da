"""An account's blocked domains (Mastodon's ``/api/v1/domain_blocks``): a list of other servers whose accounts the
account wants nothing from. Kicau does not federate, so no account of its own belongs to another domain and a
block hides nothing today; the list is kept, listed and undone as Mastodon's is, so clients' settings screens
work and a federating Kicau would find it.

* **Blocking** claims the domain for the account (``domain_blocks``, a lightweight transaction: one block a domain,
  whatever the retries), then writes its place in the account's list (``domain_blocks_by_id``); a retry after a
  crash between the two finds the claim and writes the place again, with the claim's id.
* **Unblocking** removes the place, then the claim: a retry finds the claim and finishes.
* **Domains** are read as Mastodon reads them: trimmed, lower case, internationalised names as their ASCII form
  (IDNA); anything that is not a host name of at least two labels is a 422.
"""

from __future__ import annotations

import re
from typing import Final

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.ids import SnowflakeGenerator
from kicau.marked_lists import MarkedList
from kicau.web import ApiError

MAX_DOMAIN: Final = 253
_LABEL: Final = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def normal_domain(given: str) -> str:
    """The domain as it is kept; a 422 for what is not a domain."""
    domain = given.strip().lower().removesuffix(".")
    try:
        ascii_form = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        raise ApiError(422, "Validation failed: Domain is not a valid domain name") from None
    labels = ascii_form.split(".")
    if len(ascii_form) > MAX_DOMAIN or len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ApiError(422, "Validation failed: Domain is not a valid domain name")
    return ascii_form


class DomainBlocks:
    def __init__(self, session: Session, write_consistency: int, ids: SnowflakeGenerator) -> None:
        self._session = session
        self._ids = ids
        write = write_preparer(session, write_consistency)
        self._claim = write("INSERT INTO domain_blocks (account_id, domain, id) VALUES (?, ?, ?) IF NOT EXISTS")
        self._place = write("INSERT INTO domain_blocks_by_id (account_id, id, domain) VALUES (?, ?, ?)")
        self._held = session.prepare("SELECT id FROM domain_blocks WHERE account_id = ? AND domain = ?")
        self._unplace = write("DELETE FROM domain_blocks_by_id WHERE account_id = ? AND id = ?")
        self._unclaim = write("DELETE FROM domain_blocks WHERE account_id = ? AND domain = ?")
        self._list = MarkedList.prepare_of(str, session.prepare, "domain_blocks_by_id", "account_id", "id", "domain")

    async def block(self, account_id: int, domain: str) -> None:
        wanted = normal_domain(domain)
        block_id = self._ids.next_id()
        rows = await execute(self._session, self._claim, (account_id, wanted, block_id))
        if not rows[0]["[applied]"]:
            block_id = int(rows[0]["id"])  # blocked before (or a retry): its place is written again, the same
        await execute(self._session, self._place, (account_id, block_id, wanted))

    async def unblock(self, account_id: int, domain: str) -> None:
        wanted = normal_domain(domain)
        rows = await execute(self._session, self._held, (account_id, wanted))
        if not rows:
            return  # not blocked: nothing changes, as Mastodon answers
        await execute(self._session, self._unplace, (account_id, int(rows[0]["id"])))
        await execute(self._session, self._unclaim, (account_id, wanted))

    async def page(self, account_id: int, *, max_id: int | None, since_id: int | None, min_id: int | None,
                   limit: int) -> list[tuple[int, str]]:
        """(block id, domain), newest block first, with Mastodon's cursors."""
        return await self._list.page(self._session, account_id, max_id=max_id, since_id=since_id, min_id=min_id,
                                     limit=limit)

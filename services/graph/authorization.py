"""OAuth's authorization-code grant (RFC 6749 section 4.1, with PKCE, RFC 7636), as Mastodon's Doorkeeper runs it.

The flow most clients log in with (Tusky, Elk, Phanpy, ``toot login``, Mastodon.py's ``auth_request_url``): the
client sends the user's browser to ``GET /oauth/authorize`` (the gateway's form), the user signs in and approves,
and the browser is sent back to the app's ``redirect_uri`` with a code (or, for ``urn:ietf:wg:oauth:2.0:oob``,
the code is shown to be copied); the app exchanges it at ``POST /oauth/token`` with
``grant_type=authorization_code``.

A code is kept in Cassandra (``oauth_authorization_codes``, hashed as tokens are) for ten minutes, Doorkeeper's
default, and is spent once: the exchange deletes it with a lightweight transaction before it issues the token, so
two exchanges of one code give one token. A crash between the two leaves the code spent and no token: the user
approves again (a code that could be exchanged twice would be worse).

Mastodon checks PKCE with S256 only (``plain`` offers nothing over no challenge), so does Kicau. A code asked with
a challenge is exchanged only with the verifier that hashes to it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any, Final

from cassandra.cluster import Session

from kicau import tokens
from kicau.clients import execute, write_preparer
from kicau.web import ApiError

CODE_SECONDS: Final = 600  # the table's default_time_to_live (stack/migrations/0031_oauth_authorization_codes.cql)
OOB: Final = "urn:ietf:wg:oauth:2.0:oob"  # "out of band": the code is shown, not sent anywhere
S256: Final = "S256"
# RFC 7636 section 4.1: 43 to 128 unreserved characters; a S256 challenge is 43 (32 bytes, base64url, unpadded).
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")
INVALID_GRANT: Final = ("The provided authorization grant is invalid, expired, revoked, does not match the "
                        "redirection URI used in the authorization request, or was issued to another client.")


def redirect_for(registered: str, asked: str | None) -> str:
    """The redirect URI a request may use: one the app registered, exactly (RFC 6749 section 3.1.2.3), or its only
    one when none is given. Never anything else: sending a code to an address the app did not register would give
    it away."""
    uris = registered.split()
    if asked:
        if asked not in uris:
            raise ApiError(400, "The redirect uri included is not valid.")
        return asked
    if len(uris) != 1:
        raise ApiError(400, "The redirect uri included is not valid.")
    return uris[0]


def checked_challenge(challenge: str | None, method: str | None) -> str | None:
    """The request's PKCE challenge, if it has one: S256 only (no method given means ``plain`` in RFC 7636,
    which Mastodon does not take either)."""
    if not challenge:
        if method:
            raise ApiError(400, "code_challenge_method is given without a code_challenge.")
        return None
    if method != S256:
        raise ApiError(400, "The code challenge method is not supported: use S256.")
    if not _CHALLENGE.fullmatch(challenge):
        raise ApiError(400, "The code challenge is not a S256 challenge (43 base64url characters).")
    return challenge


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verifies(challenge: str | None, verifier: str | None) -> bool:
    """Whether the exchange's ``code_verifier`` answers the code's challenge; a code without one takes none."""
    if challenge is None:
        return not verifier
    if not verifier or not _VERIFIER.fullmatch(verifier):
        return False
    return secrets.compare_digest(challenge_of(verifier), challenge)


class AuthorizationCodes:
    """The codes awaiting their exchange, by the hash of the code."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._insert = write(
            "INSERT INTO oauth_authorization_codes (code_hash, client_id, account_id, scopes, redirect_uri,"
            " code_challenge) VALUES (?, ?, ?, ?, ?, ?)")
        self._read = session.prepare("SELECT * FROM oauth_authorization_codes WHERE code_hash = ?")
        self._spend = write("DELETE FROM oauth_authorization_codes WHERE code_hash = ? IF EXISTS")

    async def issue(self, *, client_id: str, account_id: int, scopes: set[str], redirect_uri: str,
                    challenge: str | None) -> str:
        code = tokens.new_token()
        await execute(self._session, self._insert,
                      (tokens.hash_token(code), client_id, account_id, scopes, redirect_uri, challenge))
        return code

    async def spend(self, code: str) -> dict[str, Any] | None:
        """The code's row, if it is still unspent and this call spent it; else None."""
        code_hash = tokens.hash_token(code)
        rows = await execute(self._session, self._read, (code_hash,))
        if not rows:
            return None
        spent = await execute(self._session, self._spend, (code_hash,))
        return rows[0] if spent and spent[0].get("[applied]") else None

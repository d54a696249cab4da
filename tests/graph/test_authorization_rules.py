"""The authorization-code grant's rules (services/graph/authorization.py), without a stack."""

from __future__ import annotations

import pytest

from kicau.web import ApiError
from services.graph.authorization import OOB, challenge_of, checked_challenge, redirect_for, verifies

# RFC 7636, appendix B.
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_the_s256_challenge_is_rfc_7636s() -> None:
    assert challenge_of(RFC_VERIFIER) == RFC_CHALLENGE
    assert verifies(RFC_CHALLENGE, RFC_VERIFIER)
    assert not verifies(RFC_CHALLENGE, RFC_VERIFIER[:-1] + "l")
    assert not verifies(RFC_CHALLENGE, None)
    assert not verifies(RFC_CHALLENGE, "short")  # fewer than 43 characters is no verifier
    assert not verifies(RFC_CHALLENGE, "é" * 43)  # nor anything outside the unreserved characters
    # A code asked without a challenge is exchanged without a verifier.
    assert verifies(None, None) and verifies(None, "") and not verifies(None, RFC_VERIFIER)


def test_only_s256_challenges_are_taken() -> None:
    assert checked_challenge(RFC_CHALLENGE, "S256") == RFC_CHALLENGE
    assert checked_challenge(None, None) is None and checked_challenge("", None) is None
    for challenge, method in ((RFC_CHALLENGE, "plain"), (RFC_CHALLENGE, None), (None, "S256"),
                              ("x" * 42, "S256"), (RFC_CHALLENGE + "=", "S256")):
        with pytest.raises(ApiError) as refused:
            checked_challenge(challenge, method)
        assert refused.value.status_code == 400


def test_a_code_goes_only_where_the_app_registered() -> None:
    registered = f"https://app.example/cb\n{OOB}"
    assert redirect_for(registered, "https://app.example/cb") == "https://app.example/cb"
    assert redirect_for(registered, OOB) == OOB
    assert redirect_for(OOB, None) == OOB  # an app's only redirect URI when none is given
    for asked in (None, "", "https://app.example/cb/", "https://app.example/cb?x=1", "https://evil.example/cb"):
        with pytest.raises(ApiError):
            redirect_for(registered, asked)

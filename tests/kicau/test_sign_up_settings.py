"""Who must give a reason to sign up (kicau/settings.py ``CommonSettings.reason_required``)."""

from __future__ import annotations

import pytest

from kicau.settings import CommonSettings


@pytest.mark.parametrize(("mode", "asked", "required"), [
    ("approved", True, True),
    ("approved", False, False),
    # Only where every sign-up waits: one an IP or e-mail domain block holds in the open mode was never told to.
    ("open", True, False),
    ("none", True, False),
])
def test_a_reason_is_required_in_the_approved_mode_alone(mode: str, asked: bool, required: bool) -> None:
    settings = CommonSettings(registrations_mode=mode, sign_up_reason_required=asked)  # type: ignore[arg-type]
    assert settings.reason_required is required

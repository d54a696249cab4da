"""Numbers of seconds as clients send them: a mute's ``duration``, a poll's and a filter's ``expires_in``.

JSON gives an integer, or a float (JSON Schema's integer includes 3600.0, and generated clients send it so); a
form gives digits. JSON's ``true`` and ``false`` are no number of seconds, though Python counts them as integers
and Pydantic's lax mode would read them as 1 and 0."""

from __future__ import annotations

# Digits a form's value may have: more is no duration anyone means (and int() refuses thousands of digits).
_MAX_DIGITS = 18


def whole_seconds(value: object) -> int | None:
    """``value`` as a whole number of seconds (negative ones too: the caller checks its range), or None if it is
    not one: not an integer, a float without a fraction or a form's digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and 0 < len(value) <= _MAX_DIGITS and value.isascii() and value.isdigit():
        return int(value)
    return None

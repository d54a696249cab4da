"""Named places where a process may be made to die abruptly, for the fault suite (tests/faults).

A test starts a service with ``KICAU_CRASH_AT=<name>``; the process ends with ``os._exit`` when it reaches that
place, as a SIGKILL there would end it (no cleanup, no flush), and so tests the recovery of a step a kill from
outside could only hit by chance. Unset, as everywhere but in those tests, a crash point costs one comparison."""

from __future__ import annotations

import logging
import os

CRASH_EXIT_CODE = 70
_ARMED = os.environ.get("KICAU_CRASH_AT") or None


def crash_point(name: str) -> None:
    if _ARMED is not None and name == _ARMED:
        logging.getLogger(__name__).warning("crashing at %s (KICAU_CRASH_AT)", name)
        os._exit(CRASH_EXIT_CODE)

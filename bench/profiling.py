"""Optional sampling profiles (py-spy) of a running service while a section loads it (``--profile``).

py-spy comes from PyPI as a self-contained binary; it is installed into ``.stack/bench/pyspy`` on first use
rather than into the project's environment. Flame graphs go to ``loadtests/results/profiles/<service>.svg``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bench.common import RESULTS, STATE, log, service_pid

PYSPY_VERSION = "0.4.3"


def pyspy() -> Path | None:
    found = shutil.which("py-spy")
    if found:
        return Path(found)
    target = STATE / "pyspy"
    binary = target / "bin" / "py-spy"
    if not binary.exists():
        log(f"  installing py-spy {PYSPY_VERSION} into {target}")
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target),
                               f"py-spy=={PYSPY_VERSION}"], capture_output=True, text=True)
        if done.returncode != 0:
            log(f"  py-spy unavailable: {done.stderr.strip()[-200:]}")
            return None
    return binary if binary.exists() else None


def start(service: str, *, seconds: int, suffix: str = "") -> subprocess.Popen[bytes] | None:
    pid = service_pid(service)
    binary = pyspy()
    if pid is None or binary is None:
        log(f"  no profile of {service} (pid {pid}, py-spy {binary})")
        return None
    out = RESULTS / "profiles" / f"{service}{suffix}.svg"
    out.parent.mkdir(parents=True, exist_ok=True)
    log(f"  profiling {service} (pid {pid}) for {seconds}s -> {out.relative_to(RESULTS.parent.parent)}")
    return subprocess.Popen([str(binary), "record", "-d", str(seconds), "-r", "100", "-p", str(pid),
                             "-o", str(out), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[bytes] | None, timeout: float = 60.0) -> None:
    if process is None:
        return
    try:
        _, err = process.communicate(timeout=timeout)
        if process.returncode != 0:
            log(f"  py-spy exited {process.returncode}: {err.decode(errors='replace').strip()[-300:]}")
    except subprocess.TimeoutExpired:
        process.terminate()
        process.wait(timeout=10)

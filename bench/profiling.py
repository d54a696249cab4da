"""Optional sampling profiles (py-spy) of the services a section loads (``--profile``).

py-spy comes from PyPI as a self-contained binary; it is installed into ``.stack/bench/pyspy`` on first use
rather than into the project's environment. Collapsed stacks go to
``loadtests/results/profiles/<service>-<target>.folded`` (open them in speedscope or flamegraph.pl), and the
section's log shows each one's top frames.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.common import RESULTS, STATE, log, service_pid

PYSPY_VERSION = "0.4.3"
# Where profiles go: beside the results, or under the bench's state for a run that writes no results
# (``--no-write``), so that such a run leaves the committed profiles as they are.
_OUT = {"directory": RESULTS / "profiles"}


def write_to(directory: Path) -> None:
    _OUT["directory"] = directory


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
    """Sample ``service`` for ``seconds``: collapsed stacks (``<service><suffix>.folded``, one line a stack and its
    sample count, which speedscope and flamegraph.pl read) that ``summary`` reduces to the top frames."""
    pid = service_pid(service)
    binary = pyspy()
    if pid is None or binary is None:
        log(f"  no profile of {service} (pid {pid}, py-spy {binary})")
        return None
    out = _OUT["directory"] / f"{service}{suffix}.folded"
    out.parent.mkdir(parents=True, exist_ok=True)
    log(f"  profiling {service} (pid {pid}) for {seconds}s -> {out}")
    return subprocess.Popen([str(binary), "record", "-d", str(seconds), "-r", "100", "-p", str(pid),
                             "-o", str(out), "-f", "raw", "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


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
        return
    out = _output(process)
    if out is not None and out.exists():
        for line in summary(out):
            log(f"    {line}")


def _output(process: subprocess.Popen[bytes]) -> Path | None:
    argv = [str(arg) for arg in process.args] if isinstance(process.args, list) else []
    return Path(argv[argv.index("-o") + 1]) if "-o" in argv else None


def summary(folded: Path, top: int = 12) -> list[str]:
    """The frames with the most samples of their own (where the CPU went) and, under the event loop's callbacks,
    the frames most often on the stack (what it was doing), as shares of the samples taken."""
    own: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        own[_short(frames[-1])] += samples
        for frame in {_short(frame) for frame in frames}:
            inside[frame] += samples
    if not total:
        return ["no samples"]
    lines = [f"{total} samples; own time:"]
    lines += [f"  {count / total:6.1%}  {frame}" for frame, count in own.most_common(top)]
    lines.append("on the stack:")
    lines += [f"  {count / total:6.1%}  {frame}" for frame, count in inside.most_common(top + 8)
              if count < total]
    return lines


def _short(frame: str) -> str:
    # "handle (kicau/serve.py:40)" -> "handle (kicau/serve.py)": lines split one function's samples.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "/work/ci/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name

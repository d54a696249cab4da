"""Resolve an engine's runtime classpath with Maven, cached under .stack/classpath.

The jars stay in the local Maven repository (~/.m2), so a fresh clone or a `reset` does not download again;
the cache is keyed by a hash of the pom and the Maven flags, so a warm `up` never starts Maven at all.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import threading
from pathlib import Path

from stack.config import ENGINES_SRC, STACK_DIR, StackError

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

# cassandra-all's transitive poms reference system-scoped tool paths that Cassandra's own build.xml
# points at harmless locations; without them Maven refuses the model.
EXTRA_FLAGS: dict[str, list[str]] = {
    "cassandra": ["-Djmc5.path=/tmp", "-Djmc6.path=/tmp", "-Dvisualvm.path=/tmp"],
}

# Maven 3.8 has no repository locking; two concurrent cold downloads can corrupt a shared artifact.
_maven_lock = threading.Lock()


def cache_dir() -> Path:
    return STACK_DIR / "classpath"


def _maven_args(engine: str) -> list[str]:
    return EXTRA_FLAGS.get(engine, []) + shlex.split(os.environ.get("KICAU_MAVEN_ARGS", ""))


def cache_key(engine: str) -> str:
    pom = (ENGINES_SRC / engine / "pom.xml").read_bytes()
    digest = hashlib.sha256(pom)
    digest.update("\0".join([DEPENDENCY_PLUGIN, *_maven_args(engine)]).encode())
    return digest.hexdigest()


def cached(engine: str) -> list[str] | None:
    cp_file = cache_dir() / f"{engine}.cp"
    key_file = cache_dir() / f"{engine}.key"
    try:
        if key_file.read_text().strip() != cache_key(engine):
            return None
        entries = [e for e in cp_file.read_text().strip().split(os.pathsep) if e]
    except OSError:
        return None
    if not entries or not all(os.path.isfile(e) for e in entries):
        return None  # ~/.m2 was pruned: resolve again
    return entries


def resolve(engine: str, log: list[str] | None = None) -> list[str]:
    """The engine's runtime jars, from the cache or from Maven (which downloads what is missing)."""
    entries = cached(engine)
    if entries is not None:
        return entries
    with _maven_lock:
        entries = cached(engine)
        if entries is not None:
            return entries
        if log is not None:
            log.append(f"resolving {engine} jars with Maven (first run downloads them into ~/.m2)")
        _run_maven(engine)
    entries = cached(engine)
    if entries is None:
        raise StackError(f"Maven wrote no usable classpath for {engine}", "run `python -m stack up` again")
    return entries


def _run_maven(engine: str) -> None:
    from stack.procs import which

    mvn = which("mvn")
    if mvn is None:
        raise StackError("`mvn` is not on PATH", "install Maven 3.8+ (apt-get install -y maven)")
    out_dir = cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"{engine}.cp.tmp"
    argv = [
        mvn, "-B", "-q", "-Dstyle.color=never",
        "-f", str(ENGINES_SRC / engine / "pom.xml"),
        f"{DEPENDENCY_PLUGIN}:build-classpath",
        f"-Dmdep.outputFile={tmp}",
        "-Dmdep.includeScope=runtime",
        *_maven_args(engine),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not tmp.exists():
        lines = maven_error_lines(proc.stdout + proc.stderr)
        detail = "\n  ".join(lines) if lines else "(Maven printed no [ERROR] lines)"
        raise StackError(
            f"Maven could not resolve the {engine} jars:\n  {detail}",
            "check network access to Maven Central (repo.maven.apache.org) or KICAU_MAVEN_ARGS",
        )
    tmp.replace(out_dir / f"{engine}.cp")
    (out_dir / f"{engine}.key").write_text(cache_key(engine) + "\n")


_ARTIFACT = re.compile(r"[\w.\-]+:[\w.\-]+:(?:jar|pom)(?::[\w.\-]+)?:[\w.\-]+")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Maven's closing advice is the same for every failure and pushes the useful lines off the screen.
_BOILERPLATE = ("To see the full stack trace", "Re-run Maven using", "For more information about", "[Help ")


def maven_error_lines(output: str, limit: int = 10) -> list[str]:
    """Maven's distinct [ERROR] lines, those naming an artifact first, so the missing coordinate is shown."""
    errors: list[str] = []
    for raw in _ANSI.sub("", output).splitlines():
        if "[ERROR]" not in raw:
            continue
        line = raw[raw.index("[ERROR]") :].replace("[ERROR] [ERROR]", "[ERROR]").strip()
        text = line.removeprefix("[ERROR]").strip()
        if not text or any(text.startswith(b) for b in _BOILERPLATE) or line in errors:
            continue
        errors.append(line)
    naming = [line for line in errors if _ARTIFACT.search(line)]
    rest = [line for line in errors if line not in naming]
    return (naming + rest)[:limit]


def find_jar(entries: list[str], prefix: str) -> str:
    for entry in entries:
        name = os.path.basename(entry)
        if name.startswith(prefix) and name.endswith(".jar"):
            return entry
    raise StackError(f"no {prefix}*.jar on the classpath", "delete .stack/classpath and run `up` again")

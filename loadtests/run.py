"""``make load``: Locust, headless, against a gateway meant for load tests.

The stack's gateway keeps Mastodon's rate limits (300 requests an account in 5 minutes), and a closed-loop user
makes hundreds a second: against it a load test measures the limiter. So unless a host is named, this starts a
second gateway beside the stack's (stack/gateways.py: the same code, services and data, on a free port) whose
per-account limit is out of reach, runs Locust against it, and stops it afterwards. Every other limit and setting
is the stack's. With ``--host`` (``make load HOST=...``), Locust runs against that gateway as it is.

    python -m loadtests.run [--host URL] [--account-requests N] -- <Locust's arguments>

Exits with Locust's status (1 when any request failed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from stack import probes
from stack.config import STACK_DIR
from stack.gateways import spawned_gateway
from stack.services import by_name

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
# Out of reach of any load this machine can make (the per-account window is 5 minutes), yet still counted: the
# limiter's own work stays on every request, as in production.
LOAD_ACCOUNT_REQUESTS = 100_000_000


def run_locust(host: str, locust_args: list[str]) -> int:
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", host, *locust_args]
    try:
        return subprocess.run(command, check=False).returncode
    except KeyboardInterrupt:  # Locust had the Ctrl-C too and wrote its summary; the gateway still stops
        return 130


def stack_gateway_problem() -> str | None:
    """Why the stack cannot serve a load gateway (its services are what the load gateway calls), or None."""
    gateway = by_name("gateway")
    if gateway is None:
        return "the stack has no gateway"
    problem = probes.probe_http(gateway.port)
    return None if problem is None else f"the stack's gateway on port {gateway.port}: {problem}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="", help="a gateway to load as it is (default: start a load gateway)")
    parser.add_argument("--account-requests", type=int, default=LOAD_ACCOUNT_REQUESTS,
                        help="the load gateway's requests an account in its window (default: %(default)s)")
    parser.add_argument("locust_args", nargs=argparse.REMAINDER, help="after --: Locust's own arguments")
    args = parser.parse_args(argv)
    locust_args = args.locust_args[1:] if args.locust_args[:1] == ["--"] else args.locust_args
    if args.host:
        return run_locust(args.host, locust_args)
    problem = stack_gateway_problem()
    if problem is not None:
        print(f"kicau: cannot start a load gateway: {problem}. Bring the stack up first (`make up`), or name a "
              "gateway with HOST=...", file=sys.stderr)
        return 2
    with spawned_gateway(STACK_DIR / "services" / "load", what="load gateway",
                         rate_limit_account_requests=str(args.account_requests)) as gateway:
        print(f"kicau: load gateway on {gateway.url} (pid {gateway.pid}, {args.account_requests} requests an "
              f"account in the window; log {gateway.log})", file=sys.stderr, flush=True)
        return run_locust(gateway.url, locust_args)


if __name__ == "__main__":
    sys.exit(main())

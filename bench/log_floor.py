"""A measurement by hand, not one of ``make bench``'s sections: the post floor (bench/floor.py) beside the floor of
a design that accepts a status once Kafka has it and writes Cassandra later, off the request (``/post_to_log``),
each as a ratio to hello world, interleaved on the same machine. What it says weighs that design (bench/README.md,
"Accepting on the log"); the stack must be running (``make up``).

    python -m bench.log_floor [--rounds 3] [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import json

from bench.common import STATE, wait_for_port
from bench.gateway import _serve, wrk
from stack.procs import free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    opts = parser.parse_args()
    STATE.mkdir(parents=True, exist_ok=True)
    keys = STATE / "log-floor-page.keys"
    keys.write_text("")  # no home page is read here
    hello_port, back_port, front_port = free_port(), free_port(), free_port()
    started = [_serve("bench.hello", "--port", str(hello_port)),
               _serve("bench.floor", "--port", str(back_port), "--page-keys", str(keys))]
    try:
        wait_for_port(back_port)
        started.append(_serve("bench.floor", "--port", str(front_port), "--back", f"http://127.0.0.1:{back_port}"))
        for port in (hello_port, front_port):
            wait_for_port(port)
        body = json.dumps({"status": "bench wrk post: " + "lorem ipsum " * 8})
        targets = {"hello": (f"http://127.0.0.1:{hello_port}/hello", "GET", None),
                   "post_floor": (f"http://127.0.0.1:{front_port}/post", "POST", body),
                   "log_floor": (f"http://127.0.0.1:{front_port}/post_to_log", "POST", body)}
        best: dict[str, float] = {}
        for round_number in range(1, opts.rounds + 1):
            for name, (url, method, sent) in targets.items():
                run = wrk(url, seconds=opts.seconds, connections=opts.connections, method=method, body=sent)
                best[name] = max(best.get(name, 0.0), float(run["rps"]))
                print(f"round {round_number}/{opts.rounds} {name:10}: {run['rps']:9,.0f} req/s  "
                      f"p50 {run['p50_ms']:.1f} ms  p99 {run['p99_ms']:.1f} ms  errors {run['errors']}", flush=True)
        hello = best["hello"]
        print(json.dumps({name: {"rps": round(rps), "ratio_to_hello": round(rps / hello, 3)}
                          for name, rps in best.items()}))
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(timeout=30)


if __name__ == "__main__":
    main()

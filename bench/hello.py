"""The gateway's baseline: a hello-world FastAPI app served exactly as the services are (``kicau.serve.run``:
uvloop, httptools, no access log). ``python -m bench.hello --port N``."""

from __future__ import annotations

import argparse

from fastapi import FastAPI
from fastapi.responses import Response

app = FastAPI()

_BODY = b'{"hello":"world"}'


@app.get("/hello")
async def hello() -> Response:
    return Response(_BODY, media_type="application/json")


@app.post("/hello")
async def hello_post() -> Response:
    return Response(_BODY, media_type="application/json")


def main() -> None:
    from kicau.serve import run

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run("bench.hello:app", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()

"""`python -m servers.demo [--port N]`: run the demo server on 127.0.0.1."""

from __future__ import annotations

import argparse

import uvicorn

from servers.demo.server import DEFAULT_PORT, create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m servers.demo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

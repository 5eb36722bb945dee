"""The server kit's per-call overhead against a bare `MCPServer` with the same tools, measured in the same run.

    python -m bench.kit_bench [--rounds 10] [--per-round 150] [--warmup 150]

Four processes on 127.0.0.1 free ports, stopped by PID at the end (also on failure): the real authz_service
(one worker, the repository's policies and catalog, this run's service credential for `demo`), the bare server
(`bare_app`: `MCPServer`, stateless streamable HTTP, JSON responses, under uvicorn), and two kit servers
(`build_kit`: the same tools, `echo` guarded on its `message`, served by `python -m server_kit serve`), one with
the decision cache on for the whole run (warm) and one with it off (cold: every call asks AuthZEN). The token
is a real one: `internal-agent`'s client credentials for the kit's canonical URI; the bare server gets the same
`Authorization` header and ignores it.

The benchmark's process is the only client, one connection per server, sequential: raw JSON-RPC POSTs over a
keep-alive `httpx.Client` (the floor of an MCP client), then the `mcp` SDK's `Client` over one session per server.
Cases of one method are interleaved round by round, in a rotating order, so that every ratio compares samples
taken at the same moments of a noisy machine. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import httpx
import httpx2

from bench.kit_bench.cases import CASES, StepFailed
from bench.kit_bench.clients import listed, measure_raw, measure_sdk
from bench.kit_bench.parts import kit_parts
from bench.kit_bench.report import report
from bench.kit_bench.stack import print_log_tails, stack

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; 1 when a step failed."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.kit_bench",
        description="The server kit's per-call overhead against a bare MCPServer, in the same run; prints figures.",
    )
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds per client")
    parser.add_argument("--per-round", type=int, default=150, help="timed requests per case and round")
    parser.add_argument("--warmup", type=int, default=150, help="untimed requests per case before the rounds")
    args = parser.parse_args(argv)
    # This process's logging, set before anything builds an `MCPServer` (its constructor would set the root
    # logger to INFO, and httpx would then write a line per AuthZEN request inside the timed parts).
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="portcullis-kit-bench-") as tmp:
        try:
            with stack(Path(tmp)) as run:
                try:
                    tools = listed(run)
                    print(f"raw JSON-RPC: {len(CASES)} cases x {args.rounds} rounds x {args.per_round} ...", flush=True)
                    raw = measure_raw(run, rounds=args.rounds, per_round=args.per_round, warmup=args.warmup)
                    print(
                        f"mcp SDK client: {len(CASES)} cases x {args.rounds} rounds x {args.per_round} ...", flush=True
                    )
                    sdk = measure_sdk(run, rounds=args.rounds, per_round=args.per_round, warmup=args.warmup)
                    parts = kit_parts(run, rounds=args.rounds, samples=3000)
                except (StepFailed, httpx.HTTPError, httpx2.HTTPError, ExceptionGroup):
                    print_log_tails(run.logs)
                    raise
        except (StepFailed, httpx.HTTPError, httpx2.HTTPError, ExceptionGroup, RuntimeError, TimeoutError) as exc:
            print(f"kit_bench: {exc!r}", file=sys.stderr)
            return 1
    report(raw, sdk, parts, tools, rounds=args.rounds, per_round=args.per_round)
    print(f"\nwhole run: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

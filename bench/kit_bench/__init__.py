"""The server kit's per-call overhead against a bare `MCPServer` with the same tools, measured in the same run.

    python -m bench.kit_bench [--rounds 10] [--per-round 150] [--warmup 150]

One module per concern: `servers` (the two servers compared), `stack` (their processes and authz_service),
`cases` (what is timed), `clients` (the raw JSON-RPC and SDK measurements), `parts` (where the kit's time goes),
`report` (the printed figures) and `__main__` (the command line). See `__main__` for what a run does.
"""

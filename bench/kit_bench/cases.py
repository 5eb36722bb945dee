"""What is timed: the cases (an MCP method on one server), their schedule, their samples, and the JSON-RPC
body every client sends."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.decision_bench import percentile

__all__ = ["CASES", "MESSAGE", "META", "PROTOCOL", "TOOL", "Case", "Samples", "StepFailed", "request_body", "schedule"]

TOOL = "echo"
MESSAGE = "hello, portcullis"
PROTOCOL = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": PROTOCOL,
    "io.modelcontextprotocol/clientInfo": {"name": "kit-bench", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


@dataclass(frozen=True)
class Case:
    """One thing timed: an MCP method on one server, with the call's message fixed or new each time."""

    label: str
    method: str  # "tools/call" or "tools/list"
    target: str  # "bare", "warm" or "cold"
    fresh_arguments: bool = False  # a new message each call: a miss in authz_service's own decision cache too


CASES = (
    Case("tools/call bare MCPServer", "tools/call", "bare"),
    Case("tools/call kit, warm cache", "tools/call", "warm"),
    Case("tools/call kit, cold: cache off", "tools/call", "cold"),
    Case("tools/call kit, cold + new argument", "tools/call", "cold", fresh_arguments=True),
    Case("tools/list bare MCPServer", "tools/list", "bare"),
    Case("tools/list kit, warm: batch cached", "tools/list", "warm"),
    Case("tools/list kit, cold: batch of 2 asked", "tools/list", "cold"),
)


def schedule(cases: tuple[Case, ...], rounds: int) -> list[Case]:
    """Every round runs each method's cases once, in an order that rotates from round to round."""
    order: list[Case] = []
    for method in dict.fromkeys(case.method for case in cases):
        group = [case for case in cases if case.method == method]
        for r in range(rounds):
            shift = r % len(group)
            order += group[shift:] + group[:shift]
    return order


@dataclass
class Samples:
    """Latencies of one case, in ms."""

    case: Case
    samples: list[float] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)  # each round's p50, for the spread of the ratios

    @property
    def ordered(self) -> list[float]:
        return sorted(self.samples)

    @property
    def p50(self) -> float:
        return percentile(self.ordered, 50)

    @property
    def p99(self) -> float:
        return percentile(self.ordered, 99)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples)

    def add_round(self, latencies: list[float]) -> None:
        self.samples += latencies
        self.rounds.append(percentile(sorted(latencies), 50))


class StepFailed(RuntimeError):
    """A server answered something other than a successful result."""


def request_body(method: str, params: dict[str, Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": META}}).encode()

"""Prometheus metrics of the authorization service.

Each service instance owns a registry (no global state, so tests can build many apps). When the service
runs as several worker processes, `PROMETHEUS_MULTIPROC_DIR` is set by the supervisor and `/metrics`
aggregates every worker's values.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25)


class Metrics:
    """The service's counters and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.decisions = Counter(
            "portcullis_decisions", "Decisions by layer and result", ["layer", "result"], registry=r
        )
        self.decision_seconds = Histogram(
            "portcullis_decision_seconds",
            "Time to decide, by layer and cache outcome",
            ["layer", "cache"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.reloads = Counter("portcullis_policy_reloads", "Policy reloads that took effect", registry=r)
        self.reload_failures = Counter(
            "portcullis_policy_reload_failures", "Policy reloads rejected (previous revision kept)", registry=r
        )
        self.catalog_reloads = Counter("portcullis_catalog_reloads", "Catalog reloads", ["result"], registry=r)
        self.errors = Counter("portcullis_errors", "Errors by stage (each one a denial)", ["stage"], registry=r)
        self.decision_log_lines = Counter("portcullis_decision_log_lines", "Decision-log lines written", registry=r)
        self.decision_log_failures = Counter(
            "portcullis_decision_log_failures", "Decision-log records that could not be written", registry=r
        )
        # Pre-create the labelled children every dashboard expects, so they read 0 rather than absent.
        for layer in ("edge", "server"):
            for result in ("allow", "deny", "would_deny"):
                self.decisions.labels(layer=layer, result=result)
        self._children = {
            (layer, result, cached): (
                self.decisions.labels(layer=layer, result=result),
                self.decision_seconds.labels(layer=layer, cache="hit" if cached else "miss"),
            )
            for layer in ("edge", "server", "cli")
            for result in ("allow", "deny", "would_deny")
            for cached in (True, False)
        }

    def observe_decision(self, layer: str, result: str, seconds: float, cached: bool) -> None:
        counter, histogram = self._children[(layer, result, cached)]
        counter.inc()
        histogram.observe(seconds)

    def exposition(self) -> bytes:
        """The text exposition, aggregated over worker processes when running multi-process."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

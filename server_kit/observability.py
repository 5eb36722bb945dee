"""Structured JSON logs and Prometheus metrics of a kit server.

Every log line is one JSON object. Inside a tool call the line carries the call's fields (server, tool, user,
client, the edge decision id from the gateway and the request id), whoever logs it, the tool's own code
included. Tokens never reach a log: the kit logs none, and the formatter redacts anything shaped like a JWT or
a bearer credential as a last line of defense.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["JsonFormatter", "KitMetrics", "bound_log_fields", "configure_logging", "log_fields"]

_FIELDS: ContextVar[dict[str, str] | None] = ContextVar("portcullis_kit_log_fields", default=None)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def log_fields() -> dict[str, str]:
    """The fields bound to the current tool call (empty outside one)."""
    return dict(_FIELDS.get() or {})


@contextmanager
def bound_log_fields(**fields: str) -> Iterator[None]:
    """Add `fields` to every log line written inside the block (empty values are left out)."""
    merged = {**(_FIELDS.get() or {}), **{key: value for key, value in fields.items() if value}}
    token = _FIELDS.set(merged)
    try:
        yield
    finally:
        _FIELDS.reset(token)


def redact(text: str) -> str:
    """`text` with anything shaped like a JWT or a bearer credential replaced."""
    return _BEARER.sub(r"\1[redacted]", _JWT.sub("[redacted-jwt]", text))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the bound call fields, and `extra={"kit": {...}}`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        bound = getattr(record, "kit_fields", None)  # captured when the record was queued (another thread)
        entry.update(bound if isinstance(bound, dict) else _FIELDS.get() or {})
        extra = getattr(record, "kit", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return redact(json.dumps(entry, default=str))


class _DeferredHandler(logging.handlers.QueueHandler):
    """Queues records for a writer thread, keeping the call's fields: formatting and writing a JSON line was a
    third of the kit's per-call overhead (bench/kit_bench), so it happens off the request path.
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.kit_fields = _FIELDS.get() or {}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None  # tracebacks hold frames; the text is what the line needs
        return record


_listener: logging.handlers.QueueListener | None = None


def _stop_writer() -> None:
    """Write what is queued and stop the writer thread (at exit, or before a new configuration)."""
    if _listener is not None and _listener._thread is not None:
        _listener.stop()


def configure_logging(level: str = "INFO") -> None:
    """Send every log record (uvicorn's and the SDK's too) to stderr as JSON lines, written by a background
    thread that drains a queue (flushed at exit)."""
    global _listener
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(JsonFormatter())
    if _listener is None:
        atexit.register(_stop_writer)
    _stop_writer()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, writer)
    _listener.start()
    logging.basicConfig(level=level, handlers=[_DeferredHandler(records)], force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "mcp"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # One line per AuthZEN request is noise next to the kit's one line per tool call.
    logging.getLogger("httpx").setLevel(logging.WARNING)


class KitMetrics:
    """Per-tool counters and latency, in a registry of this app's own (no global state)."""

    def __init__(self, server: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._server = server
        self.calls = Counter("portcullis_kit_tool_calls", "Tool calls received", ["server", "tool"], registry=r)
        self.denials = Counter(
            "portcullis_kit_tool_denials", "Tool calls denied, by reason", ["server", "tool", "reason"], registry=r
        )
        self.errors = Counter(
            "portcullis_kit_tool_errors", "Tool calls that failed after being allowed", ["server", "tool"], registry=r
        )
        self.seconds = Histogram(
            "portcullis_kit_tool_seconds",
            "Tool call latency, decision included",
            ["server", "tool"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "portcullis_kit_decisions", "Decisions used, by result and cache", ["server", "result", "cache"], registry=r
        )
        self.refused = Counter(
            "portcullis_kit_requests_refused", "Requests refused before MCP, by error", ["server", "error"], registry=r
        )

    def tool_registered(self, tool: str) -> None:
        """Create a tool's series at start-up so dashboards read 0, not absent."""
        self.calls.labels(self._server, tool)
        self.errors.labels(self._server, tool)
        self.seconds.labels(self._server, tool)

    def observe_call(self, tool: str, seconds: float, *, denied_reason: str = "", failed: bool = False) -> None:
        self.calls.labels(self._server, tool).inc()
        self.seconds.labels(self._server, tool).observe(seconds)
        if denied_reason:
            self.denials.labels(self._server, tool, denied_reason).inc()
        if failed:
            self.errors.labels(self._server, tool).inc()

    def observe_decision(self, allowed: bool, cached: bool) -> None:
        self.decisions.labels(self._server, "allow" if allowed else "deny", "hit" if cached else "miss").inc()

    def observe_refused(self, error: str) -> None:
        self.refused.labels(self._server, error).inc()

    def exposition(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)

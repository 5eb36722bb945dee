"""The decision log: one JSON line per decision, written by a background thread.

The hot path only appends to an in-memory queue. The writer thread formats the records and appends
them to the log file in batches, each batch with one `write()` on an `O_APPEND` descriptor, so the worker
processes of one service can share a file without interleaving lines. Nothing is dropped silently: a
failed write is retried, and a batch that still cannot be written is counted and reported on stderr.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from authz_service.metrics import Metrics

__all__ = ["DecisionLog", "DecisionSink", "NullDecisionLog"]

_STOP = object()
_MAX_BATCH = 512
_WRITE_ATTEMPTS = 3


class DecisionSink(Protocol):
    """Where decisions go."""

    def submit(self, item: Any) -> None: ...


class NullDecisionLog:
    """Keeps nothing: for offline tools (`portcullis policy test/explain`) whose decisions are not real."""

    def submit(self, item: Any) -> None:
        pass


class DecisionLog:
    """Append-only JSON-lines writer fed through a queue; `"-"` writes to standard output."""

    def __init__(self, path: Path | str, *, formatter: Callable[[Any], dict[str, Any]], metrics: Metrics):
        self.path = str(path)
        self._format = formatter
        self._metrics = metrics
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        if self.path == "-":
            self._fd = sys.stdout.fileno()
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> None:
        """Queue one decision for the log (never blocks, never drops)."""
        self._queue.put(item)

    def close(self, timeout: float = 5.0) -> None:
        """Write everything queued so far, then stop the writer (idempotent)."""
        if not self._thread.is_alive():
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self.path != "-":
            os.close(self._fd)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while len(batch) < _MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(entry is _STOP for entry in batch)
            lines = []
            for entry in batch:
                if entry is _STOP:
                    continue
                try:
                    record = self._format(entry)
                    record["time"] = dt.datetime.fromtimestamp(record["time"], dt.UTC).isoformat(
                        timespec="microseconds"
                    )
                    lines.append(json.dumps(record, separators=(",", ":"), default=str))
                except Exception as exc:  # a record we cannot format is reported, not lost quietly
                    self._metrics.decision_log_failures.inc()
                    print(f"decision log: cannot format a record: {exc}", file=sys.stderr)
            if lines:
                self._write(("\n".join(lines) + "\n").encode(), len(lines))
            if stop:
                return

    def _write(self, data: bytes, count: int) -> None:
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                view = memoryview(data)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
                self._metrics.decision_log_lines.inc(count)
                return
            except OSError as exc:
                error = exc
                time.sleep(0.05 * (attempt + 1))
        self._metrics.decision_log_failures.inc(count)
        print(f"decision log: {count} records could not be written to {self.path}: {error}", file=sys.stderr)

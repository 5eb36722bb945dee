"""Tool usage per server, read from authz_service's decision log: calls, allowed, denied, distinct users.

The log is a JSON-lines file that only grows (or is rotated). `UsageIndex` remembers how far it read and
reads only what was appended since, so asking for a server's usage on every page view costs one `stat()`
and the new lines. A file that shrank or was replaced is read again from the start.

Counted: `action == "call"` decisions on `resource.type == "tool"` at the gateway (layer `edge`). Every tool
call crosses the gateway once; the same call is decided again inside the server (layer `server`), and the
registry asks `call` questions of its own to list usable tools, so counting other layers would over-count.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_WINDOW_DAYS", "ServerUsage", "ToolUsage", "UsageIndex"]

DEFAULT_WINDOW_DAYS = 30
_READ_CHUNK = 4 * 1024 * 1024
_ALLOWED = frozenset({"allow", "would_deny"})  # a shadow-mode "would deny" was let through: a call that happened


@dataclass(frozen=True)
class ToolUsage:
    """One tool's calls over the window."""

    tool: str
    calls: int = 0
    allowed: int = 0
    denied: int = 0
    users: int = 0


@dataclass(frozen=True)
class ServerUsage:
    """One server's tool calls over the window, per tool and in total."""

    route: str
    window_days: int
    tools: dict[str, ToolUsage]
    calls: int = 0
    allowed: int = 0
    denied: int = 0
    users: int = 0

    def tool(self, name: str) -> ToolUsage:
        return self.tools.get(name) or ToolUsage(name)


@dataclass
class _Day:
    calls: int = 0
    allowed: int = 0
    denied: int = 0
    users: set[str] = field(default_factory=set)


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _day_of(value: Any) -> dt.date | None:
    if isinstance(value, str) and len(value) >= 10:
        try:
            return dt.date.fromisoformat(value[:10])  # the log writes UTC ISO 8601 times
        except ValueError:
            return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.UTC).date()
    return None


class UsageIndex:
    """Incremental aggregation of a decision log, by (server route, tool) and UTC day.

    The window is the last `window_days` UTC days, today included. Safe to share between threads.
    """

    def __init__(
        self,
        path: Path,
        *,
        window_days: int = DEFAULT_WINDOW_DAYS,
        layers: Iterable[str] = ("edge",),
        today: Callable[[], dt.date] = _utc_today,
    ):
        if window_days < 1:
            raise ValueError("window_days must be at least 1")
        self.path = Path(path)
        self.window_days = window_days
        self._layers = frozenset(layers)
        self._today = today
        self._lock = threading.Lock()
        self._offset = 0
        self._identity: tuple[int, int] | None = None
        # route -> tool -> day -> counts
        self._days: dict[str, dict[str, dict[dt.date, _Day]]] = {}

    def server(self, route: str) -> ServerUsage:
        """Usage of one server's tools over the window (reading whatever the log gained since last asked)."""
        with self._lock:
            self._refresh()
            first = self._today() - dt.timedelta(days=self.window_days - 1)
            tools: dict[str, ToolUsage] = {}
            everyone: set[str] = set()
            for tool, days in self._days.get(route, {}).items():
                users: set[str] = set()
                calls = allowed = denied = 0
                for day, counts in days.items():
                    if day < first:
                        continue
                    calls += counts.calls
                    allowed += counts.allowed
                    denied += counts.denied
                    users |= counts.users
                if calls:
                    tools[tool] = ToolUsage(tool, calls, allowed, denied, len(users))
                    everyone |= users
        return ServerUsage(
            route=route,
            window_days=self.window_days,
            tools=tools,
            calls=sum(t.calls for t in tools.values()),
            allowed=sum(t.allowed for t in tools.values()),
            denied=sum(t.denied for t in tools.values()),
            users=len(everyone),
        )

    def _refresh(self) -> None:
        try:
            stat = os.stat(self.path)
        except OSError:
            self._reset(None)  # no log (yet): no usage
            return
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._offset:
            self._reset(identity)  # rotated, replaced or truncated: start over
        if stat.st_size == self._offset:
            return
        with open(self.path, "rb") as log:
            log.seek(self._offset)
            while True:
                chunk = log.read(_READ_CHUNK)
                end = chunk.rfind(b"\n")
                if end < 0:
                    return  # only a line still being written: read it once it is complete
                self._ingest(chunk[: end + 1])
                self._offset += end + 1
                log.seek(self._offset)
                if len(chunk) < _READ_CHUNK:
                    break
        self._prune()

    def _reset(self, identity: tuple[int, int] | None) -> None:
        self._identity = identity
        self._offset = 0
        self._days.clear()

    def _ingest(self, data: bytes) -> None:
        first = self._today() - dt.timedelta(days=self.window_days - 1)
        for line in data.splitlines():
            if b'"call"' not in line:
                continue  # most decisions are connects: skip them without parsing
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict) or record.get("action") != "call":
                continue
            if record.get("layer") not in self._layers:
                continue
            resource = record.get("resource")
            actor = record.get("actor")
            if not isinstance(resource, dict) or resource.get("type") != "tool":
                continue
            route, tool = resource.get("server"), resource.get("name")
            day = _day_of(record.get("time"))
            if not isinstance(route, str) or not isinstance(tool, str) or day is None or day < first:
                continue
            counts = self._days.setdefault(route, {}).setdefault(tool, {}).setdefault(day, _Day())
            counts.calls += 1
            result = record.get("result")
            if result in _ALLOWED:
                counts.allowed += 1
            elif result == "deny":
                counts.denied += 1
            user = actor.get("id") if isinstance(actor, dict) else None
            if isinstance(user, str) and user:
                counts.users.add(user)

    def _prune(self) -> None:
        first = self._today() - dt.timedelta(days=self.window_days - 1)
        for tools in self._days.values():
            for days in tools.values():
                for day in [day for day in days if day < first]:
                    del days[day]

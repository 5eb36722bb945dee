"""Why a task try failed, read from its log: the exception, a short traceback tail and the error lines.

Airflow 3 serves a try's log as structured entries (`{"timestamp", "level", "logger", "event", ...}`); the
task runner's "Task failed with exception" entry carries `error_detail`, structlog's dict of the exception
chain (the raised exception first, then its causes, each with its frames). Older or remote logs arrive as
plain lines, where a `Traceback (most recent call last):` block is found instead. Both give a `Diagnosis`
that `render` turns into a few readable lines. Pure functions: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Diagnosis", "ExceptionInfo", "LogLine", "diagnose", "parse_entries", "render"]

ERROR_LEVELS = frozenset({"error", "critical", "fatal", "exception"})
_GROUP_MARKERS = ("::group::", "::endgroup::")
_SOURCE_GROUP = "::group::Log message source details"
_TRACEBACK_HEADER = "Traceback (most recent call last):"
_TEXT_LEVEL = re.compile(r"\b(ERROR|CRITICAL|FATAL)\b")
_MAX_MESSAGE_CHARS = 2000


@dataclass(frozen=True)
class LogLine:
    """One log entry, flattened for reading."""

    timestamp: str
    level: str
    logger: str
    message: str
    error_detail: tuple[dict[str, Any], ...] = ()

    def readable(self) -> str:
        """`HH:MM:SS LEVEL logger: message` (the parts that are present; a long logger name by its last part)."""
        clock = self.timestamp[11:19] if len(self.timestamp) >= 19 else self.timestamp
        logger = self.logger.rsplit(".", 1)[-1] if self.logger.count(".") > 1 else self.logger
        head = " ".join(part for part in (clock, self.level.upper(), logger) if part)
        return f"{head}: {self.message}" if head else self.message


@dataclass(frozen=True)
class ExceptionInfo:
    """One exception of a chain: `kind: message`, and where it was raised (`File "...", line N, in f`)."""

    kind: str
    message: str
    frames: tuple[str, ...] = ()

    @property
    def headline(self) -> str:
        return f"{self.kind}: {self.message}" if self.message else self.kind


@dataclass(frozen=True)
class Diagnosis:
    """What a try's log says about its failure.

    Attributes:
        reason: one line (the exception, `caused by` its causes), else the last error line, else "".
        exceptions: the exception chain, the raised one first.
        traceback: a Python-style traceback tail ("" when the log holds none).
        error_lines: the log's error-level lines, readable.
        tail: the last lines of the log, readable.
    """

    reason: str
    exceptions: tuple[ExceptionInfo, ...] = ()
    traceback: str = ""
    error_lines: tuple[str, ...] = ()
    tail: tuple[str, ...] = field(default=())


def parse_entries(content: Iterable[Any]) -> list[LogLine]:
    """Airflow's log `content` as lines: structured entries, or plain strings (split at newlines)."""
    lines: list[LogLine] = []
    for entry in content:
        if isinstance(entry, dict):
            detail = entry.get("error_detail")
            details = tuple(item for item in detail if isinstance(item, dict)) if isinstance(detail, list) else ()
            message = str(entry.get("event", ""))
            exception = entry.get("exception")
            if isinstance(exception, str) and exception:
                message = f"{message}\n{exception}" if message else exception
            lines.append(
                LogLine(
                    timestamp=str(entry.get("timestamp") or ""),
                    level=str(entry.get("level") or ""),
                    logger=str(entry.get("logger") or ""),
                    message=message[:_MAX_MESSAGE_CHARS],
                    error_detail=details,
                )
            )
        elif isinstance(entry, str):
            lines.extend(LogLine("", "", "", text) for text in entry.splitlines() if text.strip())
        elif isinstance(entry, list | tuple):  # Airflow 2's [[host, text], ...]
            lines.extend(parse_entries(part for part in entry if isinstance(part, str)))
    return lines


def diagnose(lines: Sequence[LogLine], *, tail_lines: int = 20, frames: int = 6) -> Diagnosis:
    """The failure a log describes, with at most `frames` frames of the traceback and `tail_lines` of tail."""
    readable = _without_markers(lines)
    error_lines = tuple(line.readable() for line in readable if _is_error(line))
    tail = tuple(text for line in readable[-tail_lines:] for text in line.readable().splitlines()) if tail_lines else ()
    detailed = [line for line in readable if line.error_detail]
    if detailed:
        chain = tuple(_exception_of(item) for item in detailed[-1].error_detail)
        return Diagnosis(_reason(chain), chain, _render_traceback(chain, frames), error_lines, tail)
    chain, text = _text_traceback([text for line in readable for text in line.message.splitlines()], frames)
    if chain:
        return Diagnosis(_reason(chain), chain, text, error_lines, tail)
    reason = error_lines[-1] if error_lines else ""
    return Diagnosis(reason, (), "", error_lines, tail)


def render(diagnosis: Diagnosis, *, max_error_lines: int = 10, failed: bool = True) -> str:
    """The diagnosis as readable text: reason, traceback tail, error lines and log tail (`failed=False`: a try
    that succeeded, whose log shows no error, says so instead of a reason)."""
    if not failed and not diagnosis.error_lines:
        parts = ["No failure: the log shows no error."]
    else:
        parts = [f"Failure: {diagnosis.reason}" if diagnosis.reason else "Failure: the log shows no error."]
    if diagnosis.traceback:
        parts.append(diagnosis.traceback)
    if diagnosis.error_lines:
        shown = diagnosis.error_lines[-max_error_lines:]
        parts.append("Error lines:\n" + "\n".join(f"  {line}" for line in shown))
    if diagnosis.tail:
        parts.append(f"Log tail (last {len(diagnosis.tail)} lines):\n" + "\n".join(f"  {t}" for t in diagnosis.tail))
    return "\n\n".join(parts)


def _without_markers(lines: Sequence[LogLine]) -> list[LogLine]:
    """The lines without Airflow's `::group::` markers and the "log message source details" group (file paths)."""
    kept: list[LogLine] = []
    skipping = False
    for line in lines:
        if line.message.startswith(_GROUP_MARKERS):
            skipping = line.message == _SOURCE_GROUP
            continue
        if not skipping:
            kept.append(line)
    return kept


def _short_path(filename: str) -> str:
    """A frame's file without the installation's prefix (`.../site-packages/airflow/x.py` -> `airflow/x.py`)."""
    _, marker, rest = filename.rpartition("-packages/")
    return rest if marker else filename


def _is_error(line: LogLine) -> bool:
    if line.level:
        return line.level.lower() in ERROR_LEVELS
    return bool(_TEXT_LEVEL.search(line.message))


def _exception_of(item: dict[str, Any]) -> ExceptionInfo:
    frames = item.get("frames") if isinstance(item.get("frames"), list) else []
    where = tuple(_frame_text(frame) for frame in frames or [] if isinstance(frame, dict))
    return ExceptionInfo(str(item.get("exc_type") or "Exception"), str(item.get("exc_value") or ""), where)


def _frame_text(frame: dict[str, Any]) -> str:
    filename = _short_path(str(frame.get("filename", "?")))
    return f'File "{filename}", line {frame.get("lineno", "?")}, in {frame.get("name", "?")}'


def _reason(chain: Sequence[ExceptionInfo]) -> str:
    first, *causes = chain
    return "; caused by ".join([first.headline, *(cause.headline for cause in causes)])


def _render_traceback(chain: Sequence[ExceptionInfo], frames: int) -> str:
    # Python's order: the root cause first, the raised exception last.
    blocks = []
    for info in reversed(chain):
        shown = info.frames[-frames:] if frames else ()
        skipped = len(info.frames) - len(shown)
        head = _TRACEBACK_HEADER if not skipped else f"Traceback (most recent call last; {skipped} earlier frames cut):"
        body = "".join(f"\n  {frame}" for frame in shown)
        blocks.append(f"{head}{body}\n{info.headline}")
    return "\n\nThe above exception was the direct cause of the following exception:\n\n".join(blocks)


def _text_traceback(texts: Sequence[str], frames: int) -> tuple[tuple[ExceptionInfo, ...], str]:
    """The last `Traceback ...` block of plain lines: its exception and a tail of it, or ((), "")."""
    starts = [index for index, text in enumerate(texts) if text.strip() == _TRACEBACK_HEADER]
    if not starts:
        return (), ""
    start = starts[-1]
    indent = len(texts[start]) - len(texts[start].lstrip())
    body: list[str] = []
    exception_line = ""
    for text in texts[start + 1 :]:
        if len(text) - len(text.lstrip()) > indent:
            body.append(text.strip())
            continue
        exception_line = text.strip()
        break
    file_lines = [index for index, text in enumerate(body) if text.startswith("File ")]
    cut = file_lines[-frames] if frames and len(file_lines) > frames else 0
    kept = body[cut:]
    kind, _, message = exception_line.partition(": ")
    where = tuple(line for line in kept if line.startswith("File "))
    info = ExceptionInfo(kind or "an exception (the log cuts off before its name)", message.strip(), where)
    head = (
        _TRACEBACK_HEADER
        if not cut
        else f"Traceback (most recent call last; {len(file_lines) - frames} earlier frames cut):"
    )
    text = head + "".join(f"\n  {line}" if line.startswith("File ") else f"\n    {line}" for line in kept)
    return (info,), f"{text}\n{exception_line}" if exception_line else text

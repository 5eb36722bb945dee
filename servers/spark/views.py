"""What the tools return, built from the History Server's JSON documents (pure functions, no I/O).

An application's status is judged from its jobs, never from its exit code: a driver that catches a failed
job's exception (a scheduler's wrapper, a `try` around `save()`) exits 0 and its attempt reads `completed`,
yet the job failed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "FAILED",
    "application_row",
    "application_status",
    "application_summary",
    "error_excerpt",
    "error_headline",
    "executor_view",
    "failures_view",
    "format_bytes",
    "format_duration",
    "is_out_of_memory",
    "number",
    "stage_label",
]

FAILED = "FAILED"
_HEADLINE_CHARS = 300
_EXCERPT_LINES = 12
_EXCERPT_CHARS = 2_000
_FRAME = re.compile(r"^\s*(at |\.\.\. \d+ more)")
_OUT_OF_MEMORY = re.compile(
    r"OutOfMemoryError|Java heap space|GC overhead limit exceeded|Direct buffer memory"
    r"|Container killed[^\n]*memory|exceeding memory limits|physical memory used|memoryOverhead"
    r"|exit code (is )?137|possible container OOM|OOMKilled|\bMemoryError\b|Unable to acquire \d+ bytes of memory",
    re.IGNORECASE,
)


def number(document: Mapping[str, Any], key: str) -> float:
    """A numeric field, 0 when absent or not a number."""
    value = document.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def format_bytes(size: float) -> str:
    """`1536` -> `1.5 KiB`."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(milliseconds: float) -> str:
    """`1234` -> `1.2 s`, `95_000` -> `1 min 35 s`, `7_500_000` -> `2 h 5 min`."""
    ms = max(0.0, float(milliseconds))
    if ms < 1_000:
        return f"{ms:.0f} ms"
    seconds = ms / 1_000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, second = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {second} s"
    hours, minute = divmod(minutes, 60)
    return f"{hours} h {minute} min"


def error_headline(text: str) -> str:
    """The one line that says what went wrong: the exception of a Python traceback, else the first line."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    headline = lines[0]
    for index, line in enumerate(lines):
        if "Traceback (most recent call last)" in line:
            headline = _python_exception(lines[index + 1 :]) or headline
            break
    return _clip(headline.strip(), _HEADLINE_CHARS)


def _python_exception(lines: list[str]) -> str:
    # The exception line is the last unindented line of the traceback, before the JVM frames resume.
    found = ""
    for line in lines:
        if _FRAME.match(line):
            break
        if line[:1] not in (" ", "\t") and not line.startswith(("During handling", "The above exception")):
            found = line
    return found


def error_excerpt(text: str) -> str:
    """An error message without its JVM stack frames, a few lines at most."""
    kept = [line.rstrip() for line in text.splitlines() if line.strip() and not _FRAME.match(line)]
    return _clip("\n".join(kept[:_EXCERPT_LINES]), _EXCERPT_CHARS)


def is_out_of_memory(text: str) -> bool:
    """Whether an error says memory ran out: a JVM or Python OOM, or a container killed for its memory."""
    return bool(_OUT_OF_MEMORY.search(text))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def stage_label(stage: Mapping[str, Any]) -> str:
    """`stage 2.0 (save at Job.scala:12)`: the stage id, its attempt and its name."""
    name = str(stage.get("name") or "").strip()
    label = f"stage {stage.get('stageId')}.{stage.get('attemptId', 0)}"
    return f"{label} ({name})" if name else label


def application_status(attempt: Mapping[str, Any], jobs: Iterable[Mapping[str, Any]]) -> str:
    """`failed` when a job failed (whatever the exit code), `incomplete` when the event log has no end (still
    running, or the driver died), else `succeeded`."""
    if any(job.get("status") == FAILED for job in jobs):
        return "failed"
    if not attempt.get("completed", False):
        return "incomplete"
    return "succeeded"


def _count_by_status(items: Iterable[Mapping[str, Any]], statuses: Iterable[str]) -> dict[str, int]:
    items = list(items)
    counts = {status.lower(): sum(1 for item in items if item.get("status") == status) for status in statuses}
    return {"total": len(items), **counts}


def application_row(document: Mapping[str, Any], jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """One line of the application list."""
    attempts = document.get("attempts") or [{}]
    attempt: Mapping[str, Any] = attempts[0] if isinstance(attempts[0], Mapping) else {}
    duration = number(attempt, "duration")
    return {
        "id": document.get("id"),
        "name": document.get("name"),
        "status": application_status(attempt, jobs),
        "user": attempt.get("sparkUser"),
        "start": attempt.get("startTime"),
        "end": attempt.get("endTime") if attempt.get("completed") else None,
        "duration_ms": int(duration),
        "duration": format_duration(duration),
        "jobs": _count_by_status(jobs, ("SUCCEEDED", FAILED, "RUNNING")),
    }


def application_summary(
    document: Mapping[str, Any],
    jobs: list[dict[str, Any]],
    stages: list[dict[str, Any]],
    executors: list[dict[str, Any]],
) -> dict[str, Any]:
    """The application at a glance: status, jobs, stages, tasks, executors and data moved."""
    row = application_row(document, jobs)
    attempts = document.get("attempts") or [{}]
    attempt: Mapping[str, Any] = attempts[0] if isinstance(attempts[0], Mapping) else {}
    row["spark_version"] = attempt.get("appSparkVersion")
    row["attempts"] = len(document.get("attempts") or [])
    if "exitCode" in attempt:
        row["exit_code"] = attempt["exitCode"]
    row["stages"] = _count_by_status(stages, ("COMPLETE", FAILED, "SKIPPED", "ACTIVE", "PENDING"))
    row["tasks"] = {
        "completed": int(sum(number(stage, "numCompleteTasks") for stage in stages)),
        "failed": int(sum(number(stage, "numFailedTasks") for stage in stages)),
        "killed": int(sum(number(stage, "numKilledTasks") for stage in stages)),
    }
    row["executors"] = {
        "count": sum(1 for executor in executors if executor.get("id") != "driver") or len(executors),
        "cores": int(sum(number(executor, "totalCores") for executor in executors)),
    }
    totals = {key: sum(number(stage, key) for stage in stages) for key in _STAGE_TOTALS}
    row["data"] = {label: format_bytes(totals[key]) for key, label in _STAGE_TOTALS.items()}
    if row["status"] == "failed" and attempt.get("completed"):
        exit_code = attempt.get("exitCode", 0)
        row["note"] = (
            f"the driver finished normally (exit code {exit_code}), but {row['jobs']['failed']} job(s) failed: "
            "the application failed"
        )
    return row


_STAGE_TOTALS = {
    "inputBytes": "input",
    "outputBytes": "output",
    "shuffleReadBytes": "shuffle_read",
    "shuffleWriteBytes": "shuffle_write",
    "memoryBytesSpilled": "spilled_from_memory",
    "diskBytesSpilled": "spilled_to_disk",
}


def _task_failure(task: Mapping[str, Any]) -> dict[str, Any]:
    error = str(task.get("errorMessage") or "")
    return {
        "task": task.get("taskId"),
        "partition": task.get("index"),
        "attempt": task.get("attempt"),
        "executor": task.get("executorId"),
        "host": task.get("host"),
        "error": error_headline(error),
        "out_of_memory": is_out_of_memory(error),
        "details": error_excerpt(error),
    }


def failures_view(
    jobs: list[dict[str, Any]],
    stages: list[dict[str, Any]],
    failed_tasks: Mapping[tuple[int, int], list[dict[str, Any]]],
) -> dict[str, Any]:
    """Failed jobs, failed stages with their failure reason, and the failed tasks' errors (completed stages
    whose tasks failed before a retry succeeded included)."""
    failed_jobs = [
        {
            "job": job.get("jobId"),
            "name": job.get("name"),
            "stages": job.get("stageIds", []),
            "failed_tasks": job.get("numFailedTasks", 0),
            "submitted": job.get("submissionTime"),
            "completed": job.get("completionTime"),
        }
        for job in jobs
        if job.get("status") == FAILED
    ]
    stage_rows = []
    for stage in stages:
        key = (int(number(stage, "stageId")), int(number(stage, "attemptId")))
        if stage.get("status") != FAILED and key not in failed_tasks:
            continue
        reason = str(stage.get("failureReason") or "")
        stage_rows.append(
            {
                "stage": stage.get("stageId"),
                "attempt": stage.get("attemptId"),
                "name": stage.get("name"),
                "status": stage.get("status"),
                "failed_tasks": stage.get("numFailedTasks", 0),
                "failure_reason": error_headline(reason) if reason else None,
                "out_of_memory": is_out_of_memory(reason) if reason else False,
                "failure_details": error_excerpt(reason) if reason else None,
                "task_failures": [_task_failure(task) for task in failed_tasks.get(key, [])],
            }
        )
    return {"failed_jobs": failed_jobs, "failed_stages": stage_rows}


def executor_view(executor: Mapping[str, Any]) -> dict[str, Any]:
    """One executor: memory, cores, tasks, GC time."""
    duration, gc = number(executor, "totalDuration"), number(executor, "totalGCTime")
    view: dict[str, Any] = {
        "id": executor.get("id"),
        "host": executor.get("hostPort"),
        "active": executor.get("isActive"),
        "cores": executor.get("totalCores"),
        "max_tasks": executor.get("maxTasks"),
        "storage_memory": format_bytes(number(executor, "maxMemory")),
        "storage_memory_used": format_bytes(number(executor, "memoryUsed")),
        "disk_used": format_bytes(number(executor, "diskUsed")),
        "tasks": {
            "total": executor.get("totalTasks", 0),
            "completed": executor.get("completedTasks", 0),
            "failed": executor.get("failedTasks", 0),
            "active": executor.get("activeTasks", 0),
        },
        "task_time": format_duration(duration),
        "gc_time": format_duration(gc),
        "gc_share": round(gc / duration, 3) if duration else 0.0,
        "input": format_bytes(number(executor, "totalInputBytes")),
        "shuffle_read": format_bytes(number(executor, "totalShuffleRead")),
        "shuffle_write": format_bytes(number(executor, "totalShuffleWrite")),
    }
    peak = executor.get("peakMemoryMetrics")
    if isinstance(peak, Mapping) and number(peak, "JVMHeapMemory"):
        view["peak_jvm_heap"] = format_bytes(number(peak, "JVMHeapMemory"))
    if executor.get("removeReason"):
        view["removed"] = {"at": executor.get("removeTime"), "reason": executor.get("removeReason")}
    return view

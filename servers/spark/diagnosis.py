"""Why an application failed or ran slowly, in plain words, from the History Server's documents (no I/O).

The evidence is what `/api/v1` serves: jobs, stage attempts (with `failureReason` and spill and GC totals),
the failed tasks of the stages where tasks failed, the task-metric quantiles (`taskSummary`) of the heaviest
stages, and the executors. Each finding names the stage and says what it means and what usually helps.

Thresholds are deliberately coarse: skew is a task 3x the median and large in absolute terms (so a 40 ms
straggler is not news), GC pressure is 10% of task time and at least 10 s of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from servers.spark.views import (
    FAILED,
    application_status,
    error_headline,
    format_bytes,
    format_duration,
    is_out_of_memory,
    number,
    stage_label,
)

__all__ = [
    "QUANTILES",
    "Diagnosis",
    "Evidence",
    "Finding",
    "diagnose",
    "gc_findings",
    "skew_finding",
    "spill_finding",
    "stages_to_inspect",
]

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)  # what to ask taskSummary for: the median and the maximum are read
SKEW_RATIO = 3.0
SKEW_MIN_RECORDS = 10_000
SKEW_MIN_BYTES = 64 * 1024 * 1024
SKEW_MIN_EXCESS_MS = 5_000
GC_SHARE = 0.10
GC_MIN_MS = 10_000
HEAVY_STAGE_SHARE = 0.5
MAX_STAGES_TO_SUMMARIZE = 5
MAX_STAGES_WITH_FAILED_TASKS = 5

StageKey = tuple[int, int]


@dataclass(frozen=True)
class Finding:
    """One thing worth saying. `severity`: error (why it failed), warning (why it is slow or fragile), info."""

    kind: str
    severity: str
    message: str
    stage: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity, "stage": self.stage, "message": self.message}


@dataclass(frozen=True)
class Evidence:
    """What the History Server told about one application."""

    application: Mapping[str, Any]
    jobs: list[dict[str, Any]]
    stages: list[dict[str, Any]]
    executors: list[dict[str, Any]] = field(default_factory=list)
    failed_tasks: Mapping[StageKey, list[dict[str, Any]]] = field(default_factory=dict)
    summaries: Mapping[StageKey, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def attempt(self) -> Mapping[str, Any]:
        attempts = self.application.get("attempts") or [{}]
        first = attempts[0]
        return first if isinstance(first, Mapping) else {}


@dataclass(frozen=True)
class Diagnosis:
    """The verdict, one sentence that says it, and the findings behind it."""

    status: str
    verdict: str
    headline: str
    findings: list[Finding]

    def as_dict(self) -> dict[str, Any]:
        lines = [self.headline] + [f"- {finding.message}" for finding in self.findings]
        return {
            "status": self.status,
            "verdict": self.verdict,
            "headline": self.headline,
            "explanation": "\n".join(lines),
            "findings": [finding.as_dict() for finding in self.findings],
        }


def _key(stage: Mapping[str, Any]) -> StageKey:
    return int(number(stage, "stageId")), int(number(stage, "attemptId"))


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _stage_id(stage: Mapping[str, Any]) -> str:
    return f"{int(number(stage, 'stageId'))}.{int(number(stage, 'attemptId'))}"


def stages_to_inspect(stages: Iterable[Mapping[str, Any]]) -> tuple[list[StageKey], list[StageKey]]:
    """Which stage attempts to fetch more about: (failed tasks of, task summaries of).

    Failed tasks: the stages with failed tasks, failed stages first. Summaries: the heaviest stages (by task
    time) that ran at least two tasks, where a distribution means something.
    """
    stages = [stage for stage in stages if stage.get("status") in ("COMPLETE", FAILED)]
    with_failures = sorted(
        (stage for stage in stages if number(stage, "numFailedTasks") > 0),
        key=lambda stage: (stage.get("status") != FAILED, -number(stage, "numFailedTasks")),
    )
    heavy = sorted(
        (stage for stage in stages if number(stage, "numTasks") >= 2),
        key=lambda stage: -number(stage, "executorRunTime"),
    )
    return (
        [_key(stage) for stage in with_failures[:MAX_STAGES_WITH_FAILED_TASKS]],
        [_key(stage) for stage in heavy[:MAX_STAGES_TO_SUMMARIZE]],
    )


def _quantile(summary: Mapping[str, Any], values: Any, q: float) -> float | None:
    quantiles = summary.get("quantiles")
    if not isinstance(quantiles, list) or not isinstance(values, list) or q not in quantiles:
        return None
    index = quantiles.index(q)
    value = values[index] if index < len(values) else None
    return float(value) if isinstance(value, int | float) else None


def _nested(summary: Mapping[str, Any], *path: str) -> Any:
    value: Any = summary
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


# (what, path in taskSummary, the minimum maximum that matters, how to print it)
_SKEW_METRICS: tuple[tuple[str, tuple[str, ...], float, str], ...] = (
    ("shuffle records", ("shuffleReadMetrics", "readRecords"), SKEW_MIN_RECORDS, "records"),
    ("of shuffle data", ("shuffleReadMetrics", "readBytes"), SKEW_MIN_BYTES, "bytes"),
    ("input records", ("inputMetrics", "recordsRead"), SKEW_MIN_RECORDS, "records"),
    ("of input", ("inputMetrics", "bytesRead"), SKEW_MIN_BYTES, "bytes"),
)


def _amount(value: float, unit: str) -> str:
    return format_bytes(value) if unit == "bytes" else f"{value:,.0f}"


def skew_finding(stage: Mapping[str, Any], summary: Mapping[str, Any]) -> Finding | None:
    """Data skew in one stage: its largest task far above the median task, in data read or in duration."""
    if number(stage, "numTasks") < 2:
        return None
    evidence: list[str] = []
    for what, path, minimum, unit in _SKEW_METRICS:
        values = _nested(summary, *path)
        median, largest = _quantile(summary, values, 0.5), _quantile(summary, values, 1.0)
        if median is None or largest is None or largest < minimum:
            continue
        if largest >= SKEW_RATIO * max(median, 1.0):
            ratio = f"{largest / median:.1f}x the median task's" if median else "while the median task read none"
            evidence.append(f"its largest task read {_amount(largest, unit)} {what}, {ratio} {_amount(median, unit)}")
            break  # one data metric is enough evidence; records and bytes say the same thing
    durations = summary.get("duration")
    median, largest = _quantile(summary, durations, 0.5), _quantile(summary, durations, 1.0)
    if median is not None and largest is not None and largest - median >= SKEW_MIN_EXCESS_MS:
        if largest >= SKEW_RATIO * max(median, 1.0):
            evidence.append(
                f"its slowest task ran {format_duration(largest)} against a median {format_duration(median)}"
            )
    if not evidence:
        return None
    message = (
        f"Data skew in {stage_label(stage)}: {'; '.join(evidence)}. A few keys or partitions hold most of the "
        "data, so one task does most of the work while the others wait. Salt or pre-aggregate the hot keys, "
        "repartition on a better-spread key, or enable adaptive execution's skew handling "
        "(spark.sql.adaptive.enabled, spark.sql.adaptive.skewJoin.enabled)."
    )
    return Finding("data_skew", "warning", message, _stage_id(stage))


def spill_finding(stage: Mapping[str, Any]) -> Finding | None:
    """Spill in one stage: its tasks ran out of execution memory and wrote intermediate data to disk."""
    memory, disk = number(stage, "memoryBytesSpilled"), number(stage, "diskBytesSpilled")
    if disk <= 0 and memory <= 0:
        return None
    message = (
        f"{_sentence(stage_label(stage))} spilled {format_bytes(memory)} from memory, {format_bytes(disk)} "
        "written to disk: its tasks ran out of execution memory and sorted or aggregated through disk, which "
        "slows them down. Use more, smaller partitions (spark.sql.shuffle.partitions) or give executors more "
        "memory (spark.executor.memory, spark.memory.fraction)."
    )
    return Finding("spill", "warning", message, _stage_id(stage))


def gc_findings(stages: Iterable[Mapping[str, Any]], executors: Iterable[Mapping[str, Any]]) -> list[Finding]:
    """Long garbage collection: stages or executors that spent a large share of their task time in GC."""
    findings = []
    for stage in stages:
        gc, run = number(stage, "jvmGcTime"), number(stage, "executorRunTime")
        if gc >= GC_MIN_MS and run and gc / run >= GC_SHARE:
            message = (
                f"Long GC in {stage_label(stage)}: {format_duration(gc)} of {format_duration(run)} task time "
                f"({gc / run:.0%}) went to JVM garbage collection. The heap is too small for what the tasks hold; "
                "give executors more memory, use more partitions, or cache less."
            )
            findings.append(Finding("long_gc", "warning", message, _stage_id(stage)))
    for executor in executors:
        gc, run = number(executor, "totalGCTime"), number(executor, "totalDuration")
        if gc >= GC_MIN_MS and run and gc / run >= GC_SHARE:
            message = (
                f"Long GC on executor {executor.get('id')}: {format_duration(gc)} of {format_duration(run)} task "
                f"time ({gc / run:.0%}) went to garbage collection."
            )
            findings.append(Finding("long_gc", "warning", message))
    return findings


def _failure_findings(evidence: Evidence) -> list[Finding]:
    findings = []
    stages = {_key(stage): stage for stage in evidence.stages}
    for job in evidence.jobs:
        if job.get("status") != FAILED:
            continue
        failed = [
            _stage_id(stage)
            for stage in evidence.stages
            if stage.get("status") == FAILED and stage.get("stageId") in (job.get("stageIds") or [])
        ]
        because = f": {'stage' if len(failed) == 1 else 'stages'} {', '.join(failed)} failed" if failed else ""
        message = f"Job {job.get('jobId')} ({job.get('name')}) failed{because}."
        findings.append(Finding("failed_job", "error", message))
    for stage in evidence.stages:
        if stage.get("status") == FAILED:
            reason = error_headline(str(stage.get("failureReason") or "")) or "no reason recorded"
            message = f"{_sentence(stage_label(stage))} failed: {reason}"
            findings.append(Finding("failed_stage", "error", message, _stage_id(stage)))
    for key, tasks in evidence.failed_tasks.items():
        stage = stages.get(key, {"stageId": key[0], "attemptId": key[1]})
        findings.extend(_task_failure_findings(stage, tasks))
    return findings


def _task_failure_findings(stage: Mapping[str, Any], tasks: list[dict[str, Any]]) -> list[Finding]:
    errors = Counter(error_headline(str(task.get("errorMessage") or "")) or "no error recorded" for task in tasks)
    retried = stage.get("status") != FAILED
    findings = []
    for error, count in errors.most_common():
        attempts = "task attempt" if count == 1 else "task attempts"
        if retried:
            message = f"In {stage_label(stage)}, {count} {attempts} failed before a retry succeeded: {error}"
        else:
            message = f"In {stage_label(stage)}, {count} {attempts} failed with: {error}"
        findings.append(Finding("task_failure", "warning" if retried else "error", message, _stage_id(stage)))
    return findings


def _out_of_memory_findings(evidence: Evidence) -> list[Finding]:
    sources: list[tuple[str, str]] = []
    for stage in evidence.stages:
        sources.append((stage_label(stage), str(stage.get("failureReason") or "")))
    for key, tasks in evidence.failed_tasks.items():
        sources += [(f"a task of stage {key[0]}.{key[1]}", str(task.get("errorMessage") or "")) for task in tasks]
    for executor in evidence.executors:
        sources.append((f"executor {executor.get('id')}", str(executor.get("removeReason") or "")))
    findings, said = [], set()
    for where, text in sources:
        if not text or not is_out_of_memory(text):
            continue
        headline = error_headline(text)
        if headline in said:
            continue
        said.add(headline)
        message = (
            f"Out of memory in {where}: {headline}. Give executors more memory (spark.executor.memory; "
            "spark.executor.memoryOverhead when the container manager killed them), use more, smaller "
            "partitions, and avoid collecting large results to the driver."
        )
        findings.append(Finding("out_of_memory", "error", message))
    return findings


def _heaviest_stage_finding(stages: list[dict[str, Any]]) -> Finding | None:
    ran = [stage for stage in stages if number(stage, "executorRunTime") > 0]
    total = sum(number(stage, "executorRunTime") for stage in ran)
    if len(ran) < 2 or not total:
        return None
    heaviest = max(ran, key=lambda stage: number(stage, "executorRunTime"))
    share = number(heaviest, "executorRunTime") / total
    if share < HEAVY_STAGE_SHARE:
        return None
    message = (
        f"Most of the work was {stage_label(heaviest)}: {format_duration(number(heaviest, 'executorRunTime'))} "
        f"of {format_duration(total)} task time ({share:.0%})."
    )
    return Finding("heaviest_stage", "info", message, _stage_id(heaviest))


def diagnose(evidence: Evidence) -> Diagnosis:
    """The diagnosis of one application: failures first (with out-of-memory called out), then skew, spill and
    GC, then where the time went."""
    status = application_status(evidence.attempt, evidence.jobs)
    findings = _out_of_memory_findings(evidence) + _failure_findings(evidence)
    stages = {_key(stage): stage for stage in evidence.stages}
    for key, summary in evidence.summaries.items():
        skew = skew_finding(stages[key], summary) if key in stages else None
        if skew:
            findings.append(skew)
    findings += [spill for spill in map(spill_finding, evidence.stages) if spill]
    findings += gc_findings(evidence.stages, evidence.executors)
    heaviest = _heaviest_stage_finding(evidence.stages)
    if heaviest:
        findings.append(heaviest)
    verdict = _verdict(status, findings)
    return Diagnosis(status, verdict, _headline(evidence, status, findings), findings)


def _verdict(status: str, findings: list[Finding]) -> str:
    if status in ("failed", "incomplete"):
        return status
    return "succeeded with warnings" if any(f.severity == "warning" for f in findings) else "healthy"


def _headline(evidence: Evidence, status: str, findings: list[Finding]) -> str:
    name = f"{evidence.application.get('name')} ({evidence.application.get('id')})"
    duration = format_duration(number(evidence.attempt, "duration"))
    if status == "failed":
        failed_jobs = sum(1 for job in evidence.jobs if job.get("status") == FAILED)
        cause = next((f for f in findings if f.kind == "out_of_memory"), None) or next(
            (f for f in findings if f.kind in ("failed_stage", "task_failure")), None
        )
        because = f" The cause: {cause.message}" if cause else ""
        exit_note = ""
        if evidence.attempt.get("completed"):
            code = evidence.attempt.get("exitCode", 0)
            exit_note = f" even though its driver finished normally (exit code {code})"
        return f"{name} failed{exit_note}: {failed_jobs} of {len(evidence.jobs)} job(s) failed.{because}"
    if status == "incomplete":
        return (
            f"{name} has not finished after {duration}: it is still running, or its driver died without closing "
            "its event log."
        )
    warnings = [f for f in findings if f.severity == "warning"]
    if warnings:
        kinds = ", ".join(sorted({f.kind.replace("_", " ") for f in warnings}))
        return f"{name} succeeded in {duration}, with {len(warnings)} warning(s) ({kinds})."
    return f"{name} succeeded in {duration}; nothing looks wrong."

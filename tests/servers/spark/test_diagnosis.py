"""The diagnosis and the views, on small History Server documents (no backend)."""

from __future__ import annotations

from typing import Any

import pytest

from servers.spark.diagnosis import (
    Evidence,
    diagnose,
    gc_findings,
    skew_finding,
    spill_finding,
    stages_to_inspect,
)
from servers.spark.views import (
    application_status,
    error_excerpt,
    error_headline,
    failures_view,
    format_bytes,
    format_duration,
    is_out_of_memory,
)

PYTHON_ERROR = (
    "org.apache.spark.api.python.PythonException: [PYTHON_EXCEPTION] An exception was thrown from the Python "
    'worker: Traceback (most recent call last):\n  File "/jobs/etl.py", line 12, in parse\n'
    '    raise ValueError("bad row")\nValueError: bad row\n SQLSTATE: 38000\n'
    "\tat org.apache.spark.api.python.BasePythonRunner$ReaderIterator.handlePythonException(PythonRunner.scala:1097)\n"
    "\tat java.base/java.lang.Thread.run(Thread.java:840)\n"
)
JAVA_OOM = (
    "Job aborted due to stage failure: Task 3 in stage 4.0 failed 4 times, most recent failure: Lost task 3.3 in "
    "stage 4.0 (TID 41) (10.0.0.7 executor 2): java.lang.OutOfMemoryError: Java heap space\n"
    "\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)\n"
)
YARN_KILL = (
    "ExecutorLostFailure (executor 5 exited caused by one of the running tasks) Reason: Container killed by YARN "
    "for exceeding memory limits. 10.4 GB of 10 GB physical memory used."
)


def app(completed: bool = True, exit_code: int = 0, duration: int = 60_000) -> dict[str, Any]:
    attempt = {"completed": completed, "exitCode": exit_code, "duration": duration, "sparkUser": "etl"}
    return {"id": "app-1", "name": "etl", "attempts": [attempt]}


def stage(stage_id: int, status: str = "COMPLETE", **metrics: Any) -> dict[str, Any]:
    return {"stageId": stage_id, "attemptId": 0, "status": status, "name": f"step {stage_id}", "numTasks": 8, **metrics}


def summary(**metrics: Any) -> dict[str, Any]:
    """A taskSummary with quantiles (0, 0.5, 1)."""
    return {"quantiles": [0.0, 0.5, 1.0], **metrics}


@pytest.mark.parametrize(
    ("completed", "jobs", "status"),
    [
        (True, [{"status": "SUCCEEDED"}, {"status": "FAILED"}], "failed"),
        (True, [{"status": "SUCCEEDED"}], "succeeded"),
        (True, [], "succeeded"),
        (False, [{"status": "RUNNING"}], "incomplete"),
        (False, [{"status": "FAILED"}], "failed"),
    ],
)
def test_the_status_is_judged_from_the_jobs(completed: bool, jobs: list[dict[str, Any]], status: str) -> None:
    assert application_status({"completed": completed, "exitCode": 0}, jobs) == status


def test_the_headline_of_a_python_error_is_its_exception_line() -> None:
    assert error_headline(PYTHON_ERROR) == "ValueError: bad row"


def test_the_headline_of_a_jvm_error_is_its_first_line() -> None:
    assert error_headline(JAVA_OOM).endswith("(10.0.0.7 executor 2): java.lang.OutOfMemoryError: Java heap space")
    assert error_headline("") == ""


def test_the_excerpt_leaves_the_stack_frames_out() -> None:
    excerpt = error_excerpt(PYTHON_ERROR)
    assert "ValueError: bad row" in excerpt and "\tat " not in excerpt and "Thread.java" not in excerpt


@pytest.mark.parametrize(
    ("error", "oom"),
    [
        (JAVA_OOM, True),
        (YARN_KILL, True),
        ("java.lang.OutOfMemoryError: GC overhead limit exceeded", True),
        ("The executor with id 2 exited with exit code 137(SIGKILL, possible container OOM).", True),
        ("Container killed on request. Exit code is 137", True),
        ("MemoryError", True),
        ("org.apache.spark.memory.SparkOutOfMemoryError: Unable to acquire 65536 bytes of memory, got 0", True),
        (PYTHON_ERROR, False),
        ("java.io.FileNotFoundException: s3://bucket/part-0001 (No such file)", False),
    ],
)
def test_out_of_memory_is_recognised_from_the_error_text(error: str, oom: bool) -> None:
    assert is_out_of_memory(error) is oom


def test_a_shuffle_skew_is_found_from_the_records_distribution() -> None:
    skewed = summary(shuffleReadMetrics={"readRecords": [4_000.0, 16_000.0, 172_000.0]}, duration=[30.0, 190.0, 450.0])
    finding = skew_finding(stage(1), skewed)
    assert finding is not None and finding.kind == "data_skew" and finding.stage == "1.0"
    assert "its largest task read 172,000 shuffle records, 10.8x the median task's 16,000" in finding.message


def test_a_straggler_task_is_skew_when_it_is_long_in_absolute_terms() -> None:
    finding = skew_finding(stage(2), summary(duration=[1_000.0, 2_000.0, 120_000.0]))
    assert finding is not None and "its slowest task ran 2 min 0 s against a median 2.0 s" in finding.message
    assert skew_finding(stage(2), summary(duration=[10.0, 20.0, 400.0])) is None  # 20x, but 0.4 s is no news


def test_small_or_even_stages_are_not_skewed() -> None:
    even = summary(shuffleReadMetrics={"readRecords": [90_000.0, 100_000.0, 110_000.0]})
    small = summary(inputMetrics={"recordsRead": [0.0, 10.0, 5_000.0]})
    assert skew_finding(stage(3), even) is None
    assert skew_finding(stage(3), small) is None
    assert skew_finding(stage(3, numTasks=1), summary(duration=[0.0, 1.0, 900_000.0])) is None


def test_a_skew_where_the_median_task_read_nothing_is_still_found() -> None:
    finding = skew_finding(stage(4), summary(inputMetrics={"recordsRead": [0.0, 0.0, 2_000_000.0]}))
    assert finding is not None and "while the median task read none" in finding.message


def test_spill_is_reported_with_its_sizes() -> None:
    finding = spill_finding(stage(5, memoryBytesSpilled=16 * 1024**2, diskBytesSpilled=110_548))
    assert finding is not None
    assert finding.message.startswith("Stage 5.0 (step 5) spilled 16.0 MiB from memory, 108.0 KiB written to disk")
    assert spill_finding(stage(5, memoryBytesSpilled=0, diskBytesSpilled=0)) is None


def test_long_gc_is_found_in_stages_and_executors() -> None:
    stages = [stage(6, jvmGcTime=30_000, executorRunTime=100_000), stage(7, jvmGcTime=500, executorRunTime=1_000)]
    executors = [{"id": "3", "totalGCTime": 60_000, "totalDuration": 200_000}, {"id": "4", "totalGCTime": 0}]
    messages = [finding.message for finding in gc_findings(stages, executors)]
    assert len(messages) == 2
    assert messages[0].startswith("Long GC in stage 6.0 (step 6): 30.0 s of 1 min 40 s task time (30%)")
    assert messages[1].startswith("Long GC on executor 3: 1 min 0 s of 3 min 20 s task time (30%)")


def test_the_stages_to_inspect_are_those_with_failed_tasks_and_the_heaviest() -> None:
    stages = [
        stage(0, executorRunTime=10),
        stage(1, status="FAILED", numFailedTasks=1, executorRunTime=50),
        stage(2, numFailedTasks=3, executorRunTime=500),
        stage(3, status="SKIPPED", executorRunTime=0),
        stage(4, numTasks=1, executorRunTime=900),
    ]
    with_failures, heavy = stages_to_inspect(stages)
    assert with_failures == [(1, 0), (2, 0)]
    assert heavy == [(2, 0), (1, 0), (0, 0)]


def test_an_oom_failure_is_diagnosed_as_out_of_memory_first() -> None:
    failed = stage(4, status="FAILED", failureReason=JAVA_OOM, numFailedTasks=4)
    evidence = Evidence(
        application=app(exit_code=0),
        jobs=[{"jobId": 2, "name": "save", "status": "FAILED", "stageIds": [3, 4]}],
        stages=[stage(3), failed],
        executors=[{"id": "5", "removeReason": YARN_KILL}],
        failed_tasks={(4, 0): [{"taskId": 41, "errorMessage": JAVA_OOM}] * 4},
    )
    diagnosis = diagnose(evidence).as_dict()
    assert diagnosis["verdict"] == "failed"
    assert diagnosis["headline"].startswith("etl (app-1) failed even though its driver finished normally (exit code 0)")
    assert "The cause: Out of memory in stage 4.0 (step 4)" in diagnosis["headline"]
    kinds = [finding["kind"] for finding in diagnosis["findings"]]
    assert kinds[:2] == ["out_of_memory", "out_of_memory"]  # the stage's OOM and the executor killed by YARN
    assert "In stage 4.0 (step 4), 4 task attempts failed with:" in diagnosis["explanation"]


def test_tasks_that_failed_before_a_retry_succeeded_are_a_warning_not_a_failure() -> None:
    evidence = Evidence(
        application=app(),
        jobs=[{"jobId": 0, "status": "SUCCEEDED"}],
        stages=[stage(1, numFailedTasks=1)],
        failed_tasks={(1, 0): [{"errorMessage": "java.io.IOException: Connection reset by peer"}]},
    )
    diagnosis = diagnose(evidence)
    assert diagnosis.verdict == "succeeded with warnings"
    (finding,) = diagnosis.findings
    assert finding.severity == "warning" and "1 task attempt failed before a retry succeeded" in finding.message


def test_a_clean_application_is_healthy_and_an_unfinished_one_incomplete() -> None:
    clean = diagnose(Evidence(application=app(), jobs=[{"status": "SUCCEEDED"}], stages=[stage(0)]))
    assert clean.verdict == "healthy" and clean.headline == "etl (app-1) succeeded in 1 min 0 s; nothing looks wrong."
    running = diagnose(Evidence(application=app(completed=False), jobs=[{"status": "RUNNING"}], stages=[]))
    assert running.verdict == "incomplete" and "has not finished" in running.headline


def test_the_failures_view_keeps_failed_stages_and_retried_ones() -> None:
    jobs = [{"jobId": 1, "status": "FAILED", "stageIds": [2]}, {"jobId": 0, "status": "SUCCEEDED"}]
    stages = [stage(2, status="FAILED", failureReason=PYTHON_ERROR), stage(1, numFailedTasks=1), stage(0)]
    view = failures_view(jobs, stages, {(1, 0): [{"taskId": 7, "errorMessage": YARN_KILL}]})
    assert [job["job"] for job in view["failed_jobs"]] == [1]
    assert [(row["stage"], row["failure_reason"]) for row in view["failed_stages"]] == [
        (2, "ValueError: bad row"),
        (1, None),
    ]
    assert view["failed_stages"][1]["task_failures"][0]["out_of_memory"] is True


def test_sizes_and_durations_read_as_people_write_them() -> None:
    assert [format_bytes(n) for n in (0, 1536, 16 * 1024**2, 3 * 1024**4)] == ["0 B", "1.5 KiB", "16.0 MiB", "3.0 TiB"]
    assert [format_duration(ms) for ms in (40, 1_234, 95_000, 7_500_000)] == [
        "40 ms",
        "1.2 s",
        "1 min 35 s",
        "2 h 5 min",
    ]

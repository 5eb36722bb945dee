"""Failure extraction from task logs: Airflow 3's structured entries, plain-text tracebacks, and logs without one."""

from __future__ import annotations

from typing import Any

from servers.airflow.diagnosis import diagnose, parse_entries, render

SITE = "/srv/venv/lib/python3.11/site-packages"


def frame(filename: str, lineno: int, name: str) -> dict[str, Any]:
    return {"filename": filename, "lineno": lineno, "name": name}


# The shape Airflow 3.3 serves for a failed @task (trimmed): group markers, info lines, then the runner's error
# entry with structlog's `error_detail`.
STRUCTURED: list[Any] = [
    {"event": "::group::Log message source details"},
    {"event": "/home/logs/dag_id=ads_campaign_sync/run_id=manual__1/task_id=load_campaigns/attempt=1.log"},
    {"event": "::endgroup::"},
    {"timestamp": "2026-11-24T18:27:51.391566Z", "event": "::group::Pre Execute", "level": "info", "logger": "task"},
    {
        "timestamp": "2026-11-24T18:27:51.398518Z",
        "event": "DAG bundles loaded: dags-folder",
        "level": "info",
        "logger": "airflow.dag_processing.bundles.manager.DagBundlesManager",
    },
    {"timestamp": "2026-11-24T18:27:51.461343Z", "event": "::endgroup::", "level": "info", "logger": "task"},
    {"timestamp": "2026-11-24T18:27:51.461400Z", "event": "loading 0 rows", "level": "info", "logger": "task.stdout"},
    {
        "timestamp": "2026-11-24T18:27:51.462409Z",
        "event": "Task failed with exception",
        "level": "error",
        "logger": "task",
        "error_detail": [
            {
                "exc_type": "FeedError",
                "exc_value": "campaign feed returned 0 rows",
                "exc_notes": [],
                "syntax_error": None,
                "is_cause": False,
                "frames": [
                    frame(f"{SITE}/airflow/sdk/execution_time/task_runner.py", 1579, "_run_task_and_map_outcome"),
                    frame(f"{SITE}/airflow/sdk/bases/operator.py", 462, "wrapper"),
                    frame(f"{SITE}/airflow/providers/standard/operators/python.py", 254, "execute_callable"),
                    frame("/dags/ads_campaign_sync.py", 33, "load_campaigns"),
                ],
            }
        ],
    },
    {"timestamp": "2026-11-24T18:27:51.462691Z", "event": "::group::Post Execute", "level": "info", "logger": "task"},
]


def test_the_exception_of_a_structured_log_is_the_failure_reason() -> None:
    diagnosis = diagnose(parse_entries(STRUCTURED))
    assert diagnosis.reason == "FeedError: campaign feed returned 0 rows"
    assert diagnosis.exceptions[0].frames[-1] == 'File "/dags/ads_campaign_sync.py", line 33, in load_campaigns'
    assert diagnosis.error_lines == ("18:27:51 ERROR task: Task failed with exception",)


def test_the_traceback_tail_reads_like_python_with_short_paths_and_a_cut_note() -> None:
    diagnosis = diagnose(parse_entries(STRUCTURED), frames=2)
    assert diagnosis.traceback == (
        "Traceback (most recent call last; 2 earlier frames cut):\n"
        '  File "airflow/providers/standard/operators/python.py", line 254, in execute_callable\n'
        '  File "/dags/ads_campaign_sync.py", line 33, in load_campaigns\n'
        "FeedError: campaign feed returned 0 rows"
    )


def test_the_tail_skips_group_markers_and_the_source_details_and_shortens_logger_names() -> None:
    diagnosis = diagnose(parse_entries(STRUCTURED), tail_lines=3)
    assert diagnosis.tail == (
        "18:27:51 INFO DagBundlesManager: DAG bundles loaded: dags-folder",
        "18:27:51 INFO task.stdout: loading 0 rows",
        "18:27:51 ERROR task: Task failed with exception",
    )
    assert not any("attempt=1.log" in line for line in diagnose(parse_entries(STRUCTURED)).tail)


def test_a_chained_exception_names_its_cause_and_prints_the_cause_first() -> None:
    entry = {
        "timestamp": "2026-11-24T10:00:00Z",
        "event": "Task failed with exception",
        "level": "error",
        "logger": "task",
        "error_detail": [
            {"exc_type": "RuntimeError", "exc_value": "load failed", "frames": [frame("/dags/a.py", 9, "load")]},
            {"exc_type": "ConnectionError", "exc_value": "db down", "is_cause": True, "frames": []},
        ],
    }
    diagnosis = diagnose(parse_entries([entry]))
    assert diagnosis.reason == "RuntimeError: load failed; caused by ConnectionError: db down"
    cause, _, raised = diagnosis.traceback.partition("The above exception was the direct cause")
    assert "ConnectionError: db down" in cause and "RuntimeError: load failed" in raised


PLAIN = """\
[2026-11-24 10:00:00] INFO - Running task
[2026-11-24 10:00:01] ERROR - Task failed with exception
Traceback (most recent call last):
  File "/opt/airflow/taskinstance.py", line 10, in _execute
    result = execute_callable(context=context)
  File "/opt/airflow/python.py", line 20, in execute
    return self.python_callable()
  File "/dags/etl.py", line 7, in extract
    raise KeyError("customer_id")
KeyError: 'customer_id'
[2026-11-24 10:00:01] INFO - Marking task as FAILED.
"""


def test_a_plain_text_traceback_gives_the_exception_and_a_cut_tail() -> None:
    diagnosis = diagnose(parse_entries([PLAIN]), frames=2)
    assert diagnosis.reason == "KeyError: 'customer_id'"
    assert diagnosis.traceback.splitlines() == [
        "Traceback (most recent call last; 1 earlier frames cut):",
        '  File "/opt/airflow/python.py", line 20, in execute',
        "    return self.python_callable()",
        '  File "/dags/etl.py", line 7, in extract',
        '    raise KeyError("customer_id")',
        "KeyError: 'customer_id'",
    ]
    assert diagnosis.error_lines == ("[2026-11-24 10:00:01] ERROR - Task failed with exception",)


def test_airflow_2_host_and_text_pairs_are_read_too() -> None:
    diagnosis = diagnose(parse_entries([["worker-1", PLAIN]]))
    assert diagnosis.reason == "KeyError: 'customer_id'"


def test_a_log_without_a_traceback_falls_back_to_its_last_error_line() -> None:
    lines = parse_entries(
        [
            {"timestamp": "2026-11-24T10:00:00Z", "event": "starting", "level": "info", "logger": "task"},
            {"timestamp": "2026-11-24T10:00:05Z", "event": "Process exited with -9", "level": "error", "logger": "x"},
        ]
    )
    diagnosis = diagnose(lines)
    assert diagnosis.reason == "10:00:05 ERROR x: Process exited with -9"
    assert diagnosis.traceback == ""


def test_a_clean_log_has_no_failure_and_renders_its_tail() -> None:
    lines = parse_entries([{"timestamp": "2026-11-24T10:00:00Z", "event": "done", "level": "info", "logger": "task"}])
    diagnosis = diagnose(lines)
    assert diagnosis.reason == "" and diagnosis.error_lines == ()
    assert render(diagnosis) == (
        "Failure: the log shows no error.\n\nLog tail (last 1 lines):\n  10:00:00 INFO task: done"
    )


def test_a_traceback_cut_before_its_exception_line_still_reads() -> None:
    text = 'Traceback (most recent call last):\n  File "/dags/a.py", line 1, in f\n    g()'
    diagnosis = diagnose(parse_entries([text]))
    assert "the log cuts off" in diagnosis.reason
    assert diagnosis.traceback.endswith("g()")


def test_render_puts_the_reason_first() -> None:
    report = render(diagnose(parse_entries(STRUCTURED)))
    assert report.startswith("Failure: FeedError: campaign feed returned 0 rows\n\nTraceback")
    assert "Error lines:\n  18:27:51 ERROR task: Task failed with exception" in report


def test_a_successful_try_says_no_failure_instead_of_a_reason() -> None:
    lines = parse_entries([{"timestamp": "2026-11-24T10:00:00Z", "event": "done", "level": "info", "logger": "task"}])
    assert render(diagnose(lines), failed=False).startswith("No failure: the log shows no error.\n\nLog tail")

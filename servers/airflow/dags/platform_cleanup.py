# mypy: ignore-errors
# (The DAGs run inside Airflow's own virtualenv; `airflow` is not installed in the project's.)
"""Sample DAG (owner platform): housekeeping with a single quick task."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task


@dag(
    dag_id="platform_log_cleanup",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["platform", "housekeeping"],
    default_args={"owner": "platform", "retries": 0},
    doc_md="Removes old scratch files (sample; does nothing).",
)
def platform_log_cleanup() -> None:
    @task
    def cleanup() -> str:
        return "nothing to clean"

    cleanup()


platform_log_cleanup()

# mypy: ignore-errors
# (The DAGs run inside Airflow's own virtualenv; `airflow` is not installed in the project's.)
"""Sample DAG (owner ads-eng) whose load task fails with a clear exception: the failure-diagnosis example."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task


class FeedError(RuntimeError):
    """The upstream campaign feed is not usable."""


@dag(
    dag_id="ads_campaign_sync",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["ads"],
    default_args={"owner": "ads-eng", "retries": 0},
    doc_md="Syncs campaigns from the partner feed (sample; the load step always fails).",
)
def ads_campaign_sync() -> None:
    @task
    def fetch_feed() -> int:
        print("fetched campaign feed: 0 rows")
        return 0

    @task
    def load_campaigns(rows: int) -> None:
        if rows == 0:
            raise FeedError("campaign feed returned 0 rows: the partner export for today is missing")

    load_campaigns(fetch_feed())


ads_campaign_sync()

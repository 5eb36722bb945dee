# mypy: ignore-errors
# (The DAGs run inside Airflow's own virtualenv; `airflow` is not installed in the project's.)
"""Sample DAG (owner ads-eng): a quick extract -> aggregate pipeline that succeeds."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task


@dag(
    dag_id="ads_daily_revenue",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["ads", "revenue"],
    default_args={"owner": "ads-eng", "retries": 0},
    doc_md="Daily ad revenue by region (sample).",
)
def ads_daily_revenue() -> None:
    @task
    def extract() -> list[dict[str, object]]:
        return [{"region": "emea", "revenue_usd": 1_204_300}, {"region": "amer", "revenue_usd": 2_871_950}]

    @task
    def aggregate(rows: list[dict[str, object]]) -> int:
        total = sum(int(str(row["revenue_usd"])) for row in rows)
        print(f"total revenue: {total}")
        return total

    aggregate(extract())


ads_daily_revenue()

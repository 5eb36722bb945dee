"""The two small Spark applications whose event logs the local History Server serves.

Each runs in its own process (`python -m servers.spark.jobs rollup|import <events dir>`), on `local[2]`, with
event logging on and the driver's UI off (it would listen on 0.0.0.0:4040):

- `rollup` (daily-sales-rollup) succeeds, but one store holds most rows: its shuffle partition is skewed, and a
  low forced-spill threshold makes the sorts spill to disk, so a diagnosis has something to say.
- `import` (nightly-customer-import) fails: a Python UDF raises on a malformed record. The driver catches the
  error and exits 0, as many schedulers' wrappers do, so only the jobs and stages tell that it failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType

from servers.spark.local import APPLICATIONS

__all__ = ["main"]

_ROWS = 200_000
_SKEWED_SHARE = 8  # in 10 rows belong to store-0
_FORCE_SPILL_ELEMENTS = "20000"  # internal Spark setting: sorters spill once they hold this many records
_BAD_RECORD = 4_242


def _session(name: str, events: Path, *, spill: bool = False) -> SparkSession:
    builder = (
        SparkSession.builder.master("local[2]")
        .appName(name)
        .config("spark.eventLog.enabled", "true")
        .config("spark.eventLog.dir", events.resolve().as_uri())
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.adaptive.enabled", "false")  # keep the skewed partition as it is
        .config("spark.driver.memory", "512m")
    )
    if spill:
        builder = builder.config("spark.shuffle.spill.numElementsForceSpillThreshold", _FORCE_SPILL_ELEMENTS)
    return builder.getOrCreate()


def _sales(spark: SparkSession) -> DataFrame:
    store = F.when(F.col("id") % 10 < _SKEWED_SHARE, F.lit("store-0")).otherwise(
        F.concat(F.lit("store-"), (F.col("id") % 50).cast("string"))
    )
    return spark.range(0, _ROWS, numPartitions=4).select(store.alias("store"), (F.col("id") % 97).alias("amount"))


def rollup(events: Path) -> None:
    """Sort each store's sales (a skewed shuffle that spills), then total them per store."""
    spark = _session(APPLICATIONS["rollup"], events, spill=True)
    try:
        sales = _sales(spark)
        sales.repartition(4, "store").sortWithinPartitions("amount").write.format("noop").mode("overwrite").save()
        sales.groupBy("store").agg(F.sum("amount").alias("total")).collect()
    finally:
        spark.stop()


def _parse_amount(raw: str) -> int:
    if not raw.isdigit():
        raise ValueError(f"cannot parse amount {raw!r} of customer record")
    return int(raw)


def customer_import(events: Path) -> None:
    """Count the records (succeeds), then parse them with a UDF that fails on one malformed record."""
    spark = _session(APPLICATIONS["import"], events)
    try:
        records = spark.range(0, 10_000, numPartitions=4).select(
            F.when(F.col("id") == _BAD_RECORD, F.lit("n/a")).otherwise(F.col("id").cast("string")).alias("raw")
        )
        records.count()
        parse = F.udf(_parse_amount, IntegerType())
        try:
            records.select(parse("raw").alias("amount")).write.format("noop").mode("overwrite").save()
        except Exception as exc:  # the wrapper swallows it: the driver still exits 0
            print(f"import failed: {type(exc).__name__}", file=sys.stderr)
    finally:
        spark.stop()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in APPLICATIONS:
        print(f"usage: python -m servers.spark.jobs {{{'|'.join(APPLICATIONS)}}} EVENTS_DIR", file=sys.stderr)
        return 2
    events = Path(args[1])
    events.mkdir(parents=True, exist_ok=True)
    (rollup if args[0] == "rollup" else customer_import)(events)
    return 0


if __name__ == "__main__":
    sys.exit(main())

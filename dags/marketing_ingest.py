"""
### marketing_ingest

Daily ingestion of the shop's landing zone into the lake, gated by Great Expectations.

For every source (customers, products, events, orders, campaign_log):
**ingest** reads the landing partition(s) with an explicit schema into `bronze/` (raw, with load
metadata; malformed records kept with their text), then **clean** types, validates, dedupes,
imputes and hashes PII into `silver/`, sending every rejected row to `quarantine/` with a
machine-readable reason. Before silver is written the table's expectation suite runs on the
Spark DataFrame; a failed *critical* expectation fails the task (no retry: bad data does not
heal) and leaves the previous partition intact; warnings are recorded only. Results go to the
GX Data Docs and to `marketing.data_quality`.

Facts (events, orders, campaign_log) are cleaned after the dimensions (customers, products)
so that their foreign keys are checked against silver as of the same date.

**REST API**: tables listed in `MSP_HTTP_TABLES` are first pulled from `MSP_HTTP_BASE_URL`
(`pull_rest_sources`, resumable by checkpoint); their pages are ingested with the file exports.

**Params**: `ds` (partition date; default: the run's logical date, or today for runs that have
none) and `since` (first date of a range to (re)load in one run, e.g. a first load of history;
default: `ds`). A rerun of a date replaces exactly that date in every layer.

**Engine**: embedded, each step runs in its task's process on `MSP_SPARK_MASTER`; with
`MSP_SPARK_SUBMIT=true` (stack mode) `ingest_*` and `clean_*` are `SparkSubmitOperator`s that submit
`jobs/submit.py` to the master of the connection `MSP_SPARK_CONN_ID` (same code, same results).

Code: `jobs/pipeline/` (ingest, clean), `jobs/quality/` (suites), contract: `jobs/contracts.py`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

from jobs.dag_defaults import dag_default_args, date_param, schedule, spark_step

TABLES = ("customers", "products", "events", "orders", "campaign_log")
DIMENSIONS = ("customers", "products")
DS = "{{ ti.xcom_pull(task_ids='resolve_dates')['ds'] }}"  # templates of the spark-submit operators
SINCE = "{{ ti.xcom_pull(task_ids='resolve_dates')['since'] }}"
SILVER = {t: Asset(name=f"msp.silver.{t}", uri=f"msp://lake/silver/{t}", group="msp-silver") for t in TABLES}

default_args = dag_default_args(
    retry_delay=timedelta(seconds=30), execution_timeout=timedelta(hours=2), max_retry_delay=timedelta(minutes=10)
)


@dag(
    dag_id="marketing_ingest",
    schedule=schedule("0 0 * * *"),
    start_date=datetime(2026, 9, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["msp", "ingest", "spark", "great-expectations"],
    doc_md=__doc__,
    params={
        "ds": date_param("Partition date (YYYY-MM-DD)."),
        "since": Param(None, type=["null", "string"], format="date", description="First date of a range."),
    },
)
def marketing_ingest() -> None:
    @task
    def resolve_dates(**context) -> dict[str, str]:
        """Take the dates from params, else the logical date, else today (runs without a logical date)."""
        from jobs.pipeline.lake import ds_range
        from jobs.pipeline.tasks import partition_date

        ds = partition_date(context)
        since = context["params"].get("since") or ds
        dates = ds_range(ds, since)
        return {"ds": dates[-1], "since": dates[0]}

    def ingest_task(table: str):
        @task(task_id=f"ingest_{table}", doc_md=f"landing/{table} -> bronze/{table}")
        def ingest(dates: dict[str, str]) -> dict:
            from jobs.pipeline.tasks import run_step

            return run_step("ingest", table, dates)

        return ingest

    def clean_task(table: str):
        @task(
            task_id=f"clean_{table}",
            outlets=[SILVER[table]],
            doc_md=f"bronze/{table} -> silver/{table} + quarantine/{table}, GX suite silver_{table}",
        )
        def clean(dates: dict[str, str], **context) -> dict:
            from jobs.pipeline.tasks import run_step, stamp_outlets

            stamp_outlets(context, dates["ds"], since=dates["since"])  # marketing_train trains on this date

            return run_step("clean", table, dates)

        return clean

    @task
    def pull_rest_sources(dates: dict[str, str]) -> dict:
        """Pull the tables listed in MSP_HTTP_TABLES from the shop's REST API (no-op when none)."""
        from jobs.pipeline.tasks import pull_sources

        return pull_sources(dates)

    @task
    def summary(dates: dict[str, str]) -> dict:
        """Row counts per layer and quarantine reasons of the run's dates (also in the task log)."""
        from jobs.pipeline.tasks import summarise

        return summarise(dates)

    dates = resolve_dates()
    pulled = pull_rest_sources(dates)
    cleaned = {}
    for table in TABLES:  # in spark-submit mode (stack) each step is a SparkSubmitOperator
        ingested = spark_step(
            lambda t=table: ingest_task(t)(dates),
            task_id=f"ingest_{table}",
            step="ingest",
            table=table,
            ds=DS,
            since=SINCE,
            doc_md=f"landing/{table} -> bronze/{table} (spark-submit)",
        )
        cleaned[table] = spark_step(
            lambda t=table: clean_task(t)(dates),
            task_id=f"clean_{table}",
            step="clean",
            table=table,
            ds=DS,
            since=SINCE,
            outlets=[SILVER[table]],
            doc_md=f"bronze/{table} -> silver/{table} + quarantine/{table}, GX suite silver_{table} (spark-submit)",
        )
        dates >> [ingested, cleaned[table]]
        pulled >> ingested >> cleaned[table]
    for fact in TABLES:
        if fact not in DIMENSIONS:
            [cleaned[d] for d in DIMENSIONS] >> cleaned[fact]
    list(cleaned.values()) >> summary(dates)


marketing_ingest()

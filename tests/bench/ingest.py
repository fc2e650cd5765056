"""Ingest + clean throughput on millions of events: Spark (the pipeline) against DuckDB (same transformation)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("bench")

DUCKDB_CLEAN = """
COPY (
  WITH raw AS (
    SELECT *, CAST(regexp_extract(filename, 'ds=([0-9-]{{10}})', 1) AS VARCHAR) AS ds,
           sha256(concat_ws('|', event_id, customer_id, ts, event_type, product_id, session_id)) AS _row_hash
    FROM read_csv({files}, header = true, all_varchar = true, null_padding = false, ignore_errors = true,
                  store_rejects = true, hive_partitioning = false,
                  strict_mode = false, columns = {{'event_id': 'VARCHAR', 'customer_id': 'VARCHAR', 'ts': 'VARCHAR',
                  'event_type': 'VARCHAR', 'product_id': 'VARCHAR', 'session_id': 'VARCHAR'}}, filename = true)
  ),
  typed AS (
    SELECT *, nullif(trim(event_id), '') AS k, try_cast(nullif(trim(ts), '') AS TIMESTAMPTZ) AS ts_t,
           lower(nullif(trim(event_type), '')) AS et
    FROM raw
  ),
  checked AS (
    SELECT t.* EXCLUDE (customer_id, product_id), t.customer_id, t.product_id, CASE
      WHEN k IS NULL THEN 'null_required:event_id'
      WHEN nullif(trim(t.customer_id), '') IS NULL THEN 'null_required:customer_id'
      WHEN nullif(trim(ts), '') IS NULL THEN 'null_required:ts'
      WHEN et IS NULL THEN 'null_required:event_type'
      WHEN ts_t IS NULL THEN 'wrong_type:ts'
      WHEN et NOT IN ('view','add_to_cart','purchase','search','email_open','email_click')
        THEN 'invalid_value:event_type'
      WHEN ts_t >= CAST(ds AS DATE) + 2 THEN 'future_timestamp:ts'
      WHEN c.customer_id IS NULL THEN 'unknown_fk:customer_id'
      WHEN t.product_id IS NOT NULL AND p.product_id IS NULL THEN 'unknown_fk:product_id'
    END AS reason
    FROM typed t
    LEFT JOIN (SELECT customer_id, min(ds) AS first_ds FROM read_parquet('{silver}/customers/*/*.parquet',
               hive_partitioning = true, hive_types_autocast = false) GROUP BY 1) c
      ON t.customer_id = c.customer_id AND c.first_ds <= t.ds
    LEFT JOIN (SELECT product_id, min(ds) AS first_ds FROM read_parquet('{silver}/products/*/*.parquet',
               hive_partitioning = true, hive_types_autocast = false) GROUP BY 1) p
      ON t.product_id = p.product_id AND p.first_ds <= t.ds
  ),
  ranked AS (
    SELECT *, CASE WHEN reason IS NULL THEN row_number() OVER (PARTITION BY reason, ds, k ORDER BY _row_hash) END AS rn
    FROM checked
  ),
  final AS (
    SELECT k AS event_id, customer_id, ts_t AS ts, et AS event_type, product_id, session_id, _row_hash, ds,
           coalesce(reason, CASE WHEN rn > 1 THEN 'duplicate_key' END) AS reason
    FROM ranked
  )
  SELECT *, reason IS NULL AS valid FROM final
) TO '{out}' (FORMAT parquet, PARTITION_BY (valid, ds), OVERWRITE_OR_IGNORE true)
"""


def bench_ingest(work: Path, customers: int, days: int) -> dict[str, Any]:
    """Simulate a shop, load its dimensions, then time events: Spark pipeline vs DuckDB SQL."""
    import duckdb

    from jobs.contracts import ORDER
    from jobs.pipeline.clean import clean
    from jobs.pipeline.ingest import ingest
    from jobs.settings import Settings
    from jobs.spark import get_spark

    home = work / "ingest"
    exe = str(Path(sys.executable).with_name("msp"))
    env = {**os.environ, "MSP_HOME": str(home), "MSP_LOG_LEVEL": "WARNING"}
    log.info("ingest: simulating %d customers x %d days", customers, days)
    subprocess.run(
        [exe, "simulate", "--customers", str(customers), "--days", str(days), "--products", "2000"],
        env=env,
        check=True,
        capture_output=True,
    )
    manifest = json.loads((home / "var/truth/manifest.json").read_text())
    settings = Settings(home=home, spark_master="local[*]")
    start = manifest["config"]["start"]
    end = sorted(manifest["clean_rows_by_ds"]["events"])[-1]
    from pyspark import SparkContext

    owns_session = SparkContext._active_spark_context is None  # in a test process the session is shared
    spark = get_spark(settings, "msp-bench")
    for table in ("customers", "products"):
        ingest(spark, settings, table, end, start)
        clean(spark, settings, table, end, start)
    files = sorted(str(p) for p in (settings.landing / "events").glob("ds=*/*.csv"))
    rows = manifest["rows_written"]["events"]
    mb = sum(Path(f).stat().st_size for f in files) / 1024**2

    log.info("ingest: Spark ingest+clean of %d event rows", rows)
    t0 = time.perf_counter()
    ingested = ingest(spark, settings, "events", end, start)
    t_ingest = time.perf_counter() - t0
    result = clean(spark, settings, "events", end, start)
    t_spark = time.perf_counter() - t0
    if owns_session:  # free the JVM before the DuckDB baseline; never stop a session someone else holds
        spark.stop()

    log.info("ingest: DuckDB baseline")
    out = work / "duckdb-events"
    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count() or 2}")
    t0 = time.perf_counter()
    con.execute(
        DUCKDB_CLEAN.format(files=json.dumps(files).replace('"', "'"), silver=settings.lake / "silver", out=out)
    )
    t_duck = time.perf_counter() - t0
    duck_silver = con.execute(
        f"SELECT count(*) FROM read_parquet('{out}/*/*/*.parquet', hive_partitioning = true) WHERE valid = 'true'"
    ).fetchall()[0][0]
    return {
        "events": rows,
        "input_mb": round(mb, 1),
        "files": len(files),
        "spark_seconds": round(t_spark, 2),
        "spark_ingest_seconds": round(t_ingest, 2),
        "spark_clean_seconds": round(t_spark - t_ingest, 2),
        "spark_rows_per_s": round(rows / t_spark),
        "spark_silver_rows": result.silver_total,
        "spark_profile": {
            **{f"ingest: {k}": v for k, v in ingested.phases.items()},
            **{f"clean: {k}": v for k, v in result.phases.items()},
        },
        "duckdb_seconds": round(t_duck, 2),
        "duckdb_rows_per_s": round(rows / t_duck),
        "duckdb_silver_rows": duck_silver,
        "clean_rows_expected": manifest["clean_rows"]["events"],
        "ratio_spark_to_duckdb": round(t_spark / t_duck, 1),
        "goal_ratio_max": 3.0,
        "goal_met": t_spark / t_duck <= 3.0,
        "tables_loaded_first": [t for t in ORDER if t in ("customers", "products")],
    }

"""Warehouse write throughput on PostgreSQL: Warehouse.replace (binary COPY + partition swap) against executemany.

Run: ``.venv/bin/python -m tests.bench.warehouse --url postgresql://postgres@127.0.0.1:5432/test --rows 1000000``.
Works in a throw-away schema of the given database and drops it afterwards.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import time
from datetime import date, datetime
from typing import Any

log = logging.getLogger("bench")

BASELINE_SAMPLE_ROWS = 50_000
BASELINE_MAX_S = 60.0  # time the baseline on every row when that takes at most this long, else extrapolate
GOAL_ROWS_PER_S = 200_000
GOAL_RATIO = 20


def assignments_frame(rows: int, run_date: date, seed: int = 0) -> Any:
    """A strategy_assignments-shaped frame of ``rows`` rows (built with numpy, quickly)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "run_date": [run_date] * rows,
            "customer_id": [f"C{i:09d}" for i in range(rows)],
            "strategy": rng.choice(["email", "discount_10", "discount_20", "none"], rows),
            "reason": rng.choice(["model", "explore", "holdout"], rows, p=[0.85, 0.1, 0.05]),
            "propensity": rng.uniform(0.05, 1.0, rows),
            "p_convert_chosen": rng.uniform(0, 0.3, rows),
            "p_convert_control": rng.uniform(0, 0.2, rows),
            "expected_revenue": rng.gamma(2.0, 20.0, rows),
            "expected_incremental_revenue": rng.normal(3.0, 5.0, rows),
            "expected_cost": rng.uniform(0, 2.0, rows),
            "expected_profit": rng.normal(10.0, 8.0, rows),
            "expected_incremental_profit": rng.normal(1.0, 3.0, rows),
            "recommended_products": rng.choice(np.array(["P0001,P0042,P0107", "P0003", None], dtype=object), rows),
            "segment": rng.choice(["north", "south", "east", "west"], rows),
            "model_name": "msp_uplift_xgboost",
            "model_version": "12",
            "scored_at": datetime(2026, 3, 1, 4, 5, 6, 123456),
        }
    )


def _executemany(url: str, table: str, frame: Any) -> float:
    """Seconds to INSERT ``frame`` (as run date 2026-03-02) with one executemany and commit."""
    import psycopg

    tuples = list(frame.assign(run_date=date(2026, 3, 2)).itertuples(index=False, name=None))
    cols = ", ".join(frame.columns)
    marks = ", ".join(["%s"] * len(frame.columns))
    with psycopg.connect(url) as con:
        t0 = time.perf_counter()
        with con.cursor() as cur:
            cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuples)
        con.commit()
        return time.perf_counter() - t0


def _bare_copy(url: str, schema: str, frame: Any) -> float:
    """Seconds of the same binary COPY into a table without index or constraints: the floor of any COPY path."""
    import psycopg

    from jobs.warehouse import _copy_frame

    cols = ", ".join(frame.columns)
    with psycopg.connect(url) as con:
        cur = con.cursor()
        cur.execute(f"CREATE TABLE {schema}.bare AS SELECT {cols} FROM {schema}.strategy_assignments WITH NO DATA")
        cur.execute(f"SELECT {cols} FROM {schema}.bare LIMIT 0")
        oids = [d.type_code for d in cur.description]
        con.commit()
        t0 = time.perf_counter()
        _copy_frame(cur, f"COPY {schema}.bare ({cols}) FROM STDIN", oids, frame)
        con.commit()
        return time.perf_counter() - t0


def bench_copy_vs_executemany(url: str, rows: int) -> dict[str, Any]:
    """Rows/s of Warehouse.replace (first write and rerun of a run date) and of executemany INSERT, and their ratio.

    Also the same binary COPY into a table without index or constraints (no primary key build, no swap):
    what the staging, the key and the partition swap add on top of moving the bytes.

    The baseline (psycopg 3's executemany, which pipelines the INSERTs) first inserts a sample of at most
    ``BASELINE_SAMPLE_ROWS`` rows; the remaining rows too if that is projected to take at most
    ``BASELINE_MAX_S``, else the sample's rate is extrapolated to ``rows``. The result says which.
    """
    import psycopg

    from jobs.warehouse import Warehouse

    wh = Warehouse(url, f"bench_{secrets.token_hex(4)}")
    wh.migrate()
    table = f"{wh.schema}.strategy_assignments"
    frame = assignments_frame(rows, date(2026, 3, 1))
    try:
        t0 = time.perf_counter()
        wh.replace("strategy_assignments", {"run_date": date(2026, 3, 1)}, frame)
        copy_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        wh.replace("strategy_assignments", {"run_date": date(2026, 3, 1)}, frame)
        rerun_s = time.perf_counter() - t0
        log.info("COPY path: %d rows, first write %.2f s, rerun %.2f s", rows, copy_s, rerun_s)

        sample = min(rows, BASELINE_SAMPLE_ROWS)
        many_s = _executemany(url, table, frame.iloc[:sample])
        if sample < rows and (rows - sample) * many_s / sample <= BASELINE_MAX_S:  # affordable: time them all
            many_s += _executemany(url, table, frame.iloc[sample:])
            sample = rows
        with psycopg.connect(url) as con:
            landed = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        assert landed == rows + sample, (landed, rows, sample)
        log.info("executemany: %d rows in %.2f s", sample, many_s)
        bare_s = _bare_copy(url, wh.schema, frame)
        log.info("bare COPY of the same rows (no index, no swap): %.2f s", bare_s)
    finally:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {wh.schema} CASCADE")

    copy_rate, many_rate = rows / copy_s, sample / many_s
    return {
        "rows": rows,
        "copy_seconds": round(copy_s, 2),
        "copy_rows_per_s": round(copy_rate),
        "copy_rerun_seconds": round(rerun_s, 2),
        "copy_rerun_rows_per_s": round(rows / rerun_s),
        "executemany_rows": sample,
        "executemany_seconds": round(many_s, 2),
        "executemany_rows_per_s": round(many_rate),
        "executemany_extrapolated": sample < rows,
        "executemany_seconds_for_all_rows": round(rows / many_rate, 1),
        "ratio": round(copy_rate / many_rate, 1),
        "bare_copy_seconds": round(bare_s, 2),
        "bare_copy_rows_per_s": round(rows / bare_s),
        "goal": {"copy_rows_per_s_min": GOAL_ROWS_PER_S, "ratio_min": GOAL_RATIO},
        "goal_met": copy_rate >= GOAL_ROWS_PER_S and copy_rate / many_rate >= GOAL_RATIO,
        "note": (
            f"executemany timed on {sample:,} rows and extrapolated to {rows:,}"
            if sample < rows
            else "executemany timed on all rows"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--url", default=os.environ.get("MSP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(json.dumps(bench_copy_vs_executemany(args.url, args.rows), indent=2))


if __name__ == "__main__":
    main()

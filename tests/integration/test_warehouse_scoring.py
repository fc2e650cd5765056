"""The scoring warehouse on DuckDB (a temporary file) and the real PostgreSQL (a fresh database per session).

Migrations, slice replacement (reruns, other dates, rejected frames), a writer SIGKILLed between staging
and swap, the read-only ``bi_reader`` role, and the BI views' numbers.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import jobs.warehouse as warehouse_module
from jobs.cli import app
from jobs.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)
TABLES = [
    "strategy_assignments",
    "campaign_forecast",
    "model_metrics",
    "data_quality",
    "strategy_effects",
    "feature_drift",
    "sales_forecast",
    "schema_migrations",
]
VIEWS = [
    "v_latest_assignments",
    "v_strategy_summary",
    "v_strategy_effects",
    "v_sales_forecast_latest",
    "v_campaign_revenue_share",
    "v_assignment_reasons",
]
MONEY = ["expected_revenue", "expected_incremental_revenue", "expected_cost", "expected_profit"]


def assignments(run_date: date, n: int, version: str = "1", seed: int = 0, first: int = 0) -> pd.DataFrame:
    """A strategy_assignments frame: unicode ids, NULL and empty text, NULL doubles, many chunks' worth."""
    rng = np.random.default_rng(seed)
    p_chosen = rng.uniform(0, 1, n)
    p_chosen[::7] = np.nan
    return pd.DataFrame(
        {
            "run_date": [run_date] * n,
            "customer_id": [f"Zoë-{i:05d}" for i in range(first, first + n)],
            "strategy": rng.choice(["email", "discount_10", "none"], n),
            "reason": rng.choice(["model", "explore", "holdout"], n),
            "propensity": rng.uniform(0.01, 1.0, n),
            "p_convert_chosen": p_chosen,
            "p_convert_control": rng.uniform(0, 1, n),
            **{c: rng.normal(10, 5, n) for c in MONEY},
            "expected_incremental_profit": rng.normal(1, 2, n),
            "recommended_products": rng.choice(np.array(["P1,P7", "", None], dtype=object), n),
            "segment": rng.choice(np.array(["north", "south", None], dtype=object), n),
            "model_name": "msp_uplift_xgboost",
            "model_version": version,
            "scored_at": pd.Timestamp(f"2026-03-0{run_date.day} 04:05:06.123456"),
            "model_strategy": rng.choice(["email", "discount_10", "none"], n),
            "reasons": rng.choice(np.array(['[{"feature":"x","value":3,"contribution":0.8}]', None], dtype=object), n),
            **{f"reason_{j}": rng.choice(np.array(["x 3: +0.80 pp", None], dtype=object), n) for j in (1, 2, 3)},
        }
    )


def normalized(frame: pd.DataFrame) -> pd.DataFrame:
    """Comparable across backends: dates as date, timestamps as Timestamp, NULL text as None, NULL doubles NaN."""
    out = frame.reset_index(drop=True).copy()
    for col in out.columns:
        if col == "run_date":
            out[col] = pd.to_datetime(out[col]).dt.date
        elif col in {"scored_at", "created_at", "recorded_at", "checked_at"}:
            out[col] = pd.to_datetime(out[col]).astype("datetime64[ns]")
        elif pd.api.types.is_numeric_dtype(out[col]) or col.startswith(("p_", "expected_")) or col == "propensity":
            out[col] = out[col].astype(float)
        else:
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def rows(wh: Warehouse, table: str = "strategy_assignments", order: str = "run_date, customer_id") -> pd.DataFrame:
    return normalized(wh.query(f"SELECT * FROM {wh.schema}.{table} ORDER BY {order}"))


def expected(*frames: pd.DataFrame) -> pd.DataFrame:
    both = pd.concat(frames, ignore_index=True).sort_values(["run_date", "customer_id"])
    return normalized(both)


def scalar(wh: Warehouse, sql: str) -> object:
    return wh.query(sql).iloc[0, 0]


@pytest.fixture(params=["duckdb", "postgres"])
def wh(request: pytest.FixtureRequest, tmp_path: Path) -> Warehouse:
    """An empty warehouse: a new DuckDB file, or a new schema in the session's PostgreSQL database."""
    if request.param == "duckdb":
        return Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}", "marketing")
    return Warehouse(request.getfixturevalue("postgres_url"), f"t_{secrets.token_hex(6)}")


def test_migrations_apply_in_order_once_each_and_engine_specific_ones_only_on_their_engine(
    wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = warehouse_module.migrations()
    names = [v for v, _ in shipped]
    assert names[:3] == ["0001_data_quality", "0002_scoring", "0003_partition_assignments.postgres"]
    versions = [warehouse_module.split_version(v)[0] for v in names]
    monkeypatch.setattr(warehouse_module, "migrations", lambda: shipped[:1])
    assert wh.migrate() == ["0001_data_quality"]
    monkeypatch.undo()
    assert wh.migrate() == versions[1:]
    assert wh.migrate() == []
    for name in TABLES + VIEWS:
        assert wh.query(f"SELECT count(*) AS n FROM {wh.schema}.{name}").shape == (1, 1)
    recorded = wh.query(f"SELECT version FROM {wh.schema}.schema_migrations ORDER BY version")["version"]
    assert list(recorded) == versions  # DuckDB records the PostgreSQL-only version without running it
    if wh.kind == "postgres":
        kind = scalar(
            wh,
            "SELECT c.relkind FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = '{wh.schema}' AND c.relname = 'strategy_assignments'",
        )
        assert kind == "p"  # partitioned by run_date


def test_0003_moves_rows_written_before_it_and_a_rerun_replaces_them(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh = Warehouse(postgres_url, f"t_{secrets.token_hex(6)}")
    shipped = warehouse_module.migrations()
    monkeypatch.setattr(warehouse_module, "migrations", lambda: shipped[:2])
    wh.migrate()
    # written before 0004 added model_strategy and 0009 the reasons: they read back NULL
    later = ["model_strategy", "reasons", "reason_1", "reason_2", "reason_3"]
    d1, d2 = (assignments(d, n, seed=s).assign(**dict.fromkeys(later)) for d, n, s in ((D1, 300, 1), (D2, 200, 2)))
    wh.replace("strategy_assignments", {"run_date": D1}, d1.drop(columns=later))
    wh.replace("strategy_assignments", {"run_date": D2}, d2.drop(columns=later))
    monkeypatch.undo()
    assert wh.migrate() == [
        "0003_partition_assignments",
        "0004_closed_loop",
        "0005_predicted_intervals",
        "0006_datasets",
        "0007_sales_forecast",
        "0008_dataset_customer_value",
        "0009_assignment_reasons",
    ]
    pd.testing.assert_frame_equal(rows(wh), expected(d1, d2))
    d1_v2 = assignments(D1, 250, version="2", seed=3, first=100)
    wh.replace("strategy_assignments", {"run_date": D1}, d1_v2)
    pd.testing.assert_frame_equal(rows(wh), expected(d1_v2, d2))
    where = f"FROM {wh.schema}.strategy_assignments_default"
    assert scalar(wh, f"SELECT count(*) {where} WHERE run_date = DATE '{D1}'") == 0  # moved to its own partition
    assert scalar(wh, f"SELECT count(*) {where} WHERE run_date = DATE '{D2}'") == 200


def test_replacing_a_run_date_twice_is_idempotent_and_leaves_other_dates(
    wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warehouse_module, "COPY_CHUNK_ROWS", 97)  # many COPY chunks, ragged last one
    d1, d2 = assignments(D1, 450, seed=1), assignments(D2, 300, seed=2)
    assert wh.replace("strategy_assignments", {"run_date": D1}, d1) == 450
    wh.replace("strategy_assignments", {"run_date": D2}, pa.Table.from_pandas(d2, preserve_index=False))
    wh.replace("strategy_assignments", {"run_date": D1}, d1)
    after_rerun = rows(wh)
    pd.testing.assert_frame_equal(after_rerun, expected(d1, d2))
    wh.replace("strategy_assignments", {"run_date": D1}, d1)
    pd.testing.assert_frame_equal(rows(wh), after_rerun)
    keys = f"SELECT count(*) - count(DISTINCT run_date || '/' || customer_id) FROM {wh.schema}.strategy_assignments"
    assert scalar(wh, keys) == 0

    # a new version of D1 with fewer, partly new customers replaces D1 wholly; D2 is untouched
    d1_v2 = assignments(D1, 200, version="2", seed=3, first=350)
    wh.replace("strategy_assignments", {"run_date": D1}, d1_v2)
    pd.testing.assert_frame_equal(rows(wh), expected(d1_v2, d2))
    assert scalar(wh, keys) == 0

    # an empty frame empties the slice
    wh.replace("strategy_assignments", {"run_date": D2}, d2.iloc[:0])
    pd.testing.assert_frame_equal(rows(wh), expected(d1_v2))


def test_frames_that_break_the_slice_or_constraints_change_nothing(wh: Warehouse) -> None:
    d1 = assignments(D1, 50, seed=4)
    wh.replace("strategy_assignments", {"run_date": D1}, d1)
    before = rows(wh)

    stray = pd.concat([assignments(D1, 5, version="2"), assignments(D2, 1, version="2")], ignore_index=True)
    with pytest.raises(ValueError, match="expected 6"):
        wh.replace("strategy_assignments", {"run_date": D1}, stray)
    duplicate = pd.concat([assignments(D1, 5, version="2")] * 2, ignore_index=True)
    with pytest.raises((ValueError, psycopg.errors.UniqueViolation)):
        wh.replace("strategy_assignments", {"run_date": D1}, duplicate)
    for column, bad in [("propensity", 0.0), ("propensity", 1.5), ("reason", "whim"), ("strategy", None)]:
        frame = assignments(D1, 5, version="2")
        frame.loc[3, column] = bad
        with pytest.raises((duckdb.ConstraintException, psycopg.errors.IntegrityError)):
            wh.replace("strategy_assignments", {"run_date": D1}, frame)
    with pytest.raises(ValueError, match="not an identifier"):
        wh.replace("strategy_assignments; DROP TABLE x", {"run_date": D1}, d1)
    pd.testing.assert_frame_equal(rows(wh), before)


CHILD = """
import sys, time
import pyarrow.parquet as pq
from jobs.warehouse import Warehouse

url, schema, path, mode = sys.argv[1:5]

def staged():
    print("staged", flush=True)
    time.sleep(300)

table = pq.read_table(path)
Warehouse(url, schema).replace(
    "strategy_assignments", {"run_date": table.column("run_date")[0].as_py()}, table,
    before_swap=staged if mode == "parent_sigkill" else None,
)
print("swapped", flush=True)
"""


@pytest.mark.parametrize("how", ["parent_sigkill", "msp_fault_env"])
def test_a_writer_killed_between_staging_and_swap_leaves_the_previous_run_whole(
    wh: Warehouse, tmp_path: Path, how: str
) -> None:
    d1, d2 = assignments(D1, 3000, seed=5), assignments(D2, 100, seed=6)
    wh.replace("strategy_assignments", {"run_date": D1}, d1)
    wh.replace("strategy_assignments", {"run_date": D2}, d2)
    before = rows(wh)
    d1_v2 = assignments(D1, 3500, version="2", seed=7, first=1000)
    pq.write_table(pa.Table.from_pandas(d1_v2, preserve_index=False), tmp_path / "v2.parquet")

    env = {k: v for k, v in os.environ.items() if k != "MSP_FAULT"}
    if how == "msp_fault_env":
        env["MSP_FAULT"] = "warehouse_before_swap"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, wh.url, wh.schema, str(tmp_path / "v2.parquet"), how],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if how == "parent_sigkill":
            line = child.stdout.readline()  # type: ignore[union-attr]
            assert line == "staged\n", child.stderr.read()  # type: ignore[union-attr]
            if wh.kind == "postgres":  # while the new version sits staged, readers see the old one whole
                pd.testing.assert_frame_equal(rows(wh), before)
            os.kill(child.pid, signal.SIGKILL)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, err
    assert "swapped" not in out

    pd.testing.assert_frame_equal(rows(wh), before)
    assert scalar(wh, f"SELECT count(*) FROM {wh.schema}.strategy_assignments WHERE model_version = '2'") == 0

    # the rerun completes
    wh.replace("strategy_assignments", {"run_date": D1}, d1_v2)
    pd.testing.assert_frame_equal(rows(wh), expected(d1_v2, d2))


def summary_rows(wh: Warehouse) -> dict[tuple[date, str], dict[str, float]]:
    frame = wh.query(f"SELECT * FROM {wh.schema}.v_strategy_summary")
    frame["run_date"] = pd.to_datetime(frame["run_date"]).dt.date
    return {(r.pop("run_date"), r.pop("strategy")): r for r in frame.to_dict("records")}


def test_bi_views_return_the_right_numbers(wh: Warehouse) -> None:
    def frame(run_date: date, spec: list[tuple]) -> pd.DataFrame:
        cols = ["customer_id", "strategy", "reason", "propensity", "expected_revenue", "expected_cost"]
        out = pd.DataFrame(spec, columns=[*cols, "expected_profit", "expected_incremental_profit"])
        return out.assign(
            run_date=run_date,
            model_name="m",
            model_version="7",
            scored_at=datetime(2026, 3, 3, 4, 5, 6),
            recommended_products=None,
        )

    older = frame(
        D1, [("a", "email", "model", 0.5, 1.0, 0.5, 0.5, 0.1), ("b", "email", "model", 0.5, 3.0, 0.5, 2.5, 0.3)]
    )
    latest = frame(
        D3,
        [
            ("a", "email", "model", 0.5, 10.0, 1.0, 9.0, 3.0),
            ("b", "email", "explore", 0.25, 20.0, 2.0, 18.0, 5.0),
            ("c", "discount_10", "model", 0.8, 5.0, 4.0, 1.0, -1.0),
            ("d", "none", "holdout", 1.0, 0.0, 0.0, 0.0, 0.0),
        ],
    )
    latest["reasons"] = ['[{"feature":"x","value":3,"contribution":0.8}]', None, "[]", None]
    latest["reason_1"] = ["x 3: +0.80 pp", None, None, None]
    wh.replace("strategy_assignments", {"run_date": D1}, older)
    wh.replace("strategy_assignments", {"run_date": D3}, latest)
    why = wh.query(f"SELECT customer_id, reason_1, reason_2 FROM {wh.schema}.v_assignment_reasons ORDER BY customer_id")
    assert why["customer_id"].tolist() == ["a", "c"]  # only rows with reasons
    assert why["reason_1"].tolist()[0] == "x 3: +0.80 pp" and why["reason_2"].isna().all()

    shown = normalized(wh.query(f"SELECT * FROM {wh.schema}.v_latest_assignments ORDER BY customer_id"))
    assert list(shown["customer_id"]) == ["a", "b", "c", "d"]
    assert set(shown["run_date"]) == {D3}
    assert list(shown["strategy"]) == ["email", "email", "discount_10", "none"]

    summary = summary_rows(wh)
    assert set(summary) == {(D1, "email"), (D3, "email"), (D3, "discount_10"), (D3, "none")}
    want = {
        (D1, "email"): (2, 1.0, 0.5, 4.0, 1.0, 3.0, 0.4, 2, 0, 0),
        (D3, "email"): (2, 0.5, 0.375, 30.0, 3.0, 27.0, 8.0, 1, 1, 0),
        (D3, "discount_10"): (1, 0.25, 0.8, 5.0, 4.0, 1.0, -1.0, 1, 0, 0),
        (D3, "none"): (1, 0.25, 1.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 1),
    }
    fields = [
        "customers",
        "share",
        "mean_propensity",
        "expected_revenue",
        "expected_cost",
        "expected_profit",
        "expected_incremental_profit",
        "model_customers",
        "explore_customers",
        "holdout_customers",
    ]
    for key, values in want.items():
        got = [float(summary[key][f]) for f in fields]
        assert got == pytest.approx(list(values)), key


def test_forecast_and_metrics_tables_replace_by_run_date(wh: Warehouse) -> None:
    created = datetime(2026, 3, 1, 5, 0, 0)
    forecast = pd.DataFrame(
        {
            "run_date": [D1, D1],
            "strategy": ["email", "none"],
            "segment": ["north", "north"],
            "customers": [1200, 300],
            **{
                c: [10.0, 0.0]
                for c in [
                    "expected_conversions",
                    "expected_incremental_conversions",
                    "expected_incremental_conversions_lo",
                    "expected_incremental_conversions_hi",
                    "expected_revenue",
                    "expected_incremental_revenue",
                    "expected_incremental_revenue_lo",
                    "expected_incremental_revenue_hi",
                    "expected_cost",
                    "expected_profit",
                    "roi",
                    "roi_lo",
                    "roi_hi",
                ]
            },
            "model_name": "m",
            "model_version": "7",
            "created_at": created,
        }
    )
    metrics = pd.DataFrame(  # no segment column: the default 'all' fills it
        {
            "run_date": [D1, D1],
            "model_name": "m",
            "model_version": "7",
            "metric": ["qini", "auuc"],
            "value": [0.12, 0.34],
            "source": "holdout",
            "recorded_at": created,
        }
    )
    for _ in range(2):
        wh.replace("campaign_forecast", {"run_date": D1}, forecast)
        wh.replace("model_metrics", {"run_date": D1}, metrics)
    got = rows(wh, "campaign_forecast", "strategy")
    assert list(got["customers"]) == [1200, 300]
    assert list(got["strategy"]) == ["email", "none"]
    got = rows(wh, "model_metrics", "metric")
    assert list(got["segment"]) == ["all", "all"]
    assert list(got["value"]) == [0.34, 0.12]
    with pytest.raises((ValueError, duckdb.ConstraintException, psycopg.errors.UniqueViolation)):
        wh.replace("model_metrics", {"run_date": D1}, pd.concat([metrics, metrics.iloc[:1]]))
    assert len(rows(wh, "model_metrics", "metric")) == 2


def test_data_quality_rows_keep_their_types(wh: Warehouse) -> None:
    frame = pd.DataFrame(
        {
            "run_date": [D2, D2],
            "table_name": ["events", "events"],
            "expectation": ["not_null", "unique"],
            "column_name": ["event_id", None],
            "severity": ["critical", "warning"],
            "success": [True, False],
            "unexpected_count": [0, 17],
            "element_count": [10_000_000_000, 5],
            "checked_at": datetime(2026, 3, 2, 1, 2, 3),
        }
    )
    wh.replace("data_quality", {"run_date": D2, "table_name": "events"}, frame)
    wh.replace("data_quality", {"run_date": D2, "table_name": "orders"}, frame.assign(table_name="orders"))
    wh.replace("data_quality", {"run_date": D2, "table_name": "events"}, frame)
    got = rows(wh, "data_quality", "table_name, expectation")
    assert len(got) == 4
    events = got[got["table_name"] == "events"].reset_index(drop=True)
    assert list(events["success"]) == [True, False]
    assert list(events["unexpected_count"]) == [0, 17]
    assert list(events["element_count"]) == [10_000_000_000, 5]
    assert list(events["column_name"]) == ["event_id", None]
    assert list(events["checked_at"]) == [pd.Timestamp("2026-03-02 01:02:03")] * 2


def test_postgres_columns_without_a_binary_encoder_go_through_csv(postgres_url: str) -> None:
    wh = Warehouse(postgres_url, f"t_{secrets.token_hex(6)}")
    wh.migrate()
    with psycopg.connect(postgres_url) as con:
        con.execute(f"CREATE TABLE {wh.schema}.extra (run_date DATE, amount NUMERIC(12, 2), note TEXT, at TIMESTAMP)")
    frame = pd.DataFrame(
        {
            "run_date": [D1, D1, D1],
            "amount": [Decimal("12.34"), None, Decimal("-0.50")],
            "note": ['say "hi", then\nleave', "", None],
            "at": pd.to_datetime(["2026-03-01 01:02:03.123456", "2026-03-01 00:00:00.000000", None]),
        }
    )
    wh.replace("extra", {"run_date": D1}, frame)
    wh.replace("extra", {"run_date": D1}, frame)
    with psycopg.connect(postgres_url) as con:
        got = con.execute(f"SELECT amount, note, at FROM {wh.schema}.extra ORDER BY amount NULLS LAST").fetchall()
    assert got == [
        (Decimal("-0.50"), None, None),
        (Decimal("12.34"), 'say "hi", then\nleave', datetime(2026, 3, 1, 1, 2, 3, 123456)),
        (None, "", datetime(2026, 3, 1)),
    ]


def init_via_cli(monkeypatch: pytest.MonkeyPatch, url: str, schema: str) -> str:
    monkeypatch.setenv("MSP_WAREHOUSE_URL", url)
    monkeypatch.setenv("MSP_WAREHOUSE_SCHEMA", schema)
    handlers = list(logging.getLogger().handlers)
    try:
        result = CliRunner().invoke(app, ["warehouse", "init"])
    finally:  # the CLI's log handler writes to CliRunner's stderr, closed afterwards: leave no such handler
        logging.getLogger().handlers[:] = handlers
    assert result.exit_code == 0, result.output
    return result.output


def test_bi_reader_can_select_everything_and_change_nothing(
    postgres_url: str, msp_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh = Warehouse(postgres_url, f"t_{secrets.token_hex(6)}")
    first = init_via_cli(monkeypatch, postgres_url, wh.schema)
    applied = "0001_data_quality', '0002_scoring', '0003_partition_assignments', '0004_closed_loop', "
    applied += "'0005_predicted_intervals', '0006_datasets', '0007_sales_forecast', '0008_dataset_customer_value', "
    applied += "'0009_assignment_reasons'"
    assert f"applied ['{applied}]" in first
    assert "bi_reader" in first
    assert "up to date" in init_via_cli(monkeypatch, postgres_url, wh.schema)  # idempotent, role included
    wh.replace("strategy_assignments", {"run_date": D1}, assignments(D1, 20))
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f"CREATE TABLE {wh.schema}.created_later (x INT)")  # default privileges cover it
        assert con.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'bi_reader'").fetchall() == [(False,)]
        con.execute("SET ROLE bi_reader")
        for name in [*TABLES, *VIEWS, "created_later"]:
            con.execute(f"SELECT count(*) FROM {wh.schema}.{name}").fetchall()
        assert con.execute(f"SELECT count(*) FROM {wh.schema}.v_latest_assignments").fetchall() == [(20,)]
        for statement in [
            f"INSERT INTO {wh.schema}.strategy_assignments SELECT * FROM {wh.schema}.strategy_assignments",
            f"DELETE FROM {wh.schema}.strategy_assignments",
            f"DELETE FROM {wh.schema}.strategy_assignments__2026_03_01",  # the run date's partition itself
            f"UPDATE {wh.schema}.model_metrics SET value = 0",
            f"CREATE TABLE {wh.schema}.mine (x INT)",
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute(statement)
        con.execute("RESET ROLE")
        assert con.execute(f"SELECT count(*) FROM {wh.schema}.strategy_assignments").fetchall() == [(20,)]


def test_duckdb_init_explains_read_only_access(msp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = msp_home / "warehouse.duckdb"
    output = init_via_cli(monkeypatch, f"duckdb:///{path}", "marketing")
    assert "read_only=True" in output
    wh = Warehouse(f"duckdb:///{path}", "marketing")
    wh.replace("strategy_assignments", {"run_date": D1}, assignments(D1, 20))
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marketing.v_latest_assignments").fetchall() == [(20,)]
        with pytest.raises(duckdb.InvalidInputException, match="read-only"):
            con.execute("DELETE FROM marketing.strategy_assignments")

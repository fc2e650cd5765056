"""The closed loop end to end: nights scored, answered by the simulator, ingested, and measured.

The first night (END) is scored by the package's `scored` fixture; `jobs.loop.run_loop` then lets the
simulator answer each night (`respond`: outcomes drawn from its truth, written to the landing zone over
the attribution window), ingests the answered days, scores the next night through Airflow, and runs
`airflow dags test marketing_evaluate` on the day the last night's window closes.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from jobs import ui
from jobs.airflow_local import dags_test, failed_tasks
from jobs.loop import run_loop
from jobs.pipeline.lake import partition_path
from jobs.warehouse import Warehouse
from tests.e2e.conftest import END, environ
from tests.support.spark_cluster import free_port

NIGHTS = 2


def effects(settings) -> pd.DataFrame:
    sql = "SELECT * FROM marketing.strategy_effects ORDER BY run_date, strategy, segment"
    frame = Warehouse.from_settings(settings).query(sql)
    frame["run_date"] = frame["run_date"].astype(str).str[:10]
    return frame.drop(columns=["evaluated_at"]).reset_index(drop=True)


def dag_runner(settings):
    def run(dag_id: str, ds: str) -> None:
        result = dags_test(settings, dag_id, ds, {"ds": ds})
        assert result.ok, f"{dag_id} {ds}: {result.state}, failed {failed_tasks(settings, result)}; {result.log_path}"

    return run


@pytest.fixture(scope="module")
def evaluated(scored: dict) -> dict:
    settings = scored["settings"]
    loop = run_loop(settings, END, NIGHTS, dag_runner(settings))
    assignments = {ds: pd.read_parquet(partition_path(settings, "gold", "assignments", ds)) for ds in loop.nights}
    return {"settings": settings, "loop": loop, "assignments": assignments, "effects": effects(settings)}


def test_effects_per_night_strategy_and_segment_are_written_with_the_model_version(evaluated: dict) -> None:
    settings, loop, eff = evaluated["settings"], evaluated["loop"], evaluated["effects"]
    assert sorted(set(eff["run_date"])) == loop.nights
    for ds, frame in evaluated["assignments"].items():
        assert frame["model_strategy"].notna().all()
        treated = frame[(frame["reason"] == "model") & (frame["strategy"] != "no_action")]
        night = eff[eff["run_date"] == ds]
        pooled = night[night["segment"] == "all"].set_index("strategy")
        assert set(pooled.index) == set(treated["strategy"])
        counts = treated["strategy"].value_counts()
        assert all(pooled.loc[s, "customers"] == counts[s] for s in counts.index)  # every assignment has an outcome
        holdout = frame.loc[frame["reason"] == "holdout", "model_strategy"].value_counts()
        assert all(pooled.loc[s, "holdout_customers"] == holdout.get(s, 0) for s in counts.index)
        per_segment = night[night["segment"] != "all"].groupby("strategy")["customers"].sum()
        assert (per_segment == pooled["customers"]).all()
        assert pooled["click_through_rate"].between(0, 1).all() and (pooled["cost"] > 0).all()
    assert set(eff["model_version"]) == {"1"}

    wh = Warehouse.from_settings(settings)
    metrics = wh.query("SELECT run_date, metric, value FROM marketing.model_metrics WHERE source = 'evaluate'")
    assert metrics["run_date"].nunique() == NIGHTS
    values = metrics.groupby("metric")["value"]
    assert (values.min()["outcome_coverage"], values.max()["outcome_coverage"]) == (1.0, 1.0)
    assert values.min()["realised_auc"] > 0.5 and values.max()["realised_auc"] < 1.0
    assert len(wh.query("SELECT * FROM marketing.v_strategy_effects")) == (eff["segment"] == "all").sum()
    drift = wh.query("SELECT run_date, column_name, level FROM marketing.feature_drift")
    drift["run_date"] = drift["run_date"].astype(str).str[:10]
    assert drift["run_date"].nunique() == NIGHTS
    first, second = (drift[drift["run_date"] == ds] for ds in loop.nights[:2])
    assert set(first["level"]) == {"ok"}, "the night of the training date: the training population itself"
    # the night after a campaign to most customers: their contact history moved, and drift says so
    alerts = set(second.loc[second["level"] == "alert", "column_name"])
    assert {"campaigns_received", "emails_received_90d"} <= alerts, alerts

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(f"{settings.mlflow_experiment}-evaluation")
    for ds in loop.nights:
        (run,) = client.search_runs([experiment.experiment_id], f"tags.`msp.run_date` = '{ds}'")
        assert run.data.tags["msp.model_version"] == "1" and run.data.tags["msp.training_run_id"]
        assert run.data.metrics["outcome_coverage"] == 1.0
        assert 0 <= run.data.metrics["cells_inside_predicted_interval_share"] <= 1
        assert "strategy_effects.csv" in {a.path for a in client.list_artifacts(run.info.run_id)}
    # the predicted intervals carry the model's held-out error (its training run measured it)
    training = client.get_run(run.data.tags["msp.training_run_id"]).data.metrics
    assert training["uplift_error_var"] >= 0
    pooled = eff[eff["segment"] == "all"]
    assert (pooled["predicted_incremental_conversions_lo"] < pooled["predicted_incremental_conversions"]).all()
    assert (pooled["predicted_incremental_conversions"] < pooled["predicted_incremental_conversions_hi"]).all()
    # rebuilt from the assignments: each half-width is z * n * sqrt(the sampling variance the model predicts
    # + the uplift_error_var its training run logged), so the evaluation used the assigning version's figure
    z, error_var = 1.959963984540054, training["uplift_error_var"]
    print(f"uplift_error_var of the training run: {error_var:.3g}")
    for ds, frame in evaluated["assignments"].items():
        for strategy, row in pooled[pooled["run_date"] == ds].set_index("strategy").iterrows():
            t = frame.loc[(frame["reason"] == "model") & (frame["strategy"] == strategy), "p_convert_chosen"]
            h = frame.loc[(frame["reason"] == "holdout") & (frame["model_strategy"] == strategy), "p_convert_control"]
            sampling = t.mean() * (1 - t.mean()) / len(t) + h.mean() * (1 - h.mean()) / len(h)
            lo, hi = row["predicted_incremental_conversions_lo"], row["predicted_incremental_conversions_hi"]
            half = (hi - lo) / 2 / (z * row["customers"])
            assert half**2 == pytest.approx(sampling + error_var, rel=1e-6), (ds, strategy, sampling, error_var)


def test_realised_uplift_of_each_strategy_against_the_truth(evaluated: dict) -> None:
    """The realised incremental conversion rate lies near the true uplift of the customers who got it."""
    settings, eff = evaluated["settings"], evaluated["effects"]
    inside = cells = 0
    for ds, frame in evaluated["assignments"].items():
        truth = pd.read_parquet(settings.truth / "campaign_truth" / f"ds={ds}")
        p = truth.pivot(index="customer_id", columns="strategy", values="p_convert")
        pooled = eff[(eff["run_date"] == ds) & (eff["segment"] == "all")].set_index("strategy")
        for strategy, row in pooled.iterrows():
            ids = frame.loc[(frame["reason"] == "model") & (frame["strategy"] == strategy), "customer_id"]
            true_uplift = float((p.loc[ids, strategy] - p.loc[ids, "no_action"]).mean())
            lo, hi = row["incremental_conversion_rate_lo"], row["incremental_conversion_rate_hi"]
            realised, se = row["incremental_conversion_rate"], (hi - lo) / (2 * 1.959964)
            print(ds, strategy, f"true {true_uplift:.4f} realised {realised:.4f} [{lo:.4f}, {hi:.4f}]")
            inside, cells = inside + (lo <= true_uplift <= hi), cells + 1
            # a 95% interval misses 1 time in 20 by design: a miss beyond 3.3 standard errors (1 in 1,000) fails
            assert abs(realised - true_uplift) <= 3.29 * se, (ds, strategy, true_uplift, row)
    print(f"{inside} of {cells} 95% intervals contain the true uplift")


def inside_share(evaluated: dict) -> tuple[float, int]:
    eff = evaluated["effects"]
    cells = eff.loc[eff["segment"] != "all", "realised_inside_predicted_interval"].dropna()
    print(f"{int(cells.sum())} of {len(cells)} (night, strategy, segment) cells inside ({cells.mean():.0%})")
    for ds in evaluated["loop"].nights:
        night = eff[(eff["segment"] != "all") & (eff["run_date"] == ds)]["realised_inside_predicted_interval"].dropna()
        print(f"  {ds}: {int(night.sum())} of {len(night)}")
    return float(cells.mean()), len(cells)


def test_over_the_nights_the_realised_effects_lie_inside_the_predicted_intervals(evaluated: dict) -> None:
    """Issue 6's figure: the realised effect of (night, strategy, segment) cells inside the predicted 95% interval.

    Measured 20 of 20 cells (10 a night; 26 of 27 before the hurdle models, whose policy gives coupon_10
    to about 200 customers, too few for most segments' cells). The floor is 85%, not the issue's 90%:
    with 20-27 cells, intervals that cover exactly 95% miss 3 or more cells (below 90%) in 8-15% of runs,
    and 4-5 or more (below 85%) in about 1-2%.
    """
    share, cells = inside_share(evaluated)
    assert cells >= 8 * NIGHTS and share >= 0.85


def test_a_rerun_replaces_the_run_dates_with_identical_rows(evaluated: dict) -> None:
    settings, loop = evaluated["settings"], evaluated["loop"]
    dag_runner(settings)("marketing_evaluate", loop.evaluated_on)
    pd.testing.assert_frame_equal(effects(settings), evaluated["effects"])
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(f"{settings.mlflow_experiment}-evaluation")
    assert len(client.search_runs([experiment.experiment_id], "tags.`msp.role` = 'evaluation'")) == NIGHTS


def evaluation_rows(settings) -> dict[str, pd.DataFrame]:
    """What marketing_evaluate writes: strategy_effects and its model_metrics, without the write times."""
    metrics = Warehouse.from_settings(settings).query(
        "SELECT * FROM marketing.model_metrics WHERE source = 'evaluate' ORDER BY run_date, metric, segment"
    )
    metrics["run_date"] = metrics["run_date"].astype(str).str[:10]
    return {"strategy_effects": effects(settings), "model_metrics": metrics.drop(columns=["recorded_at"])}


def evaluate_runs(settings) -> list[dict]:
    """marketing_evaluate's runs in the embedded metadata database (run type, state, logical date)."""
    db = settings.path(settings.airflow_home) / "airflow.db"
    with closing(sqlite3.connect(db)) as con:
        con.row_factory = sqlite3.Row
        rows = con.execute(
            "SELECT run_id, run_type, state, logical_date FROM dag_run WHERE dag_id = 'marketing_evaluate'"
        ).fetchall()
    return [dict(r) for r in rows]


@pytest.mark.timeout(1200)
def test_a_backfill_produces_the_same_tables_as_the_days_one_by_one(evaluated: dict) -> None:
    """``airflow backfill create`` over the evaluation days, run by a real scheduler (``airflow standalone``,
    LocalExecutor), writes the same strategy_effects and model_metrics as ``airflow dags test`` day by day."""
    settings, loop = evaluated["settings"], evaluated["loop"]
    first = (date.fromisoformat(loop.nights[0]) + timedelta(days=settings.attribution_days)).isoformat()
    days = [first, loop.evaluated_on]  # the first night's window closes, then the last night's
    assert date.fromisoformat(days[1]) - date.fromisoformat(days[0]) == timedelta(days=NIGHTS - 1)
    for ds in days:  # one by one, the run date from the logical date, as in a backfill's runs
        result = dags_test(settings, "marketing_evaluate", ds)
        assert result.ok, f"{ds}: {result.state}, failed {failed_tasks(settings, result)}; {result.log_path}"
    one_by_one = evaluation_rows(settings)
    assert sorted(set(one_by_one["strategy_effects"]["run_date"])) == loop.nights

    wh = Warehouse.from_settings(settings)  # start the backfill from an empty evaluation
    with closing(wh.connect()) as con:
        con.execute("DELETE FROM marketing.strategy_effects")
        con.execute("DELETE FROM marketing.model_metrics WHERE source = 'evaluate'")
    assert evaluation_rows(settings)["strategy_effects"].empty

    # the CLI as a user runs it: `msp airflow ...` is Airflow's CLI on the embedded home. The backfill is
    # created before the scheduler starts: SQLite takes one writer at a time, and the CLI's inserts fail
    # with "database is locked" against a busy scheduler (docs/EVALUATION.md)
    env = {**os.environ, "MSP_HOME": str(settings.home)}
    airflow = [str(Path(sys.executable).with_name("msp")), "airflow"]
    subprocess.run([*airflow, "dags", "unpause", "marketing_evaluate"], env=env, check=True, capture_output=True)
    # the DAG's runs share one DuckDB file and replace overlapping run dates: one backfill run at a time
    created = subprocess.run(
        [*airflow, "backfill", "create", "--dag-id", "marketing_evaluate", "--from-date", days[0],
         "--to-date", f"{days[-1]}T23:59:59", "--max-active-runs", "1"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    backfill = [r for r in evaluate_runs(settings) if r["run_type"] == "backfill"]
    assert len(backfill) == len(days) and {r["state"] for r in backfill} == {"queued"}, backfill

    # backfill runs only; no run of today from the nightly time while the scheduler is up
    with environ({"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}):
        procs = ui.start(settings, airflow_port=free_port(), mlflow_port=None)
    try:
        healthy = ui.wait_healthy(procs, timeout_s=240)
        assert healthy == {"airflow": True}, procs[0].log_path.read_text(errors="replace")[-3000:]
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            time.sleep(5)
            try:
                backfill = [r for r in evaluate_runs(settings) if r["run_type"] == "backfill"]
            except sqlite3.OperationalError:  # the scheduler is writing: read again on the next poll
                continue
            if all(r["state"] in ("success", "failed") for r in backfill):
                break
    finally:
        ui.stop(procs)
    assert sorted(str(r["logical_date"])[:10] for r in backfill) == days, backfill
    assert {r["state"] for r in backfill} == {"success"}, procs[0].log_path
    # nothing but the backfill ran meanwhile: no nightly run, no asset-triggered run
    assert {r["run_type"] for r in evaluate_runs(settings)} <= {"backfill", "manual"}

    backfilled = evaluation_rows(settings)
    for table, frame in one_by_one.items():
        pd.testing.assert_frame_equal(backfilled[table], frame, obj=table)
    client = mlflow.MlflowClient()  # the evaluation's MLflow runs were reused, not duplicated
    experiment = client.get_experiment_by_name(f"{settings.mlflow_experiment}-evaluation")
    assert len(client.search_runs([experiment.experiment_id], "tags.`msp.role` = 'evaluation'")) == NIGHTS

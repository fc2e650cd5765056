"""marketing_evaluate end to end: the night's assignments answered by the simulator, ingested, and measured.

The scored night (END) is answered with `respond` (outcomes drawn from the simulator's truth and written to
the landing zone over the attribution window), the window's events, orders and campaign log are ingested
and cleaned, and `airflow dags test marketing_evaluate` runs on the day the window closes.
"""

from __future__ import annotations

from datetime import date, timedelta

import mlflow
import numpy as np
import pandas as pd
import pytest

from jobs.airflow_local import dags_test, failed_tasks
from jobs.pipeline.run import clean_step, ingest_step
from jobs.simulator.respond import respond
from jobs.warehouse import Warehouse
from tests.e2e.conftest import END

CLOSE = (date.fromisoformat(END) + timedelta(days=7)).isoformat()


def run_evaluate(settings) -> None:
    run = dags_test(settings, "marketing_evaluate", CLOSE, {"ds": CLOSE})
    assert run.ok, f"DAG run {run.state}, failed tasks {failed_tasks(settings, run)}; see {run.log_path}"


def effects(settings) -> pd.DataFrame:
    sql = "SELECT * FROM marketing.strategy_effects ORDER BY strategy, segment"
    frame = Warehouse.from_settings(settings).query(sql)
    return frame.drop(columns=["evaluated_at"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def evaluated(scored: dict) -> dict:
    settings, frame = scored["settings"], scored["duckdb"]
    file = settings.home / "assignments.parquet"
    frame.assign(is_holdout=frame["reason"] == "holdout").to_parquet(file)
    respond(file, date.fromisoformat(END), settings.landing, settings.truth)
    for table in ("events", "orders", "campaign_log"):
        ingest_step(settings, table, CLOSE, END)
        clean_step(settings, table, CLOSE, END)
    run_evaluate(settings)
    return {"settings": settings, "assignments": frame, "effects": effects(settings)}


def test_effects_per_strategy_and_segment_are_written_with_the_model_version(evaluated: dict) -> None:
    settings, frame, eff = evaluated["settings"], evaluated["assignments"], evaluated["effects"]
    assert "model_strategy" in frame and frame["model_strategy"].notna().all()
    treated = frame[(frame["reason"] == "model") & (frame["strategy"] != "no_action")]
    pooled = eff[eff["segment"] == "all"].set_index("strategy")
    assert set(pooled.index) == set(treated["strategy"])
    counts = treated["strategy"].value_counts()
    assert all(pooled.loc[s, "customers"] == counts[s] for s in counts.index)  # every assignment has an outcome
    holdout = frame[frame["reason"] == "holdout"]["model_strategy"].value_counts()
    assert all(pooled.loc[s, "holdout_customers"] == holdout.get(s, 0) for s in counts.index)
    per_segment = eff[eff["segment"] != "all"].groupby("strategy")["customers"].sum()
    assert (per_segment == pooled["customers"]).all()
    assert set(eff["model_version"]) == {"1"} and set(eff["run_date"].astype(str)) == {END}
    emailed = pooled.index[pooled.index != "no_action"]
    assert pooled.loc[emailed, "click_through_rate"].between(0, 1).all()
    assert (pooled["roi"].notna()).all() and (pooled["cost"] > 0).all()

    wh = Warehouse.from_settings(settings)
    metrics = wh.query("SELECT metric, value FROM marketing.model_metrics WHERE source = 'evaluate'")
    values = dict(zip(metrics["metric"], metrics["value"], strict=True))
    assert values["outcome_coverage"] == 1.0 and values["assignments"] == len(frame)
    assert 0.5 < values["realised_auc"] < 1.0
    assert 0 < values["realised_conversion_rate"] < 1
    view = wh.query("SELECT * FROM marketing.v_strategy_effects")
    assert len(view) == len(pooled)

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(f"{settings.mlflow_experiment}-evaluation")
    (run,) = client.search_runs([experiment.experiment_id], f"tags.`msp.run_date` = '{END}'")
    assert run.data.tags["msp.model_version"] == "1" and run.data.tags["msp.training_run_id"]
    assert run.data.metrics["outcome_coverage"] == 1.0
    assert "strategy_effects.csv" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_realised_uplift_of_each_strategy_against_the_truth(evaluated: dict) -> None:
    """The realised incremental conversion rate lies near the true uplift of the customers who got it."""
    settings, frame, eff = evaluated["settings"], evaluated["assignments"], evaluated["effects"]
    truth = pd.read_parquet(settings.truth / "campaign_truth" / f"ds={END}")
    p = truth.pivot(index="customer_id", columns="strategy", values="p_convert")
    pooled = eff[eff["segment"] == "all"].set_index("strategy")
    inside = 0
    for strategy, row in pooled.iterrows():
        ids = frame.loc[(frame["reason"] == "model") & (frame["strategy"] == strategy), "customer_id"]
        true_uplift = float((p.loc[ids, strategy] - p.loc[ids, "no_action"]).mean())
        lo, hi = row["incremental_conversion_rate_lo"], row["incremental_conversion_rate_hi"]
        se = (hi - lo) / (2 * 1.959964)
        realised = row["incremental_conversion_rate"]
        print(strategy, f"true {true_uplift:.4f} realised {realised:.4f} [{lo:.4f}, {hi:.4f}]")
        inside += lo <= true_uplift <= hi
        # each 95% interval misses 1 time in 20 by design: a miss beyond 3.3 standard errors (1 in 1,000) fails
        assert abs(realised - true_uplift) <= 3.29 * se, (strategy, true_uplift, row)
    print(f"{inside} of {len(pooled)} 95% intervals contain the true uplift")
    assert np.isfinite(pooled["predicted_incremental_conversions"]).all()


def test_a_rerun_replaces_the_run_date_with_identical_rows(evaluated: dict) -> None:
    settings = evaluated["settings"]
    run_evaluate(settings)
    pd.testing.assert_frame_equal(effects(settings), evaluated["effects"])
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(f"{settings.mlflow_experiment}-evaluation")
    assert len(client.search_runs([experiment.experiment_id], f"tags.`msp.run_date` = '{END}'")) == 1

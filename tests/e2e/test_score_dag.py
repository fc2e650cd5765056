"""marketing_score end to end through Airflow: warehouse rows in DuckDB and PostgreSQL, reruns, and the
night's assignments valued against the simulator's truth."""

from __future__ import annotations

import json
from datetime import date

import duckdb
import pandas as pd
import pytest
from pydantic import SecretStr

from jobs.models.reasons import format_reason
from jobs.scoring.catalogue import load_catalogue
from jobs.simulator.respond import respond
from jobs.warehouse import Warehouse
from tests.e2e.conftest import END, rows, run_score
from tests.support.policy_truth import policy_against_truth

KEY = ["run_date", "customer_id"]


def test_assignments_in_duckdb_are_complete_and_recorded(scored: dict) -> None:
    settings, frame = scored["settings"], scored["duckdb"]
    features = pd.read_parquet(settings.lake / "gold" / "features" / f"ds={END}")
    assert len(frame) == len(features) and not frame.duplicated(KEY).any()
    assert set(frame["customer_id"]) == set(features["customer_id"])
    assert set(frame["reason"]) == {"model", "explore", "holdout"}
    assert frame["propensity"].between(0, 1, inclusive="right").all()
    assert (frame.loc[frame["reason"] == "holdout", "strategy"] == "no_action").all()
    # the served model: a copy of the best family champion (the first night: the default, XGBoost)
    assert set(frame["model_name"]) == {"msp_uplift"} and set(frame["model_version"]) == {"1"}
    recs = frame["recommended_products"].notna()
    assert (frame.loc[recs, "strategy"] == "email_recommendations").all()
    assert recs.sum() == (frame["strategy"] == "email_recommendations").sum()
    catalogue = load_catalogue()
    assert frame["expected_cost"].sum() <= catalogue.budget_for(len(frame)) + 1e-6
    counts = frame["strategy"].value_counts()
    caps = dict(zip(catalogue.names, catalogue.caps_for(len(frame)), strict=True))
    assert all(counts.get(s, 0) <= caps[s] for s in catalogue.names)
    wh = Warehouse.from_settings(settings)
    forecast = wh.query(f"SELECT * FROM marketing.campaign_forecast WHERE run_date = DATE '{END}'")
    assert forecast["customers"].sum() == len(frame)
    summary = wh.query(f"SELECT * FROM marketing.v_strategy_summary WHERE run_date = DATE '{END}'")
    assert summary["customers"].sum() == len(frame)


def test_model_chosen_assignments_carry_three_reasons_and_the_others_none(scored: dict) -> None:
    """Reasons (docs/SCORING.md): the top three uplift contributions of each model-chosen contact, largest
    first, in JSON and in plain words; held-out, explored and no_action rows have none."""
    settings, frame = scored["settings"], scored["duckdb"]
    chosen = (frame["reason"] == "model") & (frame["strategy"] != "no_action")
    reasons = frame.loc[chosen, "reasons"].map(lambda text: json.loads(text) if isinstance(text, str) else None)
    print("reasons per model-chosen assignment", reasons.map(lambda r: -1 if r is None else len(r)).value_counts())
    assert chosen.sum() > 0 and reasons.map(lambda r: r is not None and len(r) == 3).all()
    for items, first in zip(reasons, frame.loc[chosen, "reason_1"], strict=True):
        sizes = [abs(r["contribution"]) for r in items]
        assert sizes == sorted(sizes, reverse=True) and sizes[-1] > 0
        assert first == format_reason(items[0]["feature"], items[0]["value"], items[0]["contribution"])
    others = frame.loc[~chosen, ["reasons", "reason_1", "reason_2", "reason_3"]]
    assert others.isna().all().all() and (frame["reason"] == "holdout").sum() > 0
    view = Warehouse.from_settings(settings).query(
        f"SELECT count(*) AS n FROM marketing.v_assignment_reasons WHERE run_date = DATE '{END}'"
    )
    assert int(view["n"].iloc[0]) == chosen.sum()


def test_publish_audits_the_run_for_disparities_between_customer_groups(scored: dict) -> None:
    """The DAG's publish wrote the fairness audit: every customer in one group per default attribute, the
    groups' contact shares add up to the night's contacts, one ratio per measure and attribute."""
    settings, frame = scored["settings"], scored["duckdb"]
    metrics = Warehouse.from_settings(settings).query(
        "SELECT metric, segment, value, model_version FROM marketing.model_metrics "
        f"WHERE source = 'fairness' AND run_date = DATE '{END}'"
    )
    assert set(metrics["model_version"]) == set(frame["model_version"])
    contacted = int((frame["strategy"] != "no_action").sum())
    for attribute in ("region", "gender", "age"):
        per_group = metrics[metrics["metric"].str.startswith(f"fairness:{attribute}:")].pivot(
            index="segment", columns="metric", values="value"
        )
        customers = per_group[f"fairness:{attribute}:customers"]
        assert customers.sum() == len(frame)
        shares = per_group[f"fairness:{attribute}:contact_share"]
        assert (customers * shares).sum() == pytest.approx(contacted)
        ratios = metrics[metrics["metric"].str.startswith(f"fairness_ratio:{attribute}:")]
        assert len(ratios) == 3
    regions = set(metrics.loc[metrics["metric"] == "fairness:region:customers", "segment"])
    assert regions - {"unknown"} == {"north", "south", "east", "west", "central"}


def test_a_rerun_writes_postgresql_identically_and_republishing_replaces_the_date(
    scored: dict, postgres_url: str
) -> None:
    """The DAG rerun for the date (into PostgreSQL) makes the same assignments; publishing the date again
    replaces it in either warehouse, never duplicates it (the step a rerun ends with)."""
    from jobs.scoring.score import publish
    from jobs.spark import get_spark

    settings = scored["settings"]
    run_score(settings, {"MSP_WAREHOUSE_URL": postgres_url})
    pg = rows(postgres_url)
    duck = scored["duckdb"]
    assert len(pg) == len(duck) and not pg.duplicated(KEY).any()
    pd.testing.assert_frame_equal(
        pg.drop(columns=["run_date"]), duck.drop(columns=["run_date"]), check_dtype=False, check_exact=False, rtol=1e-9
    )
    forecast = "SELECT * FROM marketing.campaign_forecast WHERE run_date = DATE '{}' ORDER BY strategy, segment"
    for url, before in ((postgres_url, pg), (settings.resolved_warehouse_url, duck)):
        target = settings.model_copy(update={"warehouse_url": SecretStr(url)})
        wh = Warehouse.from_settings(target)
        planned = wh.query(forecast.format(END)).drop(columns=["created_at"])
        publish(get_spark(target, "msp-publish"), target, END)
        pd.testing.assert_frame_equal(rows(url), before)  # scored_at aside, the same rows, once each
        again = wh.query(forecast.format(END)).drop(columns=["created_at"])
        pd.testing.assert_frame_equal(again, planned, check_exact=False, rtol=1e-9)
    con = duckdb.connect(settings.resolved_warehouse_url.removeprefix("duckdb:///"), read_only=True)
    count = f"SELECT count(*) FROM marketing.strategy_assignments WHERE run_date = DATE '{END}'"
    assert con.execute(count).fetchall()[0][0] == len(duck)  # no duplicates of the date


def test_the_nights_policy_against_the_simulators_truth(scored: dict) -> None:
    """The night's decisions, valued by the simulator's truth, against what a blanket rule and the features allow.

    Asserted (issue 19): at least 1.4x the best single strategy within the same budget, and at least
    0.82 of the feature ceiling (the true incremental profit regressed on these features without
    noise, then optimised). Measured 2026-12-07 (draws first, effects from every campaign row): 1.532x
    and 0.863 (0.908 of the ceiling put through the same holdout and exploration), 0.640 of the oracle;
    before, 1.469x and 0.827. The figures, and those against the oracle, are printed.
    """
    settings, frame = scored["settings"], scored["duckdb"]
    file = settings.home / "assignments.parquet"
    frame.assign(is_holdout=frame["reason"] == "holdout").to_parquet(file)
    respond(file, date.fromisoformat(END), settings.landing, settings.truth)
    features = pd.read_parquet(settings.lake / "gold" / "features" / f"ds={END}")
    report = policy_against_truth(frame, features, settings.truth, END, load_catalogue())
    print("policy vs truth", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in report.items()})
    assert report["ratio_to_best_single"] >= 1.4, report
    assert report["ratio_to_feature_ceiling"] >= 0.82, report
    assert report["oracle"] >= report["policy"] - 1e-6

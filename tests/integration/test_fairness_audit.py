"""The scoring run's fairness audit: Spark aggregates as the pandas report does, rows land in model_metrics,
and the disparity alert reaches a real webhook (a local server) above the threshold only."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from jobs.scoring.fairness import alert_disparities, audit_run, disparity_report
from jobs.settings import Settings
from tests.support.webhook import Receiver
from tests.unit.test_fairness import DISCOUNTS, frame

DS = "2026-10-30"
# ages by region: north 25 (<30), south 40 and west 45 ([30,50)), east 60 but one unknown
AGES = [25.0] * 4 + [40.0] * 4 + [60.0, 60.0, 60.0, 60.0, None] + [45.0]


def write_run(settings: Settings) -> pd.DataFrame:
    """gold/assignments and gold/features of DS for the unit tests' 14 customers; returns them joined."""
    customers = frame().assign(customer_id=[f"c{i:02d}" for i in range(14)], age=AGES)
    lake = settings.lake / "gold"
    for table, columns in {
        "assignments": customers[["customer_id", "strategy", "expected_profit"]].assign(
            model_name="msp_uplift", model_version="7"
        ),
        "features": customers[["customer_id", "region", "age"]],
    }.items():
        (lake / table / f"ds={DS}").mkdir(parents=True)
        columns.to_parquet(lake / table / f"ds={DS}" / "part-0.parquet", index=False)
    return customers


def test_the_run_audit_matches_the_pure_report_records_metrics_and_alerts(
    spark, tmp_path: Path, receiver: Receiver
) -> None:
    settings = Settings(
        home=tmp_path,
        fairness_attributes=["region", "age"],
        fairness_bands={"age": [30, 50]},
        fairness_min_group_size=3,
        fairness_alert_ratio=2.75,
        alert_webhook_url=receiver.url,
    )
    customers = write_run(settings)
    region, age = audit_run(spark, settings, DS)

    kw = {"control": "no_action", "discount_strategies": DISCOUNTS, "min_group_size": 3, "threshold": 2.75}
    for got, edges in ((region, None), (age, [30, 50])):
        expected = disparity_report(customers, got.attribute, edges=edges, **kw)
        pd.testing.assert_frame_equal(got.groups, expected.groups, check_dtype=False)
    # age: <30 = north (0.75, 0.5, 2.0); [30,50) = south + west (2/5, 2/5, 16/5); >=50 = 4 of east
    # (free shipping + e-mail: 0.5, no coupon: 0, 1.0); unknown = one customer, left out
    assert age.groups["group"].tolist() == ["<30", "[30,50)", ">=50", "unknown"] and age.excluded == ["unknown"]
    assert age.ratios["contact_share"].value == pytest.approx(0.75 / 0.4)
    assert age.ratios["discount_share"].value == math.inf
    assert age.ratios["mean_expected_profit"].value == pytest.approx(3.2)
    assert region.alerts == ["contact_share"] and age.alerts == ["discount_share", "mean_expected_profit"]

    from jobs.warehouse import Warehouse

    rows = Warehouse.from_settings(settings).query(
        "SELECT metric, segment, value, model_version FROM marketing.model_metrics WHERE source = 'fairness'"
    )
    got = {(r.metric, r.segment): r.value for r in rows.itertuples()}
    assert set(rows["model_version"]) == {"7"}
    assert got[("fairness_ratio:region:contact_share", "all")] == pytest.approx(3.0)
    assert got[("fairness_ratio:age:discount_share", "all")] == math.inf
    assert got[("fairness:age:discount_share", "[30,50)")] == pytest.approx(0.4)
    assert got[("fairness:region:customers", "west")] == 1.0 and got[("fairness:region:included", "west")] == 0.0
    assert len(rows) == 2 * 4 + 2 * 4 * 5  # per attribute: 3 ratios + excluded count; per group 5 rows

    [body] = receiver.received
    assert body["event"] == "fairness_disparity" and body["run_date"] == DS and body["model"] == "msp_uplift v7"
    above = {(r["attribute"], r["measure"]): r for r in body["ratios"]}
    assert set(above) == {("region", "contact_share"), ("age", "discount_share"), ("age", "mean_expected_profit")}
    assert above[("region", "contact_share")]["ratio"] == pytest.approx(3.0)
    assert above[("age", "discount_share")]["ratio"] is None and above[("age", "discount_share")]["ratio_text"] == "inf"
    assert body["excluded_groups"] == {"region": ["west"], "age": ["unknown"]}

    # a rerun replaces the date's rows instead of adding to them
    audit_run(spark, settings, DS)
    again = Warehouse.from_settings(settings).query("SELECT count(*) AS n FROM marketing.model_metrics")
    assert int(again["n"].iloc[0]) == len(rows)


def test_no_alert_at_or_below_the_threshold(receiver: Receiver) -> None:
    kw = {"control": "no_action", "discount_strategies": DISCOUNTS, "min_group_size": 3}
    at = disparity_report(frame(), "region", threshold=3.0, **kw)  # ratios 3.0, 2.5, 2.0
    assert alert_disparities([at], DS, ("m", "1"), receiver.url) is False
    assert receiver.received == []  # the POST is synchronous: nothing was sent
    above = disparity_report(frame(), "region", threshold=2.9, **kw)
    assert alert_disparities([above], DS, ("m", "1"), receiver.url) is True
    [body] = receiver.received
    assert [(r["measure"], r["max_group"], r["min_group"]) for r in body["ratios"]] == [
        ("contact_share", "north", "south")
    ]
    assert body["summary"] == f"fairness disparity on {DS} above 2.9x: region contact_share 3.000 (north vs south)"


@pytest.mark.parametrize(
    ("attributes", "bands", "message"),
    [
        (["region", "income"], {}, "MSP_FAIRNESS_ATTRIBUTES: income not among the feature columns"),
        (["age"], {}, "MSP_FAIRNESS_BANDS: numeric attributes need band edges: age"),
        (["region"], {"region": [1.0]}, "MSP_FAIRNESS_BANDS: bands of attributes that are not numeric: region"),
    ],
)
def test_a_misconfigured_attribute_names_the_setting(
    spark, tmp_path: Path, attributes: list[str], bands: dict, message: str
) -> None:
    from jobs.pipeline.lake import PipelineError

    settings = Settings(home=tmp_path, fairness_attributes=attributes, fairness_bands=bands)
    write_run(settings)
    with pytest.raises(PipelineError, match=message):
        audit_run(spark, settings, DS)

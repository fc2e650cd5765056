"""A data set's decisions and held-out figures on hand-worked arrays; its mapping keys validated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.datasets.data import hashed_split
from jobs.datasets.policy import assign, incremental_value, policy_report, realised_value
from jobs.imports.campaign_log import CampaignMapping, EconomicsSpec

GAIN = np.array(
    [
        [0.0, 3.0, 1.0],  # net of cost 1 and 2: arm 1 (+2)
        [0.0, 0.5, 4.0],  # arm 2 (+2)
        [0.0, 0.8, 1.5],  # nothing pays: control
    ]
)
COST = np.array([0.0, 1.0, 2.0])


def test_min_roi_treats_while_the_profit_per_unit_of_cost_reaches_it():
    assert assign(GAIN, COST).tolist() == [1, 2, 0]
    # min_roi 1: gain must reach 2 x cost: row 0 arm 1 (3 - 2 = 1 > 0), row 1 arm 2 (4 - 4 = 0: not positive)
    assert assign(GAIN, COST, min_roi=1.0).tolist() == [1, 0, 0]


def test_a_budget_keeps_the_best_use_of_each_euro():
    assert assign(GAIN, COST, budget=10.0).tolist() == [1, 2, 0]  # spend 3 fits
    # budget 1: only row 0's arm 1 (profit 2 per 1 spent) fits; row 1's arm 2 (cost 2) does not
    actions = assign(GAIN, COST, budget=1.0)
    assert actions.tolist() == [1, 0, 0] and COST[actions].sum() <= 1.0
    assert assign(GAIN, COST, budget=0.0).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="not both"):
        assign(GAIN, COST, budget=1.0, min_roi=0.5)


def test_value_comes_from_conversions_times_their_value_or_from_revenue():
    p = np.array([[0.1, 0.3]])
    revenue = np.array([[2.0, 5.0]])
    assert incremental_value(p, revenue, EconomicsSpec()).tolist() == [[0.0, 3.0]]
    np.testing.assert_allclose(incremental_value(p, revenue, EconomicsSpec(value_per_conversion=10.0)), [[0.0, 2.0]])
    assert realised_value(np.array([1, 0]), np.array([7.0, 0.0]), EconomicsSpec(value_per_conversion=4.0)).tolist() == [
        4.0,
        0.0,
    ]


def test_policy_report_irr_nir_and_the_best_single_strategy():
    # six logged rows, two arms at propensity 1/2; the policy targets rows 0-3 with arm 1
    logged = np.array([1, 0, 1, 0, 1, 0])
    converted = np.array([1, 0, 1, 1, 0, 0], dtype=float)
    value = converted * 10.0
    actions = np.array([1, 1, 1, 1, 0, 0])
    cost = np.array([0.0, 1.0])
    q = np.zeros((6, 2))
    out = policy_report(actions, logged, np.full(6, 0.5), converted, value, cost, q, ("no_action", "email"), 50)
    # targeted treated rows 0, 2 convert 2/2; targeted control rows 1, 3 convert 1/2
    assert out["irr"] == pytest.approx(0.5)
    assert out["nir"] == pytest.approx(0.5 * 10.0 * 4 - 4 * 1.0)
    # IPS in profit: matched rows 0, 2 (arm 1, profit 9 each), 4's policy is 0 but logged 1, 5 matched (0)
    assert out["policy_profit_ips"] == pytest.approx((9 + 9 + 0) / 0.5 / 6)
    assert out["single_profit_ips__email"] == pytest.approx((9 + 9 - 1) / 0.5 / 6)
    assert out["single_profit_ips__no_action"] == pytest.approx(10 / 0.5 / 6)
    assert out["best_single_profit_ips"] == pytest.approx(out["single_profit_ips__email"])
    assert out["targeted_share"] == pytest.approx(4 / 6)


def test_the_hashed_split_is_stable_and_near_its_share():
    ids = pd.Series([f"C{i:06d}" for i in range(20_000)])
    first, again = hashed_split(ids, 0.5), hashed_split(ids.iloc[::-1], 0.5)
    assert (first == again.sort_index()).all()
    assert abs((first == "test").mean() - 0.5) < 0.02
    assert (hashed_split(ids, 0.0) == "train").all()


BASE = {
    "dataset": "demo",
    "campaign_id": "C1",
    "campaign_date": "2026-01-01",
    "customer_id": {"column": "id"},
    "strategy": {"column": "arm", "values": {"control": "no_action", "mail": "email"}},
    "propensity": {"constant": 0.5},
    "features": ["age", "city"],
}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"feature_types": {"income": "numeric"}}, "feature_types.income: 'income' is not in features"),
        ({"feature_types": {"age": "number"}}, "feature_types.age: 'number' is not one of"),
        ({"economics": {"cost_per_contact": {"sms": 0.1}}}, "economics.cost_per_contact.sms: not one of"),
        ({"economics": {"budget_per_customer": 1.0, "min_roi": 0.5}}, "budget_per_customer or min_roi, not both"),
        ({"economics": {"cost_per_contact": -1}}, "negative"),
        ({"split": {"column": "part", "test_values": []}}, "test_values"),
    ],
)
def test_the_mapping_names_the_broken_key(extra, message):
    with pytest.raises(ValueError, match=message):
        CampaignMapping.model_validate({**BASE, **extra})


def test_a_mapping_with_economics_and_a_split_column():
    spec = CampaignMapping.model_validate(
        {
            **BASE,
            "feature_types": {"city": "categorical"},
            "economics": {"value_per_conversion": 25, "cost_per_contact": {"email": 0.2}},
            "split": {"column": "part", "test_values": ["test"]},
        }
    )
    assert spec.economics.cost_of("email", "no_action") == pytest.approx(0.2)
    assert spec.economics.cost_of("no_action", "no_action") == 0.0
    assert "part" in spec.required_columns()


def test_on_a_uniformly_random_log_the_ips_of_the_uniform_policy_is_its_on_policy_rate():
    """Logged bandit feedback: three arms drawn with probability 1/3; a policy that picks arms uniformly at
    random (independently of the log) earns the mean of the arms' rates; its IPS interval covers it."""
    rng = np.random.default_rng(7)
    n, rates = 30_000, np.array([0.05, 0.08, 0.11])
    logged = rng.integers(0, 3, n)
    converted = (rng.random(n) < rates[logged]).astype(float)
    actions = rng.integers(0, 3, n)
    cost = np.zeros(3)
    out = policy_report(
        actions, logged, np.full(n, 1 / 3), converted, converted, cost, np.zeros((n, 3)), ("no_action", "a", "b"), 200
    )
    assert out["policy_profit_ips_lo"] <= rates.mean() <= out["policy_profit_ips_hi"]
    assert out["policy_profit_ips"] == pytest.approx(rates.mean(), abs=0.006)
    assert out["single_profit_ips__b"] == pytest.approx(0.11, abs=0.008)


def test_a_data_set_without_any_value_is_refused_by_name(tmp_path):
    """No revenue outcome and no value per conversion: nothing could price a decision, so training stops."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.datasets.data import DatasetError, dataset_root, load_info
    from jobs.settings import Settings

    settings = Settings(home=tmp_path)
    root = dataset_root(settings, "demo")
    (root / "customer_attributes" / "ds=2026-01-01").mkdir(parents=True)
    pq.write_table(
        pa.table({"customer_id": ["a"], "age": [30], "city": ["X"]}),
        root / "customer_attributes" / "ds=2026-01-01" / "demo.parquet",
    )
    mapping = CampaignMapping.model_validate({**BASE, "outcomes": {"converted": "buy"}})
    (root / "dataset.json").write_text(json.dumps({"mapping": mapping.model_dump(mode="json")}))
    refused = r"'demo' has no value: .* outcomes.revenue and no economics.value_per_conversion"
    with pytest.raises(DatasetError, match=refused):
        load_info(settings, "demo")
    priced = CampaignMapping.model_validate(
        {**BASE, "outcomes": {"converted": "buy"}, "economics": {"value_per_conversion": 5}}
    )
    (root / "dataset.json").write_text(json.dumps({"mapping": priced.model_dump(mode="json")}))
    info = load_info(settings, "demo")
    assert info.strategies == ("no_action", "email") and info.numeric == ("age",) and info.categorical == ("city",)


def test_without_a_revenue_outcome_the_revenue_is_the_value_of_each_conversion(tmp_path):
    """The revenue models then learn value x P(convert); an all-zero revenue would make them NaN."""
    import yaml

    from jobs.datasets.data import dataset_root, load_frame, load_info
    from jobs.imports.campaign_log import import_campaign_log
    from jobs.settings import Settings

    settings = Settings(home=tmp_path)
    src = tmp_path / "ab.csv"
    src.write_text("id,arm,buy,age\na,control,0,30\nb,mail,1,41\nc,mail,0,52\nd,control,1,63\n", encoding="utf-8")
    mapping = tmp_path / "m.yaml"
    spec = {
        **BASE,
        "outcomes": {"converted": "buy"},
        "features": ["age"],
        "economics": {"value_per_conversion": 5, "cost_per_contact": 1},
    }
    mapping.write_text(yaml.safe_dump(spec), encoding="utf-8")
    import_campaign_log(src, mapping, dataset_root(settings, "demo"))
    info = load_info(settings, "demo")
    assert not info.has_revenue
    frame = load_frame(info, holdout_share=0.5)
    assert frame.set_index("age")[["converted", "visited", "revenue"]].to_dict("index") == {
        30.0: {"converted": 0, "visited": 0, "revenue": 0.0},
        41.0: {"converted": 1, "visited": 1, "revenue": 5.0},
        52.0: {"converted": 0, "visited": 0, "revenue": 0.0},
        63.0: {"converted": 1, "visited": 1, "revenue": 5.0},
    }

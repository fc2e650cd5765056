"""An order history alone: the import's rows and rules, point-in-time RFM features, labels, targeting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from jobs.datasets.orders import next_period, rfm_features, rfm_score, target, training_frame, value_capture
from jobs.imports.campaign_log import CampaignImportError
from jobs.imports.orders import OrdersMapping, import_orders, load_orders_mapping

T = pd.Timestamp


def orders_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "c", "a"],
            "order_id": ["1", "2", "3", "4", "5", "6"],
            "ts": [
                T("2026-01-01"),
                T("2026-03-02"),
                T("2026-03-31"),
                T("2025-03-01"),
                T("2026-04-01"),
                T("2026-04-05"),
            ],
            "amount": [10.0, 20.0, 30.0, 50.0, 7.0, 99.0],
            "quantity": [1.0, 2.0, 3.0, 5.0, 1.0, 1.0],
        }
    )


def test_rfm_features_use_only_the_orders_before_the_cutoff() -> None:
    f = rfm_features(orders_frame(), T("2026-04-01"))
    assert list(f.index) == ["a", "b"]  # c's order is on the cutoff day itself, a's last one after it
    a, b = f.loc["a"], f.loc["b"]
    assert (a["recency_days"], a["tenure_days"], a["frequency"], a["monetary"]) == (1.0, 90.0, 3.0, 60.0)
    assert a["avg_order_value"] == 20.0 and a["items_per_order"] == 2.0
    assert a["mean_gap_days"] == 44.5  # 89 days between the first and the last order, 2 gaps
    assert (a["orders_30d"], a["orders_90d"], a["orders_365d"], a["amount_90d"]) == (2.0, 3.0, 3.0, 60.0)
    assert (b["recency_days"], b["frequency"], b["orders_365d"], b["amount_365d"]) == (396.0, 1.0, 0.0, 0.0)
    assert np.isnan(b["mean_gap_days"])


def test_next_period_labels_the_horizon_after_the_cutoff() -> None:
    labels = next_period(orders_frame(), T("2026-04-01"), days=4)
    assert labels.to_dict("index") == {"c": {"value": 7.0, "repeat": 1}}  # a's order of 04-05 is past 4 days
    frame, cutoff = training_frame(orders_frame(), horizon_days=5, name="t")
    assert cutoff == T("2026-04-01")  # the day after the last order (04-06) minus 5 days
    assert frame[["repeat", "value"]].to_dict("index") == {
        "a": {"repeat": 1, "value": 99.0},
        "b": {"repeat": 0, "value": 0.0},
    }
    with pytest.raises(ValueError, match=r"the orders span 401 days; a 400-day horizon needs at least 430"):
        training_frame(orders_frame(), horizon_days=400, name="t")


def test_rfm_score_sums_the_quintiles_and_value_capture_by_hand() -> None:
    features = pd.DataFrame(
        {"recency_days": [1, 2, 3, 4, 5], "frequency": [5, 4, 3, 2, 1], "monetary": [50, 40, 30, 20, 10]}
    )
    assert rfm_score(features).tolist() == [15.0, 12.0, 9.0, 6.0, 3.0]
    value = np.array([0.0, 10.0, 30.0, 60.0])
    assert value_capture(value, np.array([4, 3, 2, 1]), share=0.5) == pytest.approx(0.1)  # 10 of 100
    assert value_capture(value, np.array([1, 2, 3, 4]), share=0.5) == pytest.approx(0.9)
    assert np.isnan(value_capture(np.zeros(3), np.arange(3)))


def mapping(**targeting) -> OrdersMapping:
    return OrdersMapping.model_validate(
        {"kind": "orders", "dataset": "t", "customer_id": "c", "order_date": "d", "amount": "a", "targeting": targeting}
    )


def test_targeting_contacts_the_highest_expected_value_by_each_rule() -> None:
    value = np.array([5.0, 50.0, 20.0, 1.0, 30.0])
    assert target(value, mapping(contact_share=0.4)).tolist() == [False, True, False, False, True]
    assert target(value, mapping()).tolist() == [False, True, False, False, False]  # default: the top 20 %
    budget = mapping(budget_per_customer=0.6, cost_per_contact=1.0)  # 3.0 to spend: 3 contacts
    assert target(value, budget).tolist() == [False, True, True, False, True]
    assert target(value, mapping(min_value=20.0)).tolist() == [False, True, True, False, True]


LINES = """Invoice,Date,Customer,Qty,Price
A1,03/01/2026 10:15,c1,2,5.00
A1,03/01/2026 10:15,c1,1,10.00
A2,03/02/2026 08:00,c2,1,3.50
A3,03/05/2026 09:00,c1,-1,5.00
A4,2026-03-06,c3,1,1.00
A5,03/07/2026 12:00,,1,2.00
"""


def write_mapping(tmp_path: Path, **changes) -> Path:
    data = {
        "kind": "orders",
        "dataset": "retail",
        "customer_id": "Customer",
        "order_id": "Invoice",
        "order_date": "Date",
        "date_format": "%m/%d/%Y %H:%M",
        "price": "Price",
        "quantity": "Qty",
        **changes,
    }
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_order_lines_are_summed_per_order_and_broken_lines_quarantined_with_reasons(tmp_path: Path) -> None:
    src = tmp_path / "lines.csv"
    src.write_text(LINES, encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(
        CampaignImportError, match=r"3 rows break the mapping:\n  line 5: quantity \(Qty\): -1 is negative"
    ):
        import_orders(src, write_mapping(tmp_path), out)
    result = import_orders(src, write_mapping(tmp_path), out, on_bad_rows="quarantine")
    assert (result.lines, result.orders, result.customers, result.quarantined) == (3, 2, 2, 3)
    assert (result.first_order, result.last_order) == ("2026-03-01", "2026-03-02")
    orders = pq.read_table(result.path).to_pandas()
    assert orders[["customer_id", "order_id", "amount", "quantity", "lines"]].to_dict("records") == [
        {"customer_id": "c1", "order_id": "A1", "amount": 20.0, "quantity": 3.0, "lines": 2},
        {"customer_id": "c2", "order_id": "A2", "amount": 3.5, "quantity": 1.0, "lines": 1},
    ]
    assert orders["ts"].tolist() == [T("2026-03-01 10:15"), T("2026-03-02 08:00")]
    reasons = {r["source_line"]: r["reason"] for r in pq.read_table(result.quarantine).to_pylist()}
    assert reasons == {
        5: "quantity (Qty): -1 is negative (a return or a cancellation?)",
        6: "order_date (Date): '2026-03-06' is not a date in the format '%m/%d/%Y %H:%M'",
        7: "customer_id (Customer): missing",
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"price": None, "quantity": None}, "give amount (a column), or price and quantity"),
        ({"amount": "Price"}, "give amount or price (with quantity), not both"),
        ({"kind": "campaign"}, "kind: Input should be 'orders'"),
        (
            {"targeting": {"contact_share": 0.1, "min_value": 3}},
            "give one of contact_share, budget_per_customer or min_value, not contact_share and min_value",
        ),
        ({"targeting": {"strategy": "no_action"}}, "targeting.strategy: strategy 'no_action' must be"),
        ({"targeting": {"budget_per_customer": 1.0}}, "budget_per_customer needs a cost_per_contact above 0"),
    ],
)
def test_orders_mapping_errors_name_the_file_and_the_key(tmp_path: Path, changes: dict, message: str) -> None:
    path = write_mapping(tmp_path, **changes)
    text = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump({k: v for k, v in text.items() if v is not None}), encoding="utf-8")
    with pytest.raises(CampaignImportError) as err:
        load_orders_mapping(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)

"""The disparity report on inline frames: shares, ratios and exclusions worked out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from pydantic import ValidationError

from jobs.scoring.fairness import disparity_report, group_labels, ratio_of
from jobs.settings import Settings

DISCOUNTS = ("coupon_10", "coupon_20")

# north: 3 of 4 contacted, 2 coupons, profit 8 -> 0.75, 0.5, 2.0
# south: 1 of 4 contacted, 1 coupon, profit 6 -> 0.25, 0.25, 1.5
# east: 3 of 5 contacted (free shipping and e-mail are contacts, not discounts), 1 coupon, profit 5 -> 0.6, 0.2, 1.0
# west: 1 customer with a coupon_20 and profit 10 -> 1.0, 1.0, 10.0 (too small at a minimum of 3)
ROWS = [
    ("north", "coupon_10", 4.0),
    ("north", "coupon_20", 2.0),
    ("north", "email_recommendations", 1.0),
    ("north", "no_action", 1.0),
    ("south", "coupon_10", 2.0),
    ("south", "no_action", 1.0),
    ("south", "no_action", 1.0),
    ("south", "no_action", 2.0),
    ("east", "free_shipping", 1.0),
    ("east", "email_recommendations", 1.0),
    ("east", "no_action", 1.0),
    ("east", "no_action", 1.0),
    ("east", "coupon_10", 1.0),
    ("west", "coupon_20", 10.0),
]


def frame() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=["region", "strategy", "expected_profit"])


def report(min_group_size: int = 3, threshold: float = 2.75):
    return disparity_report(
        frame(),
        "region",
        control="no_action",
        discount_strategies=DISCOUNTS,
        min_group_size=min_group_size,
        threshold=threshold,
    )


def test_groups_shares_and_ratios_match_the_hand_computation() -> None:
    r = report()
    groups = r.groups.set_index("group")
    assert list(groups.index) == ["east", "north", "south", "west"]
    assert groups.loc["east", ["customers", "contacted", "discounted"]].tolist() == [5, 3, 1]
    assert groups["contact_share"].tolist() == pytest.approx([0.6, 0.75, 0.25, 1.0])
    assert groups["discount_share"].tolist() == pytest.approx([0.2, 0.5, 0.25, 1.0])
    assert groups["mean_expected_profit"].tolist() == pytest.approx([1.0, 2.0, 1.5, 10.0])
    contact, discount, profit = (r.ratios[m] for m in ("contact_share", "discount_share", "mean_expected_profit"))
    assert (contact.value, contact.max_group, contact.min_group) == (pytest.approx(3.0), "north", "south")
    assert (discount.value, discount.max_group, discount.min_group) == (pytest.approx(2.5), "north", "east")
    assert (profit.value, profit.max_group, profit.min_group) == (pytest.approx(2.0), "north", "east")


def test_groups_under_the_minimum_size_are_reported_but_not_compared() -> None:
    r = report(min_group_size=3)
    assert r.excluded == ["west"]
    assert r.groups.set_index("group")["included"].to_dict() == {
        "east": True,
        "north": True,
        "south": True,
        "west": False,
    }
    rows = {(m, s): v for m, s, v in r.metric_rows()}
    assert rows[("fairness_excluded_groups:region", "all")] == 1.0
    assert rows[("fairness:region:customers", "west")] == 1.0 and rows[("fairness:region:included", "west")] == 0.0
    assert rows[("fairness:region:mean_expected_profit", "west")] == 10.0
    assert rows[("fairness_ratio:region:contact_share", "all")] == pytest.approx(3.0)
    # with west compared, its single coupon customer sets every maximum: 1.0/0.25, 1.0/0.2, 10/1
    everyone = report(min_group_size=1)
    assert everyone.excluded == []
    assert [everyone.ratios[m].value for m in ("contact_share", "discount_share", "mean_expected_profit")] == (
        pytest.approx([4.0, 5.0, 10.0])
    )


def test_only_ratios_strictly_above_the_threshold_alert() -> None:
    assert report(threshold=2.75).alerts == ["contact_share"]
    assert report(threshold=3.0).alerts == []
    assert report(threshold=1.9).alerts == ["contact_share", "discount_share", "mean_expected_profit"]


def test_zero_and_negative_denominators() -> None:
    groups = pd.Series(["a", "b", "c"])
    assert ratio_of(pd.Series([0.0, 0.0, 0.0]), groups).value == 1.0
    nothing_for_b = ratio_of(pd.Series([0.2, 0.0, 0.1]), groups)
    assert (nothing_for_b.value, nothing_for_b.max_group, nothing_for_b.min_group) == (math.inf, "a", "b")
    assert ratio_of(pd.Series([2.0, -1.0, 1.0]), groups).value == math.inf
    assert math.isnan(ratio_of(pd.Series([-2.0, -1.0, -3.0]), groups).value)
    assert math.isnan(ratio_of(pd.Series([0.5]), groups[:1]).value), "one group: nothing to compare"
    assert ratio_of(pd.Series([0.2, 0.0, 0.1]), groups).as_record()["ratio"] is None  # JSON-safe


def test_numeric_attributes_are_cut_into_bands() -> None:
    ages = pd.Series([19, 25, 34.9, 35, 70, None], name="age")
    assert group_labels(ages, [25, 35]).tolist() == ["<25", "[25,35)", "[25,35)", ">=35", ">=35", "unknown"]
    assert group_labels(pd.Series(["x", None], name="gender")).tolist() == ["x", "unknown"]
    with pytest.raises(ValueError, match="age: a numeric attribute needs band edges"):
        group_labels(ages)
    # bands keep their order (not alphabetical), unknown last
    tenure = frame().assign(tenure_days=[400, 10, 100, 800, None, 5, 20, 30, 1000, 2000, 50, 60, 70, 80])
    r = disparity_report(tenure, "tenure_days", control="no_action", discount_strategies=DISCOUNTS, edges=[90, 365])
    assert r.groups["group"].tolist() == ["<90", "[90,365)", ">=365", "unknown"]
    assert r.groups["customers"].tolist() == [8, 1, 4, 1]  # 10 5 20 30 50 60 70 80 | 100 | 400 800 1000 2000 | None


def test_band_settings_must_increase() -> None:
    assert Settings(fairness_bands={"age": [20, 40]}).fairness_bands == {"age": [20.0, 40.0]}
    with pytest.raises(ValidationError, match="age: edges must be finite, strictly increasing"):
        Settings(fairness_bands={"age": [40, 20]})
    with pytest.raises(ValidationError, match="MSP_FAIRNESS_ATTRIBUTES"):
        Settings(fairness_attributes=["region; drop"])

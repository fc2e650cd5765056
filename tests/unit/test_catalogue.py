"""The strategy catalogue: the shipped default, error messages that name file and key, money and eligibility."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from jobs.models.frame import CONTROL, STRATEGIES
from jobs.scoring.catalogue import Catalogue, CatalogueError, load_catalogue, shipped_catalogue_path

BASE: dict[str, Any] = {
    "control": "no_action",
    "budget": 100.0,
    "margin_rate": 0.4,
    "holdout_share": 0.1,
    "explore_share": 0.05,
    "strategies": [
        {"name": "no_action", "description": "Nothing.", "channel": "none"},
        {"name": "email_recommendations", "description": "Mail.", "channel": "email", "cost_per_contact": 0.02},
        {
            "name": "coupon_10",
            "description": "Coupon.",
            "channel": "email",
            "cost_per_contact": 0.12,
            "discount_share": 0.1,
            "margin_rate": 0.3,
            "eligibility": {"min_tenure_days": 30, "max_days_since_last_purchase": 365},
            "caps": {"max_share": 0.25, "max_count": 2},
        },
        {
            "name": "free_shipping",
            "description": "Free shipping.",
            "channel": "email",
            "cost_per_contact": 0.02,
            "fulfilment_cost_per_order": 4.9,
            "eligibility": {"exclude_recent_contact_days": 7},
        },
    ],
}


def write(tmp_path: Path, data: Any, name: str = "strategies.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def changed(edit: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    edit(data)
    return data


def error_of(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: Any) -> str:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, data)
    with pytest.raises(CatalogueError) as caught:
        load_catalogue("strategies.yaml")
    return str(caught.value)


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------


def test_the_shipped_catalogue_covers_the_models_strategies() -> None:
    catalogue = load_catalogue()
    assert catalogue.names == STRATEGIES and catalogue.control == CONTROL
    assert shipped_catalogue_path().is_file()
    assert load_catalogue(shipped_catalogue_path()) == catalogue
    assert 0 < catalogue.holdout_share < 1 and 0 < catalogue.explore_share < 1
    # the shipped budget scales with the shop: 2,500 EUR for the demo's 20,000 customers, 50x for a million
    assert catalogue.budget is None and catalogue.min_roi is None
    assert catalogue.budget_for(20_000) == pytest.approx(2500.0)
    assert catalogue.budget_for(1_000_000) == pytest.approx(125_000.0)
    free_shipping = catalogue.strategy("free_shipping")
    assert free_shipping.fulfilment_cost_per_order > 0 and free_shipping.needs_email


def test_a_valid_file_loads(tmp_path: Path) -> None:
    catalogue = load_catalogue(write(tmp_path, BASE))
    assert catalogue.names == ("no_action", "email_recommendations", "coupon_10", "free_shipping")
    assert catalogue.max_contacts_per_customer_per_30d is None and catalogue.recommendations_top_n == 5
    assert catalogue.margin_rates().tolist() == [0.4, 0.4, 0.3, 0.4]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["strategies"][2].update(cost_per_contact=-1),
            "strategies.yaml: strategies[2].cost_per_contact: must be >= 0 (got -1)",
        ),
        (lambda d: d.update(holdout_share=1.5), "strategies.yaml: holdout_share: must be <= 1 (got 1.5)"),
        (lambda d: d.update(explore_share=-0.1), "strategies.yaml: explore_share: must be >= 0 (got -0.1)"),
        (
            lambda d: d["strategies"][2]["caps"].update(max_share=2),
            "strategies.yaml: strategies[2].caps.max_share: must be <= 1 (got 2)",
        ),
        (
            lambda d: d["strategies"][1].update(discount_share=1.2),
            "strategies.yaml: strategies[1].discount_share: must be <= 1 (got 1.2)",
        ),
        (lambda d: d.update(budget=-5), "strategies.yaml: budget: must be >= 0 (got -5)"),
        (lambda d: d.update(budget="lots"), "strategies.yaml: budget: must be a number (got 'lots')"),
        (lambda d: d.pop("budget"), "strategies.yaml: budget: missing: give budget (the total of a run), "),
        (
            lambda d: d.update(budget_per_customer=-0.1),
            "strategies.yaml: budget_per_customer: must be >= 0 (got -0.1)",
        ),
        (lambda d: d.update(min_roi="high"), "strategies.yaml: min_roi: must be a number (got 'high')"),
        (
            lambda d: d["strategies"][2]["eligibility"].update(min_tenure_days=1.5),
            "strategies.yaml: strategies[2].eligibility.min_tenure_days: must be a whole number (got 1.5)",
        ),
        (
            lambda d: d["strategies"][1].update(eligibility={"requires_email": "yes"}),
            "strategies.yaml: strategies[1].eligibility.requires_email: must be true or false (got 'yes')",
        ),
        (
            lambda d: d["strategies"][1].update(channel="sms"),
            "strategies.yaml: strategies[1].channel: must be one of 'email' or 'none' (got 'sms')",
        ),
        (
            lambda d: d["strategies"][3]["eligibility"].update(exclude_recent_contact_days=120),
            "strategies.yaml: strategies[3].eligibility.exclude_recent_contact_days: must be <= 90 (got 120)",
        ),
        (
            lambda d: d["strategies"][1].update(name="Email"),
            "strategies.yaml: strategies[1].name: 'Email' must be lower_snake_case",
        ),
        (
            lambda d: d["strategies"][1].update(name="2mail"),
            "strategies.yaml: strategies[1].name: '2mail' is not an identifier",
        ),
        (lambda d: d["strategies"][1].update(description=""), "strategies[1].description: must not be empty"),
    ],
)
def test_field_errors_name_the_file_and_the_key_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: Any, expected: str
) -> None:
    assert expected in error_of(tmp_path, monkeypatch, changed(edit))


def test_unknown_keys_are_errors_that_list_the_known_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = error_of(tmp_path, monkeypatch, changed(lambda d: d.update(budgett=3)))
    assert message.startswith("strategies.yaml: budgett: unknown key (known: control, budget,")
    message = error_of(tmp_path, monkeypatch, changed(lambda d: d["strategies"][2]["eligibility"].update(tenure=3)))
    assert "strategies[2].eligibility.tenure: unknown key (known: requires_email, min_tenure_days," in message
    message = error_of(tmp_path, monkeypatch, changed(lambda d: d["strategies"][3].update(cost=1)))
    assert "strategies[3].cost: unknown key (known: name, description, channel, cost_per_contact," in message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["strategies"][3].update(name="coupon_10"),
            "strategies.yaml: strategies[3].name: duplicate strategy 'coupon_10' (also strategies[2])",
        ),
        (
            lambda d: d.update(control="holdout"),
            "strategies.yaml: control: 'holdout' is not one of the strategies (no_action, email_recommendations,",
        ),
        (
            lambda d: d.update(control="coupon_10"),
            "strategies.yaml: strategies[2]: the control 'coupon_10' must be listed first (column 0)",
        ),
        (
            lambda d: d["strategies"][0].update(fulfilment_cost_per_order=1.0),
            "strategies.yaml: strategies[0].fulfilment_cost_per_order: the control 'no_action' costs nothing",
        ),
        (
            lambda d: d["strategies"][0].update(caps={"max_count": 3}),
            "strategies.yaml: strategies[0].caps: the control 'no_action' is never capped",
        ),
        (
            lambda d: d["strategies"][1].update(eligibility={"requires_email": False}),
            "strategies.yaml: strategies[1].eligibility.requires_email: an e-mail strategy needs an e-mail address",
        ),
        (
            lambda d: d["strategies"].append(
                {"name": "banner", "description": "On-site.", "channel": "none", "cost_per_contact": 0.5}
            ),
            "strategies.yaml: strategies[4].cost_per_contact: channel none contacts nobody: must be 0 (got 0.5)",
        ),
        (lambda d: d.update(strategies=[]), "strategies.yaml: strategies: must have at least 1 entry"),
        (
            lambda d: d.update(budget_per_customer=0.1),
            "strategies.yaml: budget_per_customer: give either budget (the total of a run) or budget_per_customer, "
            "not both (got budget 100 and budget_per_customer 0.1)",
        ),
    ],
)
def test_cross_key_errors_name_the_file_and_the_key_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: Any, expected: str
) -> None:
    assert expected in error_of(tmp_path, monkeypatch, changed(edit))


def test_every_problem_is_reported_on_its_own_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def two(d: dict[str, Any]) -> None:
        d["strategies"][3]["name"] = "coupon_10"
        d["strategies"][0]["cost_per_contact"] = 1.0

    lines = error_of(tmp_path, monkeypatch, changed(two)).splitlines()
    assert len(lines) == 3 and all(line.startswith("strategies.yaml: strategies[") for line in lines)


def test_unreadable_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CatalogueError, match="no such catalogue file"):
        load_catalogue(tmp_path / "missing.yaml")
    assert "not valid YAML" in error_of(tmp_path, monkeypatch, "control: [unclosed\n")
    assert "expected a mapping of keys" in error_of(tmp_path, monkeypatch, "- just\n- a list\n")


def test_a_run_budget_in_each_of_its_three_forms(tmp_path: Path) -> None:
    total = load_catalogue(write(tmp_path, BASE))
    assert (total.budget_for(10), total.budget_for(10_000)) == (100.0, 100.0)
    per_customer = load_catalogue(
        write(tmp_path, changed(lambda d: (d.pop("budget"), d.update(budget_per_customer=0.5))))
    )
    assert (per_customer.budget_for(10), per_customer.budget_for(10_000)) == (5.0, 5000.0)
    roi = load_catalogue(write(tmp_path, changed(lambda d: (d.pop("budget"), d.update(min_roi=2.0)))))
    assert roi.budget_for(10) == float("inf")
    value, cost = np.array([[0.0, 1.0, 3.0]]), np.array([[0.0, 0.2, 1.0]])
    # with min_roi 2 the optimiser maximises profit less 2 per euro spent: 1 - 2 x 0.2 and 3 - 2 x 1
    assert roi.objective(value, cost).tolist() == [[0.0, 0.6, 1.0]]
    assert total.objective(value, cost).tolist() == value.tolist()  # without min_roi the profit itself
    capped = load_catalogue(write(tmp_path, changed(lambda d: d.update(min_roi=1.0))))
    assert capped.budget_for(10) == 100.0 and capped.objective(value, cost).tolist() == [[0.0, 0.8, 2.0]]


def test_min_roi_spends_while_the_marginal_profit_per_euro_reaches_it(tmp_path: Path) -> None:
    """Upgrading from the control to a strategy is made only when its extra profit per extra euro is at least r."""
    from jobs.scoring.optimiser import optimise

    roi = load_catalogue(write(tmp_path, changed(lambda d: (d.pop("budget"), d.update(min_roi=3.0)))))
    # three customers, control and one strategy costing 1: profits 2.5, 3.5 and 10 per euro
    value = np.array([[0.0, 2.5], [0.0, 3.5], [0.0, 10.0]])
    cost = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    eligible = np.ones_like(value, dtype=bool)
    chosen = optimise(roi.objective(value, cost), cost, eligible, roi.budget_for(3), np.array([3, 3]), 0).choice
    assert chosen.tolist() == [0, 1, 1]


# ---------------------------------------------------------------------------------------------
# money
# ---------------------------------------------------------------------------------------------


def test_expected_cost_profit_and_incremental_profit() -> None:
    catalogue = Catalogue.model_validate(BASE)
    p_convert = np.array([[0.1, 0.2, 0.3, 0.5], [0.0, 0.0, 0.0, 1.0]])
    revenue = np.array([[10.0, 20.0, 30.0, 50.0], [0.0, 1.0, 2.0, 40.0]])
    cost = catalogue.expected_cost(p_convert, revenue)
    assert cost == pytest.approx(np.array([[0.0, 0.02, 0.12, 0.02 + 4.9 * 0.5], [0.0, 0.02, 0.12, 0.02 + 4.9]]))
    profit = catalogue.expected_profit(p_convert, revenue)
    assert profit == pytest.approx(np.array([[4.0, 7.98, 8.88, 20.0 - 2.47], [0.0, 0.38, 0.48, 16.0 - 4.92]]))
    incremental = catalogue.incremental_profit(p_convert, revenue)
    assert incremental == pytest.approx(profit - profit[:, [0]])
    assert np.all(incremental[:, 0] == 0)
    with pytest.raises(ValueError, match="has 5 columns, expected 4: no_action, email_recommendations"):
        catalogue.expected_cost(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"p_convert must lie in \[0, 1\]"):
        catalogue.expected_cost(p_convert + 1)
    with pytest.raises(ValueError, match="exp_revenue has 1 rows"):
        catalogue.expected_profit(p_convert, revenue[:1])


def test_caps_and_column_order() -> None:
    catalogue = Catalogue.model_validate(BASE)
    assert catalogue.caps_for(4).tolist() == [4, 4, 1, 4]
    assert catalogue.caps_for(100).tolist() == [100, 100, 2, 100]  # max_count wins over max_share
    model_output = np.arange(10).reshape(2, 5)  # columns in STRATEGIES order
    taken = catalogue.take_columns(model_output, STRATEGIES)
    assert taken.tolist() == [[0, 1, 2, 4], [5, 6, 7, 9]]
    with pytest.raises(ValueError, match="not among the columns"):
        catalogue.take_columns(model_output[:, :3], STRATEGIES[:3])


# ---------------------------------------------------------------------------------------------
# eligibility
# ---------------------------------------------------------------------------------------------


def features(**extra: list[float]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "has_email": [1, 0, 1, 1, 1, None],
            "tenure_days": [100, 100, 10, 100, np.nan, 100],
            "days_since_last_purchase": [30.0, 30.0, 30.0, 999.0, 30.0, 30.0],  # 999: never bought
            "emails_received_90d": [0, 0, 0, 0, 2, 0],
            "campaigns_received": [5, 0, 1, 0, 3, 0],
        }
    )
    for name, values in extra.items():
        frame[name] = values
    return frame


def test_eligibility_rules() -> None:
    catalogue = Catalogue.model_validate(BASE)
    mask = catalogue.eligibility_mask(features())
    assert mask[:, 0].all()  # the control, always
    # e-mail strategies need an address (unknown = no)
    assert mask[:, 1].tolist() == [True, False, True, True, True, False]
    # coupon_10: e-mail, tenure >= 30 (unknown tenure: no), bought within 365 days (never bought: no)
    assert mask[:, 2].tolist() == [True, False, False, False, False, False]
    # free_shipping: without contact dates, anyone contacted in the last 90 days is excluded (conservative)
    assert mask[:, 3].tolist() == [True, False, True, True, False, False]


def test_exact_contact_columns_are_used_when_present() -> None:
    catalogue = Catalogue.model_validate(BASE)
    frame = features(days_since_last_contact=[1.0, 50.0, 50.0, 50.0, 50.0, 50.0])
    assert catalogue.eligibility_mask(frame)[:, 3].tolist() == [False, False, True, True, True, False]


def test_contact_frequency_limit() -> None:
    data = changed(lambda d: d.update(max_contacts_per_customer_per_30d=2))
    catalogue = Catalogue.model_validate(data)
    # without contacts_30d the 90-day count bounds it: customer 4 had 2 contacts in 90 days
    assert catalogue.eligibility_mask(features())[:, 1].tolist() == [True, False, True, True, False, False]
    exact = features(contacts_30d=[2, 0, 1, 0, 0, 0])
    assert catalogue.eligibility_mask(exact)[:, 1].tolist() == [False, False, True, True, True, False]
    assert catalogue.eligibility_mask(exact)[:, 0].all()


def test_a_rule_without_its_feature_column_is_an_error() -> None:
    catalogue = Catalogue.model_validate(BASE)
    with pytest.raises(ValueError, match=r"strategies\[2\] \(coupon_10\).min_tenure_days needs .*'tenure_days'"):
        catalogue.eligibility_mask(features().drop(columns="tenure_days"))

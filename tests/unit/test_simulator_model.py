"""The simulator's physics on tiny, hand-made populations: exact values, not just shapes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from jobs.simulator.config import CATEGORIES, STRATEGIES, DirtRates, SimConfig
from jobs.simulator.response import (
    BASE_PURCHASE_RATE,
    BASE_SESSION_RATE,
    EXPECTED_QTY,
    WEEKDAY_FACTOR,
    effect,
    exposure,
    outcome,
)
from jobs.simulator.world import Population, category_mean_price, make_catalogue, make_population

K = len(CATEGORIES)


def population(**latents: list[float]) -> Population:
    """Customers with the given latents; affinity all on the first category unless given."""
    n = len(next(iter(latents.values())))
    defaults = {
        "price_sensitivity": [0.5] * n,
        "engagement": [1.0] * n,
        "dormancy": [0.0] * n,
        "email_responsiveness": [0.3] * n,
        "basket_lambda": [0.5] * n,
    }
    defaults.update(latents)
    frame = pd.DataFrame(defaults)
    frame["customer_id"] = [f"C{i:07d}" for i in range(1, n + 1)]
    affinity = np.zeros((n, K))
    affinity[:, 0] = 1.0
    return Population(frame=frame, affinity=affinity, cum_affinity=np.cumsum(affinity, axis=1))


def test_weekday_factors_average_one_so_a_week_has_exposure_seven() -> None:
    assert WEEKDAY_FACTOR.mean() == pytest.approx(1.0)
    for weekday in range(7):
        assert exposure(weekday, 7) == pytest.approx(7.0)
    assert exposure(5, 2) == pytest.approx(WEEKDAY_FACTOR[5] + WEEKDAY_FACTOR[6])
    assert exposure(6, 2) == pytest.approx(WEEKDAY_FACTOR[6] + WEEKDAY_FACTOR[0])


def test_no_action_converts_like_the_organic_purchase_process() -> None:
    pop = population(engagement=[1.0, 2.0], dormancy=[0.0, 0.5])
    prices = np.full(K, 10.0)
    out = outcome(pop, "no_action", prices, 7.0)
    h = BASE_PURCHASE_RATE * np.array([1.0, 2.0**0.8 * (1 - 0.95 * 0.5)])
    np.testing.assert_allclose(out.p_convert, 1 - np.exp(-7.0 * h))
    s = BASE_SESSION_RATE * np.array([1.0, 2.0 * (1 - 0.9 * 0.5)])
    visit_nc = 1 - np.exp(-7.0 * s)
    np.testing.assert_allclose(out.p_visit, out.p_convert + (1 - out.p_convert) * visit_nc)
    # basket: 1 + lambda items of mean quantity 1.15 at the category's mean price
    np.testing.assert_allclose(out.expected_order_value, 1.5 * EXPECTED_QTY * 10.0)
    np.testing.assert_allclose(out.expected_revenue, out.p_convert * 1.5 * EXPECTED_QTY * 10.0)
    assert out.discount_rate == 0.0


def test_coupon_20_shifts_the_logit_and_gives_away_a_fifth() -> None:
    pop = population(price_sensitivity=[0.9, 0.0], dormancy=[0.6, 0.0])
    prices = np.full(K, 20.0)
    base = outcome(pop, "no_action", prices, 7.0)
    c20 = outcome(pop, "coupon_20", prices, 7.0)
    shift = np.array([1.7 * 0.9 + 1.0 * 0.6 - 0.55, -0.55])
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(logit(c20.p_convert) - logit(base.p_convert), shift)
    assert c20.p_convert[0] > base.p_convert[0]  # lapsing, price-sensitive: helped
    assert c20.p_convert[1] < base.p_convert[1]  # loyal, price-insensitive: hurt
    np.testing.assert_allclose(c20.expected_order_value, (1 + 0.5 + 0.25) * EXPECTED_QTY * 20.0)
    np.testing.assert_allclose(c20.expected_discount, 0.2 * c20.expected_gross)
    np.testing.assert_allclose(c20.expected_revenue, 0.8 * c20.expected_gross)


def test_email_recommendations_annoy_dormant_diffuse_customers() -> None:
    pop = population(email_responsiveness=[0.9, 0.05], dormancy=[0.0, 0.9])
    pop.affinity[1] = 1.0 / K  # no focus at all
    eff = effect(pop, "email_recommendations")
    assert eff.logit_shift[0] == pytest.approx(2.4 * 0.9 * 1.0 - 0.05)
    assert eff.logit_shift[1] == pytest.approx(2.4 * 0.05 * 0.0 - 0.6 * 0.9 - 0.05)


def test_every_strategy_has_an_effect_and_unknown_ones_are_refused() -> None:
    pop = population(price_sensitivity=[0.2, 0.8])
    for name in STRATEGIES:
        eff = effect(pop, name)
        assert eff.logit_shift.shape == (2,)
    assert not effect(pop, "no_action").logit_shift.any()
    with pytest.raises(ValueError, match="unknown strategy 'sms'"):
        effect(pop, "sms")


def test_population_is_deterministic_and_latents_are_in_range() -> None:
    cfg = SimConfig(customers=500, products=40, days=10)
    a, b = make_population(cfg), make_population(cfg)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    f = a.frame
    assert f["price_sensitivity"].between(0, 1).all() and f["dormancy"].between(0, 1).all()
    np.testing.assert_allclose(a.affinity.sum(axis=1), 1.0)
    assert f["customer_id"].is_unique and f["customer_id"].iloc[0] == "C0000001"
    assert (f["signup_day"] < cfg.days).all()


def test_catalogue_keeps_two_active_products_per_category_every_day() -> None:
    cfg = SimConfig(customers=100, products=20, days=30)
    cat = make_catalogue(cfg)
    for day in range(cfg.days):
        state = cat.state_on(day)
        active = state[state["is_active"]]
        assert active["category_idx"].value_counts().reindex(range(K), fill_value=0).min() >= 2
        assert (category_mean_price(state) > 0).all()


def test_category_mean_price_ignores_discontinued_products() -> None:
    state = pd.DataFrame(
        {
            "category_idx": [0, 0, 0, 1],
            "price": [10.0, 20.0, 99.0, 5.0],
            "is_active": [True, True, False, True],
        }
    )
    np.testing.assert_allclose(category_mean_price(state, 2), [15.0, 5.0])


def test_config_validation_and_dirt_overrides() -> None:
    with pytest.raises(ValueError, match="customers"):
        SimConfig(customers=3)
    with pytest.raises(ValueError, match="unknown dirt kind"):
        DirtRates().with_overrides({"gremlins": 0.1})
    with pytest.raises(ValueError, match=r"\[0, 0.5\]"):
        DirtRates().with_overrides({"malformed": 0.9})
    rates = DirtRates().with_overrides({"malformed": 0.01}).scaled(2)
    assert rates.malformed == pytest.approx(0.02)
    assert DirtRates().scaled(0) == DirtRates(**{k: 0.0 for k in DirtRates().__dataclass_fields__})
    cfg = SimConfig(days=45, first_campaign_day=7, campaign_every=14)
    assert cfg.campaign_days() == [7, 21, 35]
    assert SimConfig.from_json(cfg.to_json()) == cfg
    assert math.isclose(sum(cfg.dirt.__dict__.values()), sum(DirtRates().__dict__.values()))

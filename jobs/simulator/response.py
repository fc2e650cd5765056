"""The shop's physics: how each customer behaves organically and responds to each strategy.

Everything here is a closed form of the latents, so the simulator can write the exact truth
(conversion probability and expected revenue under every strategy) next to the random draws
it makes from that truth. See docs/SIMULATOR.md for the equations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jobs.simulator.config import CATEGORIES, CONTROL, DISCOUNT_RATE, STRATEGIES
from jobs.simulator.world import Population

#: relative activity by weekday, Monday first; mean 1 so a full week has exposure 7
WEEKDAY_FACTOR = np.array([0.95, 0.90, 0.90, 0.95, 1.05, 1.15, 1.10])
WEEKDAY_FACTOR = WEEKDAY_FACTOR / WEEKDAY_FACTOR.mean()
BASE_SESSION_RATE = 0.06  # browse sessions per day of an average, active customer
BASE_PURCHASE_RATE = 0.010  # purchase sessions per day of an average, active customer
P_QTY_TWO = 0.15  # an order line has quantity 2 with this probability, else 1
EXPECTED_QTY = 1.0 + P_QTY_TWO


def session_rate(pop: Population) -> np.ndarray:
    return BASE_SESSION_RATE * pop.col("engagement") * (1.0 - 0.9 * pop.col("dormancy"))


def purchase_rate(pop: Population) -> np.ndarray:
    return BASE_PURCHASE_RATE * pop.col("engagement") ** 0.8 * (1.0 - 0.95 * pop.col("dormancy"))


def exposure(weekday_of_first_day: int, days: int) -> float:
    """Sum of weekday factors over a window of ``days`` days starting on the given weekday."""
    return float(WEEKDAY_FACTOR[(weekday_of_first_day + np.arange(days)) % 7].sum())


def concentration(pop: Population) -> np.ndarray:
    """How focused a customer's category taste is: 0 (uniform) .. 1 (one category only)."""
    k = len(CATEGORIES)
    return (pop.affinity.max(axis=1) - 1.0 / k) / (1.0 - 1.0 / k)


@dataclass(frozen=True)
class Effect:
    """Per-customer effect of a strategy: logit shift, extra basket items, visit-rate lift."""

    logit_shift: np.ndarray
    extra_items: np.ndarray
    visit_lift: np.ndarray


def effect(pop: Population, strategy: str) -> Effect:
    """Heterogeneous treatment effect of ``strategy`` (``no_action`` is the zero effect).

    e-mail recommendations help responsive customers with focused tastes and annoy dormant
    ones; coupons help price-sensitive and lapsing customers and put off loyal, price-insensitive
    ones (``coupon_20`` lowers their conversion); free shipping helps price-sensitive small baskets.
    """
    n = pop.n
    ps = pop.col("price_sensitivity")
    dorm = pop.col("dormancy")
    resp = pop.col("email_responsiveness")
    small_basket = 1.0 / (1.0 + pop.col("basket_lambda"))
    conc = concentration(pop)
    zeros = np.zeros(n)
    if strategy == CONTROL:
        return Effect(zeros, zeros, zeros)
    if strategy == "email_recommendations":
        return Effect(2.4 * resp * conc - 0.6 * dorm - 0.05, 0.35 * conc, 2.0 * resp)
    if strategy == "coupon_10":
        return Effect(1.0 * ps + 0.3 * dorm - 0.25, np.full(n, 0.10), 1.2 * resp)
    if strategy == "coupon_20":
        return Effect(1.7 * ps + 1.0 * dorm - 0.55, np.full(n, 0.25), 1.5 * resp)
    if strategy == "free_shipping":
        return Effect(0.05 + 1.4 * ps * small_basket, np.full(n, 0.45), 1.0 * resp)
    raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


@dataclass(frozen=True)
class Outcome:
    """Exact expectations for one strategy over an attribution window, per customer."""

    p_convert: np.ndarray
    p_visit: np.ndarray
    p_visit_no_purchase: np.ndarray  # P(visit | no conversion)
    items_lambda: np.ndarray  # basket size is 1 + Poisson(items_lambda)
    expected_order_value: np.ndarray  # gross value of an order, given conversion
    discount_rate: float

    @property
    def expected_gross(self) -> np.ndarray:
        return self.p_convert * self.expected_order_value

    @property
    def expected_discount(self) -> np.ndarray:
        return self.expected_gross * self.discount_rate

    @property
    def expected_revenue(self) -> np.ndarray:
        """Expected net revenue (order value minus discount) in the window."""
        return self.expected_gross * (1.0 - self.discount_rate)


def outcome(pop: Population, strategy: str, category_price: np.ndarray, window_exposure: float) -> Outcome:
    """Conversion and revenue expectations of every customer under ``strategy``.

    Without a campaign a customer converts in the window with ``1 - exp(-h * E)`` (a Poisson
    purchase process of rate ``h`` over exposure ``E``); a strategy shifts that probability on
    the logit scale, raises the visit rate and the basket size, and gives away its discount.
    """
    eff = effect(pop, strategy)
    p0 = -np.expm1(-purchase_rate(pop) * window_exposure)
    p0 = np.clip(p0, 1e-6, 1 - 1e-6)
    logit = np.log(p0 / (1.0 - p0)) + eff.logit_shift
    p = 1.0 / (1.0 + np.exp(-logit))
    visit_nc = -np.expm1(-session_rate(pop) * (1.0 + eff.visit_lift) * window_exposure)
    items_lambda = pop.col("basket_lambda") + eff.extra_items
    mean_price = pop.affinity @ category_price
    order_value = (1.0 + items_lambda) * EXPECTED_QTY * mean_price
    return Outcome(
        p_convert=p,
        p_visit=p + (1.0 - p) * visit_nc,
        p_visit_no_purchase=visit_nc,
        items_lambda=items_lambda,
        expected_order_value=order_value,
        discount_rate=DISCOUNT_RATE.get(strategy, 0.0),
    )

"""The policy optimiser against brute force, and the randomised assignment's limits and propensities."""

from __future__ import annotations

import itertools
import logging
import time

import numpy as np
import pandas as pd
import pytest

from jobs.scoring.catalogue import load_catalogue
from jobs.scoring.optimiser import decide, draw, optimise, plan_exploration

log = logging.getLogger(__name__)
TOL = 1e-9


def random_instance(rng: np.random.Generator, n: int, k: int) -> tuple:
    """Values (control 0), costs (control 0, some free), eligibility, a budget that often binds, caps or None."""
    value = rng.normal(0.0, 1.0, (n, k))
    value[:, 0] = rng.normal(0.0, 0.2, n) if rng.random() < 0.3 else 0.0
    cost = rng.uniform(0.0, 1.0, (n, k))
    if rng.random() < 0.3:
        cost[rng.random((n, k)) < 0.25] = 0.0
    cost[:, 0] = 0.0
    eligible = rng.random((n, k)) < 0.8
    budget = float(rng.uniform(0.0, 1.2) * cost.mean() * n) if rng.random() < 0.85 else float("inf")
    caps = rng.integers(0, n + 1, k) if rng.random() < 0.7 else None
    return value, cost, eligible, budget, caps


def brute_force(value, cost, eligible, budget, caps) -> float:
    """The optimum by enumerating all K^n assignments."""
    n, k = value.shape
    allowed = eligible.copy()
    allowed[:, 0] = True
    limit = np.full(k, n) if caps is None else np.asarray(caps).copy()
    limit[0] = n
    every = np.array(list(itertools.product(range(k), repeat=n)))
    rows = np.arange(n)
    ok = allowed[rows, every].all(axis=1) & (cost[rows, every].sum(axis=1) <= budget)
    for s in range(k):
        ok &= (every == s).sum(axis=1) <= limit[s]
    return float(value[rows, every].sum(axis=1)[ok].max())


def assert_feasible(choice, cost, eligible, budget, caps) -> None:
    n, k = cost.shape
    assert choice.shape == (n,)
    assert np.all((choice == 0) | eligible[np.arange(n), choice]), "an ineligible strategy was chosen"
    assert cost[np.arange(n), choice].sum() <= budget + TOL * (1 + abs(budget) if np.isfinite(budget) else 1)
    if caps is not None:
        counts = np.bincount(choice, minlength=k)
        assert np.all(counts[1:] <= np.asarray(caps)[1:])


# ---------------------------------------------------------------------------------------------
# the optimiser
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("exact_lp", "exchange"), [(100_000, 50_000), (0, 50_000), (0, 0)])
def test_optimiser_against_brute_force(exact_lp: int, exchange: int) -> None:
    solved = 0
    seeds = range(150)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        n, k = int(rng.integers(1, 8)), int(rng.integers(3, 5))
        value, cost, eligible, budget, caps = random_instance(rng, n, k)
        solution = optimise(value, cost, eligible, budget, caps, exact_lp_max_vars=exact_lp, exchange_max_vars=exchange)
        optimum = brute_force(value, cost, eligible, budget, caps)
        scale = TOL * (1 + abs(optimum))
        assert_feasible(solution.choice, cost, eligible, budget, caps)
        assert solution.objective == pytest.approx(value[np.arange(n), solution.choice].sum(), abs=scale)
        assert solution.objective <= optimum + scale
        assert solution.upper_bound >= optimum - scale, f"seed {seed}: the bound is below the optimum"
        exact = abs(solution.objective - optimum) <= scale
        assert exact or solution.gap >= optimum - solution.objective - scale
        assert solution.gap == pytest.approx(solution.upper_bound - solution.objective)
        assert solution.gap_share >= 0
        assert solution.spent <= budget
        if caps is not None:
            assert np.all(solution.counts[1:] <= caps[1:])
        solved += exact
    # not required for correctness, but a regression guard on the heuristic's quality
    assert solved >= (0.9 if exchange else 0.75) * len(seeds), f"optimal in {solved} of {len(seeds)}"


def test_the_exact_lp_bound_is_never_looser_than_the_lagrangian_one() -> None:
    for seed in range(30):
        rng = np.random.default_rng(1000 + seed)
        value, cost, eligible, budget, caps = random_instance(rng, 40, 4)
        with_lp = optimise(value, cost, eligible, budget, caps)
        without = optimise(value, cost, eligible, budget, caps, exact_lp_max_vars=0)
        assert with_lp.upper_bound <= without.upper_bound + 1e-7 * (1 + abs(without.upper_bound))
        if with_lp.budget_binding or with_lp.caps_binding.any():
            assert with_lp.exact_lp


def test_unconstrained_choice_is_every_customers_best() -> None:
    rng = np.random.default_rng(7)
    value, cost = rng.normal(size=(50, 4)), rng.uniform(size=(50, 4))
    cost[:, 0] = 0
    eligible = rng.random((50, 4)) < 0.7
    solution = optimise(value, cost, eligible, float("inf"), None)
    best = np.where(eligible | (np.arange(4) == 0), value, -np.inf).max(axis=1)
    assert solution.objective == pytest.approx(best.sum())
    assert solution.gap == 0 and solution.upper_bound == solution.objective
    assert not solution.budget_binding and not solution.caps_binding.any()


def test_zero_budget_and_zero_caps() -> None:
    value = np.array([[0.0, 5.0, 1.0, 2.0], [0.0, 3.0, 4.0, 9.0]])
    cost = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 2.0]])
    eligible = np.ones_like(value, dtype=bool)
    free_only = optimise(value, cost, eligible, 0.0, None)
    assert free_only.choice.tolist() == [3, 2] and free_only.spent == 0
    capped = optimise(value, cost, eligible, 10.0, np.array([2, 2, 0, 0]))
    assert capped.choice.tolist() == [1, 1] and capped.objective == 8.0
    assert capped.upper_bound == pytest.approx(8.0)


def test_ineligible_strategies_are_never_chosen_even_when_best() -> None:
    value = np.array([[0.0, 100.0, 1.0], [0.0, 1.0, 100.0]])
    cost = np.zeros((2, 3))
    eligible = np.array([[False, False, True], [True, True, False]])
    solution = optimise(value, cost, eligible, 1.0, None)
    assert solution.choice.tolist() == [2, 1]  # the control is eligible even when the mask says no


def test_bad_inputs_are_refused() -> None:
    value, cost, eligible = np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 3), dtype=bool)
    with pytest.raises(ValueError, match="control"):
        optimise(value, cost + 1, eligible, 1.0)
    with pytest.raises(ValueError, match="cost must be finite"):
        optimise(value, cost - np.array([0, 1, 0]), eligible, 1.0)
    with pytest.raises(ValueError, match="caps"):
        optimise(value, cost, eligible, 1.0, np.array([1, -1, 0]))
    with pytest.raises(ValueError, match="bool"):
        optimise(value, cost, eligible.astype(int), 1.0)
    with pytest.raises(ValueError, match="budget"):
        optimise(value, cost, eligible, -1.0)
    nan_where_ineligible = value.copy()
    nan_where_ineligible[0, 1] = np.nan
    eligible[0, 1] = False
    assert optimise(nan_where_ineligible, cost, eligible, 1.0).choice[0] != 1
    assert optimise(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3), dtype=bool), 1.0).objective == 0


def test_one_million_customers_by_five_strategies() -> None:
    rng = np.random.default_rng(2024)
    n, k = 1_000_000, 5
    p_convert = rng.uniform(0.01, 0.2, (n, k))
    value = rng.normal(0.3, 1.0, (n, k))
    value[:, 0] = 0.0
    cost = np.array([0.0, 0.02, 0.12, 0.12, 0.02]) + np.array([0.0, 0.0, 0.0, 0.0, 4.9]) * p_convert
    eligible = rng.random((n, k)) < 0.85
    caps = np.array([n, n, 150_000, 50_000, 40_000])
    budget = 40_000.0
    started = time.perf_counter()
    solution = optimise(value, cost, eligible, budget, caps)
    seconds = time.perf_counter() - started
    log.info(
        "1M x 5: solved in %.2f s, gap %.3g (%.2g%%), %d line searches, counts %s",
        seconds,
        solution.gap,
        100 * solution.gap_share,
        solution.iterations,
        solution.counts.tolist(),
    )
    assert_feasible(solution.choice, cost, eligible, budget, caps)
    assert solution.upper_bound >= solution.objective
    assert solution.objective == pytest.approx(value[np.arange(n), solution.choice].sum(), rel=1e-9)
    _, assignment = decide(value, cost, eligible, budget, caps, holdout_share=0.05, explore_share=0.05, rng_seed=3)
    assert_feasible(assignment.strategy, cost, eligible, budget, caps)
    assert np.allclose(assignment.probabilities.sum(axis=1), 1.0)
    # the draws come first: the budget is spent on the customers who can receive the choice
    assert assignment.spent > 0.999 * budget


# ---------------------------------------------------------------------------------------------
# the randomised assignment
# ---------------------------------------------------------------------------------------------


def test_assignment_never_exceeds_budget_or_caps() -> None:
    for seed in range(40):
        rng = np.random.default_rng(seed)
        n, k = int(rng.integers(5, 300)), int(rng.integers(2, 6))
        value, cost, eligible, budget, caps = random_instance(rng, n, k)
        holdout, explore = float(rng.uniform(0, 0.5)), float(rng.uniform(0, 0.6))
        for draw_seed in (seed, 100 + seed, 200 + seed):  # other draws of the same instance
            solution, a = decide(
                value, cost, eligible, budget, caps, holdout_share=holdout, explore_share=explore, rng_seed=draw_seed
            )
            assert_feasible(a.strategy, cost, eligible, budget, caps)
            assert a.spent <= budget
            assert np.allclose(a.probabilities.sum(axis=1), 1.0)
            assert np.all(a.propensity == a.probabilities[np.arange(n), a.strategy]) and np.all(a.propensity > 0)
            assert np.all(a.strategy[a.reason == "holdout"] == 0)
            model = a.reason == "model"
            assert np.array_equal(a.strategy[model], solution.choice)  # the optimiser saw the model customers only
            assert np.array_equal(a.model_choice[model], a.strategy[model])
            explored = a.reason == "explore"
            assert np.all(a.plan.support[np.flatnonzero(explored), a.strategy[explored]])
            elig = eligible | (np.arange(k) == 0)
            assert np.all(elig[np.arange(n), a.model_choice])  # m_i of the others is an eligible strategy too


def test_assignment_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(5)
    value, cost, eligible, budget, caps = random_instance(rng, 200, 4)
    kwargs = {"holdout_share": 0.1, "explore_share": 0.3}
    _, first = decide(value, cost, eligible, budget, caps, rng_seed=11, **kwargs)
    _, second = decide(value, cost, eligible, budget, caps, rng_seed=11, **kwargs)
    _, other = decide(value, cost, eligible, budget, caps, rng_seed=12, **kwargs)
    assert np.array_equal(first.strategy, second.strategy) and np.array_equal(first.reason, second.reason)
    assert not np.array_equal(first.reason, other.reason)


def test_propensities_match_the_empirical_assignment_frequencies() -> None:
    """Over many seeds, how often each customer gets each strategy is its recorded probability.

    The budget does not bind, so each customer's m_i (its best eligible strategy) does not depend on the
    draws and the recorded probabilities are the same in every draw.
    """
    n, k = 7, 4
    eligible = np.array(
        [[1, 1, 1, 1], [1, 0, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool
    )
    cost = np.tile([0.0, 0.1, 0.5, 1.0], (n, 1))
    choice = np.array([3, 2, 0, 1, 2, 1, 3])  # includes the control and strategies an explore draw can repeat
    value = np.zeros((n, k))
    value[np.arange(n), choice] = 1.0 + np.arange(n)
    value[:, 0] = np.where(choice == 0, 1.0, 0.0)
    budget, caps = 100.0, np.array([n, n, n, n])
    holdout, explore = 0.2, 0.35
    draws = 4000
    counts = np.zeros((n, k))
    reference = None
    for seed in range(draws):
        _, a = decide(value, cost, eligible, budget, caps, holdout_share=holdout, explore_share=explore, rng_seed=seed)
        assert np.array_equal(a.model_choice, choice)
        counts[np.arange(n), a.strategy] += 1
        reference = a.probabilities if reference is None else reference
        assert np.array_equal(a.probabilities, reference)
    assert np.allclose(reference.sum(axis=1), 1.0)
    # exact values for customer 0: all four eligible, the optimiser's choice 3
    e_share = (1 - holdout) * explore / 4
    assert reference[0] == pytest.approx([holdout + e_share, e_share, e_share, e_share + (1 - holdout) * (1 - explore)])
    frequency = counts / draws
    sigma = np.sqrt(reference * (1 - reference) / draws)
    assert np.all(np.abs(frequency - reference) <= 4.5 * sigma + 1e-12), np.abs(frequency - reference) / (sigma + 1e-12)
    assert np.all(frequency[~(eligible | (np.arange(k) == 0))] == 0)


def test_with_a_binding_budget_the_recorded_propensities_are_the_draws_frequencies() -> None:
    """Where the budget binds, m_i depends on the others' draws only through the multipliers: over many
    draws, the mean recorded propensity of every (customer, strategy) matches how often it was assigned."""
    rng = np.random.default_rng(3)
    n, k = 400, 3
    value = np.c_[np.zeros(n), rng.normal(1.0, 0.5, n), rng.normal(1.5, 0.8, n)]
    cost = np.c_[np.zeros(n), rng.uniform(0.5, 1.5, n), rng.uniform(1.0, 2.0, n)]
    eligible = np.ones((n, k), dtype=bool)
    budget = 0.25 * cost[:, 1].sum()
    draws = 300
    counts, recorded = np.zeros((n, k)), np.zeros((n, k))
    for seed in range(draws):
        _, a = decide(value, cost, eligible, budget, None, holdout_share=0.1, explore_share=0.1, rng_seed=seed)
        assert a.spent <= budget
        counts[np.arange(n), a.strategy] += 1
        recorded += a.probabilities
    frequency, mean = counts / draws, recorded / draws
    # aggregated over customers (each customer's own frequency is a 300-draw estimate)
    assert np.allclose(frequency.sum(axis=0), mean.sum(axis=0), rtol=0.03)
    assert np.abs(frequency - mean).max() < 0.2


def test_the_draws_do_not_depend_on_the_values() -> None:
    rng = np.random.default_rng(8)
    value, cost, eligible, budget, caps = random_instance(rng, 150, 4)
    plan = plan_exploration(eligible, cost, budget, caps, holdout_share=0.1, explore_share=0.2)
    holdout, drawn = draw(plan, 42)
    _, a = decide(value, cost, eligible, budget, caps, holdout_share=0.1, explore_share=0.2, rng_seed=42)
    _, b = decide(-value, cost, eligible, budget, caps, holdout_share=0.1, explore_share=0.2, rng_seed=42)
    for x in (a, b):
        assert np.array_equal(x.reason == "holdout", holdout) and np.array_equal(x.reason == "explore", drawn >= 0)
        assert np.array_equal(x.strategy[drawn >= 0], drawn[drawn >= 0])


def test_the_optimiser_spends_the_budget_of_the_customers_held_out() -> None:
    """Held-out and explored customers take no budget from the model customers: with a budget that binds,
    the model customers get (nearly) all of what exploration left, not the share the optimiser would
    have given them had it solved for everyone."""
    n = 2000
    value = np.c_[np.zeros(n), np.linspace(2.0, 1.0, n)]
    cost = np.c_[np.zeros(n), np.ones(n)]
    eligible = np.ones((n, 2), dtype=bool)
    _, a = decide(value, cost, eligible, 500.0, None, holdout_share=0.2, explore_share=0.1, rng_seed=1)
    explored = (a.reason == "explore") & (a.strategy == 1)
    treated = (a.reason == "model") & (a.strategy == 1)
    assert 499 <= treated.sum() + explored.sum() <= 500  # every euro spent (but the float slack kept off the budget)
    # the model customers treated are the best ones the draw left: top values first, nobody skipped
    model_rows = np.flatnonzero(a.reason == "model")
    assert np.array_equal(np.flatnonzero(treated), model_rows[: treated.sum()])


def test_exploration_leaves_out_strategies_whose_cap_it_could_overrun() -> None:
    n, k = 400, 3
    eligible = np.ones((n, k), dtype=bool)
    cost = np.tile([0.0, 0.1, 0.2], (n, 1))
    caps = np.array([n, 1000, 5])  # exploring strategy 2 could give it up to ~ceil(0.1 n / 3) > 5 customers
    plan = plan_exploration(eligible, cost, 1000.0, caps, holdout_share=0.1, explore_share=0.1)
    assert plan.explorable.tolist() == [True, True, False]
    assert plan.reserve_caps[2] == 0 and plan.optimiser_caps[2] == 5
    value = np.tile([0.0, 1.0, 2.0], (n, 1))
    for seed in range(20):
        _, a = decide(value, cost, eligible, 1000.0, caps, holdout_share=0.1, explore_share=0.1, rng_seed=seed)
        assert a.counts[2] <= 5 and not np.any((a.reason == "explore") & (a.strategy == 2))


def test_the_shipped_catalogue_drives_a_decision() -> None:
    """Catalogue money and eligibility into the optimiser and the assignment, end to end."""
    catalogue = load_catalogue()
    rng = np.random.default_rng(9)
    n, k = 3000, len(catalogue.names)
    features = pd.DataFrame(
        {
            "has_email": rng.random(n) < 0.9,
            "tenure_days": rng.integers(0, 1000, n),
            "days_since_last_purchase": np.where(rng.random(n) < 0.2, 999.0, rng.uniform(0, 400, n)),
            "emails_received_90d": rng.integers(0, 6, n),
        }
    )
    p_convert = np.clip(rng.uniform(0.01, 0.1, (n, 1)) + rng.uniform(0, 0.05, (n, k)), 0, 1)
    revenue = p_convert * rng.uniform(20, 80, (n, 1)) * np.array([1.0, 1.0, 0.9, 0.8, 1.0])
    value = catalogue.incremental_profit(p_convert, revenue)
    cost = catalogue.expected_cost(p_convert, revenue)
    eligible = catalogue.eligibility_mask(features)
    caps = catalogue.caps_for(n)
    budget = 30.0
    solution, assignment = decide(
        value,
        cost,
        eligible,
        budget,
        caps,
        holdout_share=catalogue.holdout_share,
        explore_share=catalogue.explore_share,
        rng_seed=1,
    )
    assert len(solution.choice) == (assignment.reason == "model").sum()  # the optimiser solved for the model rows
    assert_feasible(assignment.strategy, cost, eligible, budget, caps)
    assert solution.budget_binding and solution.objective > 0
    assert set(np.unique(assignment.reason)) == {"model", "holdout", "explore"}

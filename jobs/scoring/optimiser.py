"""Which strategy each customer gets: a budget- and cap-constrained choice, then a randomised assignment.

**The problem** (multiple-choice knapsack): customer i gets exactly one strategy s among its eligible
ones (the control is always eligible, costs nothing and is never capped); maximise Σ value[i, s]
subject to Σ cost[i, s] <= budget and, per strategy, count_s <= cap_s.

**The algorithm** (:func:`optimise`, vectorised over customers, no per-customer Python loop):

1. If every customer's best eligible strategy already fits, that is optimal (gap 0).
2. Lagrangian relaxation: for multipliers λ >= 0 (budget) and μ_s >= 0 (caps), every customer picks
   argmax value − λ·cost − μ_s, and L(λ, μ) = λ·budget + Σ μ_s·cap_s + Σ_i max_s(...) is an upper
   bound on the optimum (weak duality); its minimum equals the LP-relaxation bound. Coordinate
   descent minimises L: λ by bisection on the spend (bracketed around a guess; customers whose
   choice is equal at both ends of the bracket drop out, so later steps touch few rows), μ_s
   exactly (the (cap_s+1)-th largest advantage of s over the best other strategy). Large problems
   start from the multipliers of an evenly spaced sample of customers.
3. Up to ``exact_lp_max_vars`` eligible (customer, strategy) pairs the LP relaxation is also solved
   by HiGHS; its duals give a second Lagrangian bound (evaluated here, so valid whatever the
   solver's tolerances) and its near-integral solution a second start.
4. Primal, from each start: greedy repair (over-cap strategies, then the budget, give back the
   customers that lose least per unit freed, to the control), greedy fill (rounds of upgrades: free
   ones by gain, then by gain per extra cost, while budget and cap room last) and, up to
   ``exchange_max_vars`` pairs, a local search of pair moves (one customer steps down to pay for,
   or make cap room for, another's upgrade). The better result wins.

``upper_bound`` is the smallest bound found (never below the objective), so ``gap`` =
``upper_bound − objective`` is at least the true optimality gap.

**The randomised assignment** (:func:`plan_exploration`, :func:`draw`, :func:`decide`): a random
``holdout_share`` h of customers gets the control (reason ``holdout``); of the rest a random
``explore_share`` e gets a uniformly random strategy of its exploration support E_i (reason
``explore``); everyone else gets the optimiser's choice (reason ``model``). The random parts are
drawn **first** and the optimiser then solves the knapsack for the model customers alone, with the
budget and caps the realised exploration left: the budget is spent on customers who can receive the
choice, none of it on customers the draw holds out or explores, and no worst case is set aside.
(Until 2026-12 the optimiser ran first on everyone and the draws came after: the held-out and
explored customers' budget was lost and exploration's worst case was reserved; on the simulator's
20,000-customer night the oracle's values put through that lost 10.7 % of its profit, through this
6.2 %.) Every customer's probability of strategy s is

    P_i(s) = h·1[s = control] + (1 − h)·(e·1[s ∈ E_i]/|E_i| + (1 − e)·1[s = m_i])

where m_i is the optimiser's choice for a model customer and, for a held-out or explored one, the
choice it would have had: the best eligible strategy at the optimiser's multipliers (λ, μ), which is
what one more customer added to a large knapsack gets. Each customer's own draws are independent of
everyone else's, so given the others' draws the probability is exact, which is what inverse-propensity
weighting needs; ``model_choice`` records m_i for every customer (the evaluation compares a strategy's
model customers with the held-out customers whose m_i is that strategy).

Budget and caps hold for every draw, not just on average. Exploration is drawn per group of
customers (same E_i and, in large runs, the same quantile bin of mean cost over E_i): a group
explores exactly ``floor(e·n') + Bernoulli(frac(e·n'))`` of its n' non-holdout customers (each with
probability exactly e) and deals them strategies from a shuffled balanced deck (every strategy of
E_i ``floor(m/|E_i|)`` times, plus a random subset of E_i for the remainder: each draw is exactly
uniform on E_i). So, before any draw, exploration gives strategy s at most Σ_groups
ceil(ceil(e·n_g)/|E_g|) customers and spends at most the sum of the matching largest costs per
group; :func:`plan_exploration` leaves a strategy out of exploration when that worst case does not
fit its cap or the budget (E_i = eligible ∩ explorable strategies; the control always in), so the
optimiser is always left a budget and caps >= 0.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

log = logging.getLogger(__name__)

#: solve the LP relaxation exactly (HiGHS) up to this many eligible (customer, strategy) pairs
EXACT_LP_MAX_VARS = 100_000
#: pair-move local search up to this many (customer, strategy) pairs, at most EXCHANGE_ROUNDS moves
EXCHANGE_MAX_VARS = 50_000
EXCHANGE_ROUNDS = 100
MAX_SWEEPS = 50
BISECTION_STEPS = 200
FILL_ROUNDS = 50
#: the budget multiplier's bisection stops at this relative bracket width
BISECTION_RTOL = 1e-13
#: customers in the sample that guesses λ, and the bracket around a guess (relative)
LAMBDA_SAMPLE = 20_000
LAMBDA_BRACKET = 0.05
#: customers in the sample whose multipliers start the coordinate descent of large problems
DUAL_SAMPLE = 50_000
#: coordinate descent stops when a sweep improves the bound by less than this (relative)
DUAL_RTOL = 1e-10
#: margin kept off the budget for exploration's worst case (float sums in another order)
BUDGET_SLACK = 1e-9
#: exploration groups: up to EXPLORE_COST_BINS cost quantiles of at least EXPLORE_BIN_MIN customers each
EXPLORE_COST_BINS = 16
EXPLORE_BIN_MIN = 10_000
REASONS = ("model", "holdout", "explore")


@dataclass
class Solution:
    """The optimiser's choice and how good it is provably."""

    choice: np.ndarray  # (n,) strategy index per customer
    objective: float  # Σ value of the choice
    upper_bound: float  # no feasible choice is worth more
    gap: float  # upper_bound − objective (>= the true optimality gap)
    gap_share: float  # gap relative to max(|upper_bound|, |objective|)
    spent: float  # Σ cost of the choice (<= budget)
    counts: np.ndarray  # (K,) customers per strategy (<= caps)
    lambda_: float  # budget multiplier of the bound
    mu_: np.ndarray  # (K,) cap multipliers of the bound
    exact_lp: bool  # the LP relaxation was solved exactly (its duals give the bound)
    iterations: int  # coordinate line searches of the Lagrangian dual
    budget_binding: bool  # the budget limits the choice (λ > 0)
    caps_binding: np.ndarray  # (K,) the cap limits the choice (μ_s > 0)
    seconds: float = 0.0


@dataclass
class ExplorationPlan:
    """What exploration may draw and the worst case it can cost, fixed before any draw."""

    holdout_share: float
    explore_share: float
    control: int
    explorable: np.ndarray  # (K,) strategies exploration may draw
    support: np.ndarray  # (n, K) E_i: eligible and explorable (control always)
    group: np.ndarray  # (n,) exploration group (support pattern and cost bin)
    reserve_budget: float  # most that exploration can spend (the realised draw usually spends less)
    reserve_caps: np.ndarray  # (K,) most customers exploration can give each strategy
    optimiser_budget: float  # the least budget exploration leaves the optimiser (after its worst case)
    optimiser_caps: np.ndarray  # (K,) the least caps it leaves


@dataclass
class Assignment:
    """The randomised assignment: strategy, reason and propensity per customer."""

    strategy: np.ndarray  # (n,) assigned strategy index
    reason: np.ndarray  # (n,) "model", "holdout" or "explore"
    propensity: np.ndarray  # (n,) probability of the assigned strategy under the randomised policy
    probabilities: np.ndarray  # (n, K) probability of every strategy (rows sum to 1)
    model_choice: np.ndarray  # (n,) the optimiser's choice
    spent: float  # Σ cost of the assignment (<= budget)
    counts: np.ndarray  # (K,) customers per strategy (<= caps)
    plan: ExplorationPlan


# ---------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------


@dataclass
class _Problem:
    w: np.ndarray  # value, -inf where ineligible
    c: np.ndarray  # cost, 0 where ineligible
    eligible: np.ndarray
    budget: float
    caps: np.ndarray  # effective caps (n for the control and uncapped strategies)
    capped: list[int]  # strategies whose cap can bind
    control: int

    @property
    def n(self) -> int:
        return self.w.shape[0]

    @property
    def k(self) -> int:
        return self.w.shape[1]


def _problem(
    value: ArrayLike, cost: ArrayLike, eligible: ArrayLike, budget: float, caps: ArrayLike | None, control: int
) -> _Problem:
    v = np.asarray(value, dtype="float64")
    if v.ndim != 2 or v.shape[1] < 1:
        raise ValueError(f"value must be a 2-D (customers, strategies) array, got shape {v.shape}")
    n, k = v.shape
    c = np.asarray(cost, dtype="float64")
    e = np.asarray(eligible)
    for name, array in (("cost", c), ("eligible", e)):
        if array.shape != v.shape:
            raise ValueError(f"{name} has shape {array.shape}, expected {v.shape} like value")
    if e.dtype != bool:
        raise ValueError(f"eligible must be a bool array, got {e.dtype}")
    if not 0 <= control < k:
        raise ValueError(f"control {control} is not a strategy index (0..{k - 1})")
    e = e.copy()
    e[:, control] = True
    if not np.all(np.isfinite(v[e])):
        raise ValueError("value must be finite where eligible")
    if not np.all(np.isfinite(c[e])) or np.any(c[e] < 0):
        raise ValueError("cost must be finite and >= 0 where eligible")
    if np.any(c[:, control] != 0):
        raise ValueError(f"the control (column {control}) must cost nothing")
    budget = float(budget)
    if math.isnan(budget) or budget < 0:
        raise ValueError(f"budget must be >= 0 (got {budget})")
    effective = np.full(k, n, dtype=np.int64)
    if caps is not None:
        given = np.asarray(caps)
        if given.shape != (k,) or not np.issubdtype(given.dtype, np.integer) or np.any(given < 0):
            raise ValueError(f"caps must be {k} integers >= 0, got {given!r}")
        effective = np.minimum(given.astype(np.int64), n)
    effective[control] = n
    eligible_counts = e.sum(axis=0)
    capped = [s for s in range(k) if s != control and effective[s] < eligible_counts[s]]
    return _Problem(
        w=np.where(e, v, -np.inf),
        c=np.where(e, c, 0.0),
        eligible=e,
        budget=budget,
        caps=effective,
        capped=capped,
        control=control,
    )


# ---------------------------------------------------------------------------------------------
# the Lagrangian dual
# ---------------------------------------------------------------------------------------------


def _scores(p: _Problem, lam: float, mu: np.ndarray) -> np.ndarray:
    scores = p.w - lam * p.c if lam > 0 else p.w.copy()
    if np.any(mu > 0):
        scores -= mu[None, :]
    return scores


def _dual(p: _Problem, lam: float, mu: np.ndarray) -> tuple[float, np.ndarray]:
    """L(λ, μ) (an upper bound on the optimum) and the customers' choices at (λ, μ)."""
    scores = _scores(p, lam, mu)
    choice = scores.argmax(axis=1)
    bound = float(np.take_along_axis(scores, choice[:, None], axis=1).sum())
    if lam > 0:
        bound += lam * p.budget
    bound += float(mu[p.capped] @ p.caps[p.capped]) if p.capped else 0.0
    return bound, choice


def _spend(c: np.ndarray, choice: np.ndarray) -> float:
    return float(np.take_along_axis(c, choice[:, None], axis=1).sum())


def _search_lambda(p: _Problem, mu: np.ndarray, hint: float = 0.0) -> tuple[float, np.ndarray]:
    """The smallest λ >= 0 whose choices spend at most the budget, and the choices there.

    The spend is a non-increasing step function of λ. A bracket is found around a guess (the
    previous sweep's λ, else the λ of an evenly spaced sample of customers), then bisected over a
    shrinking set of customers: those whose choice is equal at both ends of the bracket cannot
    change inside it, so their spend is summed once and they drop out.
    """
    base = _scores(p, 0.0, mu)

    def choose(lam: float) -> tuple[np.ndarray, float]:
        choice = (base - lam * p.c).argmax(axis=1)
        return choice, _spend(p.c, choice)

    at_lo, spent = choose(0.0)
    if spent <= p.budget:
        return 0.0, at_lo
    lo, top = 0.0, math.inf
    guess = hint if hint > 0 else _sample_lambda(base, p.c, p.budget)
    x = guess * (1 + LAMBDA_BRACKET) if guess > 0 else math.inf
    while True:  # the upper end: double until the spend fits (past top it always does, up to rounding)
        if x >= top or math.isinf(x):
            top = _lambda_top(base, p.c) if math.isinf(top) else top
            x = max(x, top) if math.isfinite(x) else top
        at_x, spent = choose(x)
        if spent <= p.budget:
            hi, at_hi = x, at_x
            break
        lo, at_lo = x, at_x
        x *= 2
    x = guess * (1 - LAMBDA_BRACKET)
    for _ in range(BISECTION_STEPS):  # the lower end: halve until the spend is over the budget
        if not lo < x < hi:
            break
        at_x, spent = choose(x)
        if spent > p.budget:
            lo, at_lo = x, at_x
            break
        hi, at_hi = x, at_x
        x /= 2
    moving = np.flatnonzero(at_lo != at_hi)
    settled = np.ones(p.n, dtype=bool)
    settled[moving] = False
    fixed = float(np.take_along_axis(p.c[settled], at_hi[settled][:, None], axis=1).sum())
    b, c = base[moving], p.c[moving]
    ch_lo, ch_hi = at_lo[moving], at_hi[moving]
    for _ in range(BISECTION_STEPS):
        if ch_lo.size == 0 or hi - lo <= BISECTION_RTOL * hi:
            break
        mid = 0.5 * (lo + hi)
        ch = (b - mid * c).argmax(axis=1)
        if fixed + _spend(c, ch) > p.budget:
            lo, ch_lo = mid, ch
        else:
            hi, ch_hi = mid, ch
            at_hi[moving] = ch
        same = ch_lo == ch_hi
        if same.any():  # between lo and hi these customers cannot change their choice any more
            fixed += float(np.take_along_axis(c[same], ch_hi[same][:, None], axis=1).sum())
            keep = ~same
            b, c, ch_lo, ch_hi, moving = b[keep], c[keep], ch_lo[keep], ch_hi[keep], moving[keep]
    return hi, at_hi


def _lambda_top(base: np.ndarray, cost: np.ndarray) -> float:
    """A λ above which no customer prefers a costly strategy to its best free one (the control is free)."""
    free_best = np.where(cost == 0, base, -np.inf).max(axis=1)
    costly = cost > 0
    ratio = np.where(costly, (base - free_best[:, None]) / np.where(costly, cost, 1.0), -np.inf)
    return max(float(ratio.max()), 0.0) * (1 + 1e-9) + 1e-300


def _sample_lambda(base: np.ndarray, cost: np.ndarray, budget: float) -> float:
    """λ estimated by bisection on an evenly spaced sample of customers (budget scaled); 0 for small problems."""
    n = base.shape[0]
    if n <= 2 * LAMBDA_SAMPLE:
        return 0.0
    rows = np.linspace(0, n - 1, LAMBDA_SAMPLE).astype(np.int64)
    b, c, share = base[rows], cost[rows], budget * LAMBDA_SAMPLE / n
    lo, hi = 0.0, _lambda_top(b, c)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if _spend(c, (b - mid * c).argmax(axis=1)) > share:
            lo = mid
        else:
            hi = mid
    return hi


def _search_mu(p: _Problem, lam: float, mu: np.ndarray, s: int) -> tuple[float, np.ndarray]:
    """The smallest μ_s >= 0 at which at most cap_s customers prefer s (exact), and the choices there."""
    others = mu.copy()
    others[s] = 0.0
    scores = _scores(p, lam, others)
    own = scores[:, s].copy()
    scores[:, s] = -np.inf
    other = scores.argmax(axis=1)
    advantage = own - np.take_along_axis(scores, other[:, None], axis=1)[:, 0]
    cap = int(p.caps[s])
    theta = 0.0
    if int((advantage > 0).sum()) > cap:
        theta = float(-np.partition(-advantage, cap)[cap])  # the (cap+1)-th largest advantage, >= 0
        theta = float(np.nextafter(max(theta, 0.0), np.inf))  # ties go to the other strategies
    return theta, np.where(advantage > theta, s, other)


def _lagrangian(p: _Problem) -> tuple[float, float, np.ndarray, int, np.ndarray]:
    """Coordinate descent on L: (bound, λ, μ, line searches, choices) at the best point seen.

    Large problems start from the multipliers of an evenly spaced sample of customers (budget and
    caps scaled down), so the full-size sweeps start close to the minimum.
    """
    lam, mu = 0.0, np.zeros(p.k)
    coords = ([-1] if math.isfinite(p.budget) else []) + p.capped
    searches = 0
    if p.n > 2 * DUAL_SAMPLE and coords:
        _, lam, mu, searches, _ = _lagrangian(_sample(p, DUAL_SAMPLE))
        mu[[s for s in range(p.k) if s not in p.capped]] = 0.0
    best, choice = _dual(p, lam, mu)
    best_lam, best_mu, best_choice = lam, mu.copy(), choice
    stale = dict.fromkeys(coords, True)  # another multiplier changed since this one was minimised
    for _ in range(MAX_SWEEPS):
        changed = False
        for coord in coords:
            old = lam if coord < 0 else float(mu[coord])
            if not stale[coord]:
                continue
            stale[coord] = False
            if old == 0 and (  # still minimal at 0 if the constraint holds there
                _spend(p.c, choice) <= p.budget if coord < 0 else np.count_nonzero(choice == coord) <= p.caps[coord]
            ):
                continue
            if coord < 0:
                lam, choice = _search_lambda(p, mu, lam)
                new = lam
            else:
                new, choice = _search_mu(p, lam, mu, coord)
                mu[coord] = new
            searches += 1
            if new != old:
                changed = True
                for other in coords:
                    stale[other] = other != coord
        if not changed:
            break
        bound, choice = _dual(p, lam, mu)
        improved = best - bound
        if bound < best:
            best, best_lam, best_mu, best_choice = bound, lam, mu.copy(), choice
        if improved <= DUAL_RTOL * max(1.0, abs(bound)):
            break
    return best, best_lam, best_mu, searches, best_choice


def _sample(p: _Problem, size: int) -> _Problem:
    """An evenly spaced sample of ``size`` customers, with budget and caps scaled to it."""
    rows = np.linspace(0, p.n - 1, size).astype(np.int64)
    share = size / p.n
    caps = np.floor(p.caps * share).astype(np.int64)
    caps[p.control] = size
    eligible = p.eligible[rows]
    counts = eligible.sum(axis=0)
    capped = [s for s in range(p.k) if s != p.control and caps[s] < counts[s]]
    return _Problem(
        w=p.w[rows],
        c=p.c[rows],
        eligible=eligible,
        budget=p.budget * share,
        caps=caps,
        capped=capped,
        control=p.control,
    )


def _exact_lp(p: _Problem) -> tuple[float, float, np.ndarray, np.ndarray] | None:
    """The LP relaxation by HiGHS: (Lagrangian bound at its duals, λ, μ, rounded choice), None if it fails.

    Compact form: a variable per eligible non-control (customer, strategy), Σ_s x_is <= 1 per
    customer (the control takes the rest), value measured against the control's.
    """
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix, vstack

    options = p.eligible.copy()
    options[:, p.control] = False
    rows, cols = np.nonzero(options)
    m = rows.size
    if m == 0:
        return None
    blocks = [csr_matrix((np.ones(m), (rows, np.arange(m))), shape=(p.n, m))]
    limits = [np.ones(p.n)]
    budget_row = math.isfinite(p.budget)
    if budget_row:
        blocks.append(csr_matrix(p.c[rows, cols][None, :]))
        limits.append(np.array([p.budget]))
    for s in p.capped:
        blocks.append(csr_matrix((cols == s).astype("float64")[None, :]))
        limits.append(np.array([float(p.caps[s])]))
    result = linprog(
        -(p.w[rows, cols] - p.w[rows, p.control]),
        A_ub=vstack(blocks).tocsr(),
        b_ub=np.concatenate(limits),
        bounds=(0, 1),  # implied by the rows, but HiGHS is much faster with them
        method="highs",
    )
    if result.status != 0:
        log.warning("exact LP relaxation failed (%s): using the Lagrangian bound only", result.message)
        return None
    duals = -np.asarray(result.ineqlin.marginals)[p.n :]
    lam = max(float(duals[0]), 0.0) if budget_row else 0.0
    mu = np.zeros(p.k)
    for j, s in enumerate(p.capped):
        mu[s] = max(float(duals[j + int(budget_row)]), 0.0)
    bound, _ = _dual(p, lam, mu)
    x = np.zeros((p.n, p.k))
    x[rows, cols] = result.x
    choice = np.where(x.max(axis=1) >= 1 - 1e-7, x.argmax(axis=1), p.control)
    return bound, lam, mu, choice


# ---------------------------------------------------------------------------------------------
# primal: repair and fill
# ---------------------------------------------------------------------------------------------


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... per group value, in the order the entries come."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    lengths = np.diff(np.r_[starts, sorted_groups.size])
    ranks = np.empty(groups.size, dtype=np.int64)
    ranks[order] = np.arange(groups.size) - np.repeat(starts, lengths)
    return ranks


def _repair(p: _Problem, choice: np.ndarray) -> np.ndarray:
    """Move customers to the control until caps and budget hold, losing the least value per unit freed."""
    choice = choice.copy()
    ctrl_value = p.w[:, p.control]
    counts = np.bincount(choice, minlength=p.k)
    for s in range(p.k):
        if s != p.control and counts[s] > p.caps[s]:
            members = np.flatnonzero(choice == s)
            loss = p.w[members, s] - ctrl_value[members]
            choice[members[np.argsort(loss, kind="stable")[: counts[s] - p.caps[s]]]] = p.control
    spent = _spend(p.c, choice)
    while spent > p.budget:
        current = np.take_along_axis(p.c, choice[:, None], axis=1)[:, 0]
        paying = np.flatnonzero(current > 0)
        loss = np.take_along_axis(p.w[paying], choice[paying][:, None], axis=1)[:, 0] - ctrl_value[paying]
        order = paying[np.argsort(loss / current[paying], kind="stable")]
        freed = np.cumsum(current[order])
        take = min(int(np.searchsorted(freed, spent - p.budget, side="left")) + 1, order.size)
        choice[order[:take]] = p.control
        spent = _spend(p.c, choice)
    return choice


def _fill(p: _Problem, choice: np.ndarray) -> np.ndarray:
    """Greedy upgrades with the budget and cap room left: free ones by gain, then by gain per extra cost."""
    choice = choice.copy()

    def improvable(rows: np.ndarray) -> np.ndarray:
        current = np.take_along_axis(p.w[rows], choice[rows][:, None], axis=1)
        return rows[(p.w[rows] > current).any(axis=1)]

    everyone = improvable(np.arange(p.n))  # not at their best strategy
    candidates = everyone  # ... and with a move that fitted in the last round
    for _ in range(FILL_ROUNDS):
        if candidates.size == 0:
            break
        room = p.caps - np.bincount(choice, minlength=p.k)
        left = p.budget - _spend(p.c, choice)
        ch = choice[candidates]
        w, c = p.w[candidates], p.c[candidates]
        gain = w - np.take_along_axis(w, ch[:, None], axis=1)
        extra = c - np.take_along_axis(c, ch[:, None], axis=1)
        possible = (gain > 0) & (room[None, :] > 0) & (extra <= left)
        keep = possible.any(axis=1)
        candidates, gain, extra, possible = candidates[keep], gain[keep], extra[keep], possible[keep]
        # free upgrades (no extra cost) first, the largest gain first, within the cap room
        free = possible & (extra <= 0)
        if free.any():
            _accept(choice, candidates, np.where(free, gain, -np.inf), None, room, left)
            everyone = candidates = improvable(everyone)  # budget left grew: everyone may fit again
            continue
        paid = possible & (extra > 0)
        ratio = np.where(paid, gain / np.where(paid, extra, 1.0), -np.inf)
        if not paid.any() or not _accept(choice, candidates, ratio, extra, room, left):
            break
        candidates = improvable(candidates)
    return choice


def _accept(
    choice: np.ndarray,
    candidates: np.ndarray,
    priority: np.ndarray,
    extra: np.ndarray | None,
    room: np.ndarray,
    left: float,
) -> bool:
    """Apply each candidate's best move by priority while cap room and (for paid moves) budget last."""
    target = priority.argmax(axis=1)
    best = np.take_along_axis(priority, target[:, None], axis=1)[:, 0]
    who = np.flatnonzero(best > -np.inf)
    who = who[np.argsort(-best[who], kind="stable")]
    to = target[who]
    fits = _rank_within(to) < room[to]
    who, to = who[fits], to[fits]
    if extra is not None and who.size:  # paid moves (extra > 0): the prefix that the budget left covers
        n_ok = int(np.searchsorted(np.cumsum(extra[who, to]), left, side="right"))
        who, to = who[:n_ok], to[:n_ok]
    choice[candidates[who]] = to
    return bool(who.size)


def _exchange(p: _Problem, choice: np.ndarray, rounds: int) -> np.ndarray:
    """Local search: the best pair move (one customer steps down to pay for or make cap room for another's upgrade).

    Each round finds, for every possible upgrade (j → s), the step-down (i → b, i ≠ j) with the least
    loss that frees enough budget (and, when s is full, leaves s), applies the best pair if it gains,
    then fills again. Vectorised: step-downs sorted by budget freed, suffix minima of their loss.
    """
    rows = np.arange(p.n)
    for _ in range(rounds):
        cur_w = p.w[rows, choice]
        cur_c = p.c[rows, choice]
        left = p.budget - float(cur_c.sum())
        room = p.caps - np.bincount(choice, minlength=p.k)
        # step-downs i -> b: to the control or to a strategy with room
        down = np.isfinite(p.w) & ((room > 0) | (np.arange(p.k) == p.control))[None, :]
        down[rows, choice] = False
        di, db = np.nonzero(down)
        freed = cur_c[di] - p.c[di, db]
        loss = cur_w[di] - p.w[di, db]
        # upgrades j -> s
        uj, us = np.nonzero(p.w > cur_w[:, None])
        if di.size == 0 or uj.size == 0:
            break
        gain = p.w[uj, us] - cur_w[uj]
        need = (p.c[uj, us] - cur_c[uj]) - left
        best_net, best_pair = 0.0, None
        families = [(room[us] > 0, np.ones(di.size, dtype=bool))]  # s has room: any step-down that pays
        families += [(us == s, choice[di] == s) for s in np.flatnonzero(room <= 0) if s != p.control]
        for ups, downs in families:
            if not ups.any() or not downs.any():
                continue
            lost, who = _least_loss(freed[downs], loss[downs], need[ups])
            ok = (who >= 0) & (di[downs][np.maximum(who, 0)] != uj[ups])
            net = np.where(ok, gain[ups] - lost, -np.inf)
            at = int(net.argmax())
            if net[at] > best_net:
                best_net = float(net[at])
                d = np.flatnonzero(downs)[who[at]]
                u = np.flatnonzero(ups)[at]
                best_pair = (di[d], db[d], uj[u], us[u])
        if best_pair is None or best_net <= 1e-12 * (1.0 + abs(float(cur_w.sum()))):
            break
        trial = choice.copy()
        i, b, j, s = best_pair
        trial[i], trial[j] = b, s
        counts = np.bincount(trial, minlength=p.k)
        if _spend(p.c, trial) > p.budget or np.any(counts > p.caps):  # e.g. both moved into the last free slot
            break
        choice = _fill(p, trial)
    return choice


def _least_loss(freed: np.ndarray, loss: np.ndarray, need: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per need: the least loss among entries freeing at least that much, and that entry (-1: none)."""
    order = np.argsort(freed, kind="stable")
    sorted_freed, sorted_loss = freed[order], loss[order]
    m = order.size
    reverse = sorted_loss[::-1]
    running = np.minimum.accumulate(reverse)
    latest = np.maximum.accumulate(np.where(reverse == running, np.arange(m), 0))
    suffix_min = running[::-1]
    suffix_arg = order[(m - 1 - latest)[::-1]]
    at = np.searchsorted(sorted_freed, need, side="left")
    found = at < m
    at = np.minimum(at, m - 1)
    return np.where(found, suffix_min[at], np.inf), np.where(found, suffix_arg[at], -1)


def _finish(p: _Problem, start: np.ndarray, exchange_rounds: int) -> tuple[np.ndarray, float]:
    choice = _fill(p, _repair(p, start))
    if exchange_rounds > 0:
        choice = _exchange(p, choice, exchange_rounds)
    return choice, float(np.take_along_axis(p.w, choice[:, None], axis=1).sum())


# ---------------------------------------------------------------------------------------------
# the optimiser
# ---------------------------------------------------------------------------------------------


def optimise(
    value: ArrayLike,
    cost: ArrayLike,
    eligible: ArrayLike,
    budget: float,
    caps: ArrayLike | None = None,
    control: int = 0,
    *,
    exact_lp_max_vars: int = EXACT_LP_MAX_VARS,
    exchange_max_vars: int = EXCHANGE_MAX_VARS,
) -> Solution:
    """One eligible strategy per customer maximising Σ value within the budget and caps (see the module docstring).

    ``value``, ``cost`` (expected, >= 0; the control's is 0) and ``eligible`` are (n, K); ``budget``
    may be ``inf``; ``caps`` (K,) integers or None (the control's cap is ignored).
    """
    started = time.perf_counter()
    p = _problem(value, cost, eligible, budget, caps, control)
    greedy = p.w.argmax(axis=1)
    counts = np.bincount(greedy, minlength=p.k)
    if p.n == 0 or (_spend(p.c, greedy) <= p.budget and np.all(counts <= p.caps)):
        objective = float(np.take_along_axis(p.w, greedy[:, None], axis=1).sum()) if p.n else 0.0
        return _solution(p, greedy, objective, objective, 0.0, np.zeros(p.k), False, 0, started)
    bound, lam, mu, searches, start = _lagrangian(p)
    rounds = EXCHANGE_ROUNDS if p.n * p.k <= exchange_max_vars else 0
    choice, objective = _finish(p, start, rounds)
    exact = False
    if int(p.eligible.sum()) <= exact_lp_max_vars:
        lp = _exact_lp(p)
        if lp is not None:
            exact = True
            lp_bound, lp_lam, lp_mu, lp_choice = lp
            if lp_bound < bound:
                bound, lam, mu = lp_bound, lp_lam, lp_mu
            lp_choice, lp_objective = _finish(p, lp_choice, rounds)
            if lp_objective > objective:
                choice, objective = lp_choice, lp_objective
    solution = _solution(p, choice, objective, bound, lam, mu, exact, searches, started)
    log.info(
        "optimised %d customers x %d strategies in %.2f s: objective %.2f, bound %.2f (gap %.2g%%, %s), "
        "spent %.2f of %.2f, lambda %.4g, %d line searches",
        p.n,
        p.k,
        solution.seconds,
        solution.objective,
        solution.upper_bound,
        100 * solution.gap_share,
        "exact LP" if exact else "Lagrangian",
        solution.spent,
        p.budget,
        solution.lambda_,
        searches,
    )
    return solution


def _solution(
    p: _Problem,
    choice: np.ndarray,
    objective: float,
    bound: float,
    lam: float,
    mu: np.ndarray,
    exact: bool,
    searches: int,
    started: float,
) -> Solution:
    bound = max(bound, objective)  # weak duality; only rounding could say otherwise
    gap = bound - objective
    scale = max(abs(bound), abs(objective))
    counts = np.bincount(choice, minlength=p.k) if p.n else np.zeros(p.k, dtype=np.int64)
    spent = _spend(p.c, choice) if p.n else 0.0
    if spent > p.budget or np.any(counts > p.caps):  # cannot happen: repair guarantees it
        raise RuntimeError(f"infeasible choice: spent {spent} of {p.budget}, counts {counts} over caps {p.caps}")
    return Solution(
        choice=choice.astype(np.int64),
        objective=objective,
        upper_bound=bound,
        gap=gap,
        gap_share=gap / scale if gap > 0 and scale > 0 else 0.0,
        spent=spent,
        counts=counts,
        lambda_=lam,
        mu_=mu,
        exact_lp=exact,
        iterations=searches,
        budget_binding=lam > 0,
        caps_binding=mu > 0,
        seconds=time.perf_counter() - started,
    )


# ---------------------------------------------------------------------------------------------
# the randomised assignment
# ---------------------------------------------------------------------------------------------


def plan_exploration(
    eligible: ArrayLike,
    cost: ArrayLike,
    budget: float,
    caps: ArrayLike | None,
    *,
    holdout_share: float,
    explore_share: float,
    control: int = 0,
) -> ExplorationPlan:
    """The exploration support and the budget and caps it may use at worst, before any draw."""
    for name, share in (("holdout_share", holdout_share), ("explore_share", explore_share)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1] (got {share})")
    p = _problem(np.zeros(np.shape(cost)), cost, eligible, budget, caps, control)
    explorable = np.ones(p.k, dtype=bool)
    limit = max(p.budget - BUDGET_SLACK * (1.0 + p.budget), 0.0) if math.isfinite(p.budget) else math.inf
    while True:
        support = p.eligible & explorable[None, :]
        group = _groups(support, p.c)
        per_group = _members(group)
        reserve_caps = np.zeros(p.k, dtype=np.int64)
        reserve_cost = np.zeros(p.k)
        for members in per_group:
            strategies = np.flatnonzero(support[members[0]])
            most = math.ceil(explore_share * members.size) if explore_share > 0 else 0
            per_strategy = math.ceil(most / strategies.size)
            for s in strategies:
                if s == control or per_strategy == 0:
                    continue
                reserve_caps[s] += per_strategy
                reserve_cost[s] += _largest_sum(p.c[members, s], per_strategy)
        over_cap = np.where(np.arange(p.k) == control, 0, reserve_caps - p.caps)
        if np.any(over_cap > 0):
            drop = int(over_cap.argmax())
            log.info("exploration leaves out strategy %d: its worst case %d exceeds its cap", drop, reserve_caps[drop])
        elif reserve_cost.sum() > limit:
            drop = int(reserve_cost.argmax())
            log.info("exploration leaves out strategy %d: its worst-case cost does not fit the budget", drop)
        else:
            break
        explorable[drop] = False
        explorable[control] = True
    reserve_budget = float(reserve_cost.sum())
    optimiser_caps = np.where(np.arange(p.k) == control, p.caps, p.caps - reserve_caps)
    optimiser_budget = limit - reserve_budget if math.isfinite(limit) else math.inf
    return ExplorationPlan(
        holdout_share=holdout_share,
        explore_share=explore_share,
        control=control,
        explorable=explorable,
        support=support,
        group=group,
        reserve_budget=reserve_budget,
        reserve_caps=reserve_caps,
        optimiser_budget=max(optimiser_budget, 0.0),
        optimiser_caps=optimiser_caps.astype(np.int64),
    )


def _groups(support: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Group per customer: the same support pattern and, in large runs, the same quantile bin of mean support cost.

    The cost bins make the worst case of each group (its largest costs) close to its average.
    """
    n, k = support.shape
    if k > 62:
        raise ValueError("at most 62 strategies")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    code = support.astype(np.int64) @ (np.int64(1) << np.arange(k, dtype=np.int64))
    group = _dense_rank(code)
    bins = min(EXPLORE_COST_BINS, max(1, n // EXPLORE_BIN_MIN))
    if bins > 1:
        mean_cost = (cost * support).sum(axis=1) / support.sum(axis=1)
        edges = np.quantile(mean_cost, np.linspace(0, 1, bins + 1)[1:-1])
        group = _dense_rank(group * bins + np.searchsorted(edges, mean_cost, side="right"))
    return group


def _dense_rank(key: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... in the order of the distinct values of a non-negative integer key."""
    top = int(key.max()) + 1
    if top > 4 * key.size + 1_000_000:
        return np.unique(key, return_inverse=True)[1].astype(np.int64)
    present = np.zeros(top, dtype=np.int64)
    present[key] = 1
    return (np.cumsum(present) - 1)[key]


def _members(group: np.ndarray) -> list[np.ndarray]:
    """The customers of each group, in index order."""
    if group.size == 0:
        return []
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1], True])
    return [order[a:b] for a, b in itertools.pairwise(bounds)]


def _largest_sum(values: np.ndarray, count: int) -> float:
    if count >= values.size:
        return float(values.sum())
    return float(np.partition(values, values.size - count)[values.size - count :].sum())


def draw(plan: ExplorationPlan, rng_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The random part of the assignment: (holdout mask, explored strategy or -1) per customer.

    Independent of the values: each customer is held out with probability h and, if not, explored
    with probability e (exact counts per exploration group, see the module docstring).
    """
    n = plan.support.shape[0]
    rng = np.random.default_rng(rng_seed)
    holdout = rng.random(n) < plan.holdout_share
    drawn = np.full(n, -1, dtype=np.int64)
    for members in _members(plan.group):
        open_ = members[~holdout[members]]
        expected = plan.explore_share * open_.size
        m = math.floor(expected)
        m += int(rng.random() < expected - m)
        if m == 0:
            continue
        explored = rng.permutation(open_)[:m]
        strategies = np.flatnonzero(plan.support[members[0]])
        whole, rest = divmod(m, strategies.size)
        deck = np.concatenate([np.repeat(strategies, whole), rng.permutation(strategies)[:rest]])
        drawn[explored] = rng.permutation(deck)
    return holdout, drawn


def _probabilities(
    support: np.ndarray, model: np.ndarray, holdout_share: float, explore_share: float, control: int
) -> np.ndarray:
    """(n, K) P_i(s) = h·1[s=control] + (1−h)·(e·1[s∈E_i]/|E_i| + (1−e)·1[s=model_i])."""
    n = support.shape[0]
    probabilities = (1 - holdout_share) * explore_share * support / support.sum(axis=1, keepdims=True)
    probabilities[np.arange(n), model] += (1 - holdout_share) * (1 - explore_share)
    probabilities[:, control] += holdout_share
    return probabilities


def decide(
    value: ArrayLike,
    cost: ArrayLike,
    eligible: ArrayLike,
    budget: float,
    caps: ArrayLike | None,
    *,
    holdout_share: float,
    explore_share: float,
    rng_seed: int,
    control: int = 0,
) -> tuple[Solution, Assignment]:
    """Draw holdout and exploration, optimise the model customers within what they leave, assign.

    Never over the budget or a cap, whatever the draw; see the module docstring for the propensities.
    The returned :class:`Solution` is the optimiser's, over the model customers.
    """
    plan = plan_exploration(
        eligible, cost, budget, caps, holdout_share=holdout_share, explore_share=explore_share, control=control
    )
    p = _problem(value, cost, eligible, budget, caps, control)
    holdout, drawn = draw(plan, rng_seed)
    explore = drawn >= 0
    model_rows = ~holdout & ~explore
    explored = np.flatnonzero(explore)
    explore_spent = float(p.c[explored, drawn[explored]].sum())
    explore_counts = np.bincount(drawn[explored], minlength=p.k)
    limit = max(p.budget - BUDGET_SLACK * (1.0 + p.budget), 0.0) if math.isfinite(p.budget) else math.inf
    caps_left = np.where(np.arange(p.k) == control, p.caps, p.caps - explore_counts)
    solution = optimise(
        np.asarray(value, dtype="float64")[model_rows],
        p.c[model_rows],
        p.eligible[model_rows],
        max(limit - explore_spent, 0.0),
        caps_left.astype(np.int64),
        control,
    )
    # m_i: the optimiser's choice, or for the others the best strategy at its multipliers
    model = _scores(p, solution.lambda_, solution.mu_).argmax(axis=1)
    model[model_rows] = solution.choice
    strategy = np.where(holdout, control, np.where(explore, drawn, model))
    reason = np.full(p.n, REASONS[0], dtype="<U7")
    reason[explore] = REASONS[2]
    reason[holdout] = REASONS[1]
    probabilities = _probabilities(plan.support, model, holdout_share, explore_share, control)
    spent = _spend(p.c, strategy)
    counts = np.bincount(strategy, minlength=p.k)
    if spent > p.budget or np.any(counts > p.caps):  # cannot happen: the optimiser got what exploration left
        raise RuntimeError(f"assignment exceeds the limits: spent {spent} of {p.budget}, counts {counts.tolist()}")
    log.info(
        "assigned %d customers: %d model, %d holdout, %d explore (spent %.2f); spent %.2f of %.2f; counts %s",
        p.n,
        int(model_rows.sum()),
        int(holdout.sum()),
        int(explore.sum()),
        explore_spent,
        spent,
        p.budget,
        counts.tolist(),
    )
    assignment = Assignment(
        strategy=strategy.astype(np.int64),
        reason=reason,
        propensity=probabilities[np.arange(p.n), strategy],
        probabilities=probabilities,
        model_choice=model.astype(np.int64),
        spent=spent,
        counts=counts,
        plan=plan,
    )
    return solution, assignment

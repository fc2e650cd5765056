"""Candidates of one training run and the choice between them, on held-out rows.

A fitted family (conversion and revenue models) can predict expected revenue two ways
(:data:`jobs.models.pyfunc.REVENUE_MODES`): ``direct`` (its own revenue model, as fitted) or
``hurdle`` (its conversion probabilities, calibrated and shrunk on held-out rows, times the order
value learned from every order, times one minus the catalogue's discount). The hurdle comes as
``hurdle`` (the family's calibrated control probability, and each strategy's effect as a function
of the customer's baseline risk, estimated from every campaign row: :mod:`jobs.models.risk_effects`)
and ``hurdle_heterogeneous`` (the family's own effects, calibrated on the held-out rows with their
differences between customers as far as the calibration slope confirms them); the XGBoost family
adds ``dr_learner`` (effects regressed on doubly robust pseudo-outcomes of the fit rows, the
platform's own logged nights included through their recorded propensities; calibrated with its
differences).

Each candidate induces the policy the nightly optimiser would run
(:func:`jobs.training.evaluate.catalogue_policy`), whose profit per customer is estimated
off-policy on the held-out rows (doubly robust, with one outcome model for all: the candidate whose
predictions fit the held-out profits best, so none grades itself). The first candidate (the hurdle)
is the default; another is registered instead only when the 95% interval of its paired gain over the
default (Bonferroni-corrected for the alternatives) lies above zero (:func:`judge`). The candidates'
held-out predictions are **cross-fitted**: each fifth of the held-out rows is calibrated with the
map fitted on the other four, and gets the risk effects fitted without its fold (the registered
calibrator and effects are then fitted on all of them).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.models.frame import CONTROL
from jobs.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from jobs.models.pyfunc import UpliftPredictor
    from jobs.scoring.catalogue import Catalogue
    from jobs.training.train import Prepared

log = logging.getLogger(__name__)
#: held-out folds of the cross-fitted calibration
CALIBRATION_FOLDS = 5
ORDER_VALUE_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.05,
    "max_depth": 3,
    "min_child_weight": 20.0,
    "early_stopping_rounds": 40,
    "random_state": 0,
}


@dataclass
class Candidate:
    """One way of predicting: held-out (p, revenue), its policy and its off-policy profit figures."""

    name: str
    p: np.ndarray
    revenue: np.ndarray
    policy: np.ndarray | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def catalogue_for(settings: Settings) -> Catalogue:
    from jobs.scoring.catalogue import load_catalogue

    return load_catalogue(settings.strategy_catalogue)


def discounts_for(catalogue: Catalogue, strategies: tuple[str, ...]) -> list[float]:
    """Each model strategy's discount share from the catalogue (0 for a strategy it does not list)."""
    return [catalogue.strategy(s).discount_share if s in catalogue.names else 0.0 for s in strategies]


def budget_per_customer(settings: Settings, catalogue: Catalogue, ds: str) -> float:
    """What one run may spend per customer: ``budget_per_customer``, or the total ``budget`` over the
    customers scored on ``ds`` (the rows of its features), or inf when only ``min_roi`` limits spending."""
    if catalogue.budget_per_customer is not None:
        return float(catalogue.budget_per_customer)
    if catalogue.budget is None:
        return math.inf
    import pyarrow.parquet as pq

    from jobs.pipeline.lake import partition_path

    files = sorted(partition_path(settings, "gold", "features", ds).glob("*.parquet"))
    customers = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return float(catalogue.budget) / customers if customers else math.inf


def fold_of(test: pd.DataFrame, folds: int = CALIBRATION_FOLDS) -> np.ndarray:
    """A stable fold per held-out row (hash of campaign and customer), the same every night."""
    import numpy as np
    import pandas as pd

    keys = test["campaign_id"].astype(str) + "|" + test["customer_id"].astype(str)
    return (pd.util.hash_pandas_object(keys, index=False).to_numpy(dtype=np.uint64) % np.uint64(folds)).astype(int)


def logged_arm(test: pd.DataFrame, strategies: tuple[str, ...]) -> np.ndarray:
    from jobs.training.evaluate import logged_index

    return logged_index(test, strategies)


def fit_calibrator(p: np.ndarray, test: pd.DataFrame, strategies: tuple[str, ...]) -> Any:
    from jobs.models.calibration import UpliftCalibrator
    from jobs.models.xgb_uplift import ipw_weights

    return UpliftCalibrator(control_index=strategies.index(CONTROL), heterogeneity=False).fit(
        p,
        test["converted"].to_numpy(dtype="float64"),
        logged_arm(test, strategies),
        ipw_weights(test["propensity"].to_numpy(dtype="float64")),
    )


def cross_fitted(
    p: np.ndarray, test: pd.DataFrame, strategies: tuple[str, ...], heterogeneity: bool = False
) -> np.ndarray:
    """Held-out probabilities, each fold calibrated by the map fitted on the other folds."""
    import numpy as np

    fold = fold_of(test)
    out = np.array(p, dtype="float64", copy=True)
    for k in np.unique(fold):
        rest = fold != k
        if rest.all() or not rest.any():
            continue
        fitted = fit_calibrator(p[rest], test[rest].reset_index(drop=True), strategies)
        out[~rest] = fitted.with_heterogeneity(heterogeneity).transform(p[~rest])
    return out


def fit_risk_effects(settings: Settings, prep: Prepared, strategies: tuple[str, ...]) -> tuple[Any, np.ndarray]:
    """The risk effects on every campaign row (fit and held-out), and the held-out rows' cross-fitted shifts.

    Fitted once per training set and shared by the families through the lake's cache (the fusion and
    each family judge the same effects on their own control probabilities).
    """
    import zlib

    import numpy as np
    import pandas as pd

    from jobs.models.risk_effects import RiskEffects
    from jobs.models.xgb_uplift import ipw_weights
    from jobs.training.cache import cached_folder, content_key

    frame = pd.concat([prep.train, prep.test], ignore_index=True)
    y = frame["converted"].to_numpy(dtype="float64")
    arm = frame["strategy"].to_numpy()
    w = ipw_weights(frame["propensity"].to_numpy(dtype="float64"))

    def write(folder: Path) -> None:
        X = np.vstack([prep.matrix("train"), prep.matrix("test")])
        effects = RiskEffects(strategies=strategies).fit(X, y, arm, w, fold_of(frame), prep.spec.matrix_columns)
        effects.save(folder / "effects")
        np.save(folder / "held_out_shift.npy", effects.cross_fitted_shift(y, arm, w)[len(prep.train) :])

    columns = ["campaign_id", "customer_id", "strategy", "converted", "propensity", "split"]
    key = f"{content_key(frame, columns)}-{zlib.crc32('|'.join(strategies).encode()):08x}"
    cache = settings.path(settings.data_root) / "_cache" / "risk_effects" / f"ds={prep.ds}"
    folder = cached_folder(cache, key, write)
    return RiskEffects.load(folder / "effects"), np.load(folder / "held_out_shift.npy")


def fit_dr_learner(prep: Prepared, base: Any) -> Any:
    """The DR-learner on the fit rows, with the family's T-learner as its base (see XGBDRLearner)."""
    from jobs.models.xgb_uplift import XGBDRLearner

    return XGBDRLearner(random_state=int(base.random_state)).fit(
        prep.matrix("train"),
        prep.train["converted"].to_numpy(dtype="float64"),
        prep.train["strategy"].to_numpy(),
        prep.train["propensity"].to_numpy(dtype="float64"),
        base,
        feature_names=prep.spec.matrix_columns,
    )


def fit_order_value(prep: Prepared, orders: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
    """The order-value model on every order of the order set, laid out like the training rows."""
    from jobs.models.frame import STRATEGIES
    from jobs.models.order_value import OrderValueModel

    known = orders["strategy"].isin(STRATEGIES)
    if not known.all():
        log.warning("order set: %d orders attributed to strategies the models do not know: left out", (~known).sum())
        orders = orders[known]
    X = prep.spec.matrix(prep.spec.flatten(orders))
    model = OrderValueModel(**{**ORDER_VALUE_DEFAULTS, **(params or {})})
    return model.fit(
        X, orders["order_value"].to_numpy(dtype="float64"), orders["strategy"].to_numpy(), prep.spec.matrix_columns
    )


def significant_winner(terms: list[np.ndarray], level: float = 0.95) -> tuple[int, list[tuple[float, float, float]]]:
    """Index of the policy to keep among per-row value terms (the first is the default), and each one's
    (mean gain over the default, lower and upper bound).

    The bounds are the paired difference's mean ± z standard errors (rows are independent; the normal
    approximation needs no resampling, which matters at a million rows), with z two-sided at ``level``
    and Bonferroni-corrected for the number of alternatives tried (1.96 for one, 2.39 for three).
    Another policy replaces the default only when its gain's lower bound is above zero; among such
    winners the largest mean value is kept.
    """
    import math

    from scipy.stats import norm

    alternatives = max(1, len(terms) - 1)
    z = float(norm.ppf(1.0 - (1.0 - level) / (2 * alternatives)))
    stats: list[tuple[float, float, float]] = [(0.0, 0.0, 0.0)]
    best = 0
    for k, t in enumerate(terms[1:], start=1):
        diff = t - terms[0]
        mean = float(diff.mean())
        half = z * float(diff.std(ddof=1)) / math.sqrt(len(diff)) if len(diff) > 1 else math.inf
        stats.append((mean, mean - half, mean + half))
        if mean - half > 0 and t.mean() > terms[best].mean():
            best = k
    return best, stats


def judge(
    candidates: list[Candidate],
    test: pd.DataFrame,
    strategies: tuple[str, ...],
    catalogue: Catalogue,
    per_customer: float,
    n_boot: int,
    seed: int = 0,
) -> Candidate:
    """Fill every candidate's policy and ``policy_profit_*`` figures and return the one to keep.

    The first candidate is the default. Another replaces it only when it wins off-policy with
    confidence: the 95% interval (corrected for the alternatives tried) of its per-row doubly robust
    profit minus the default's lies above zero (:func:`significant_winner`); among such winners the
    highest estimate is kept. On a few thousand held-out rows the estimates of policies that differ
    on many customers carry noise of the order of their true differences (measured on the simulator:
    ±0.6-0.85 EUR per customer at 9,000 held-out rows, true differences 0.1-0.2), and picking the
    noisier maximum would trade a principled model for a lucky draw.
    """
    import numpy as np

    from jobs.training.evaluate import (
        catalogue_frame,
        catalogue_policy,
        profit_policy_values,
        realised_profit,
        reference_outcome,
    )

    frames = [catalogue_frame(catalogue, strategies, c.p, c.revenue) for c in candidates]
    q_ref = frames[reference_outcome(test, [profit for _, _, profit in frames], catalogue)][2]
    a, r = realised_profit(test, catalogue)
    prop = test["propensity"].to_numpy(dtype="float64")
    rows = np.arange(len(test))
    q_logged = np.where(a >= 0, q_ref[rows, np.maximum(a, 0)], 0.0)
    terms = []
    for c, (pc, rc, profit) in zip(candidates, frames, strict=True):
        cost = catalogue.expected_cost(np.clip(pc, 0.0, 1.0), rc)
        c.policy = catalogue_policy(test, profit, cost, catalogue, per_customer)
        c.metrics = profit_policy_values(test, c.policy, q_ref, catalogue, n_boot=n_boot)
        terms.append(q_ref[rows, c.policy] + (a == c.policy) / prop * (r - q_logged))
    chosen, stats = significant_winner(terms)
    for c, (gain, lo, hi) in zip(candidates, stats, strict=True):
        c.metrics.update(policy_profit_gain_over_default=gain, gain_over_default_lo=lo, gain_over_default_hi=hi)
    default, best = candidates[0], candidates[chosen]
    for c in candidates:
        log.info(
            "candidate %s: held-out profit per customer DR %.4f [%.4f, %.4f]; over %s %+.4f [%+.4f, %+.4f]%s",
            c.name,
            c.metrics["policy_profit_dr"],
            c.metrics["policy_profit_dr_lo"],
            c.metrics["policy_profit_dr_hi"],
            default.name,
            c.metrics["policy_profit_gain_over_default"],
            c.metrics["gain_over_default_lo"],
            c.metrics["gain_over_default_hi"],
            " (chosen)" if c is best else "",
        )
    return best


def calibration_figures(
    before: np.ndarray, after: np.ndarray, test: pd.DataFrame, strategies: tuple[str, ...]
) -> dict[str, Any]:
    """``plots/uplift_calibration.png``: per strategy, deciles of predicted uplift, before/after vs realised."""
    from jobs.models.calibration import calibration_table
    from jobs.models.plots import uplift_calibration_figure
    from jobs.models.xgb_uplift import ipw_weights

    arm = logged_arm(test, strategies)
    y = test["converted"].to_numpy(dtype="float64")
    w = ipw_weights(test["propensity"].to_numpy(dtype="float64"))
    c = strategies.index(CONTROL)
    tables = {s: calibration_table(before, after, y, arm, w, k, c) for k, s in enumerate(strategies) if k != c}
    return {"plots/uplift_calibration.png": uplift_calibration_figure(tables)}


def hurdle_candidates(
    settings: Settings, prep: Prepared, predictor: UpliftPredictor, orders: pd.DataFrame
) -> tuple[UpliftPredictor, Candidate, list[Candidate], dict[str, float], dict[str, Any]]:
    """Fit the order-value model and calibrator for ``predictor`` (as fitted: direct), judge the candidates.

    Returns the predictor to register (in the chosen mode, with both parts), the chosen candidate,
    every candidate, the metrics to log and the figures (the calibration plot shows the calibration
    with its differences between customers, the ``hurdle_heterogeneous`` candidate's).
    """

    strategies = predictor.strategies
    catalogue = catalogue_for(settings)
    predictor.order_value = fit_order_value(prep, orders)
    predictor.discounts = discounts_for(catalogue, strategies)
    raw = predictor.raw_conversion(prep.flat_test)
    direct_rev = predictor.direct_revenue(prep.flat_test)
    calibrator = fit_calibrator(raw, prep.test, strategies)
    effects, held_out_shift = fit_risk_effects(settings, prep, strategies)
    p_cv = effects.apply(cross_fitted(raw, prep.test, strategies), shift=held_out_shift)
    candidates = [Candidate("hurdle", p_cv, predictor.hurdle(p_cv, prep.flat_test))]
    p_cv = cross_fitted(raw, prep.test, strategies, heterogeneity=True)
    candidates.append(Candidate("hurdle_heterogeneous", p_cv, predictor.hurdle(p_cv, prep.flat_test)))
    candidates.append(Candidate("direct", raw, direct_rev))
    dr = dr_calibrator = None
    if predictor.kind == "xgboost":
        dr = fit_dr_learner(prep, predictor.conversion)
        dr_raw = dr.predict(predictor.inputs(prep.flat_test))
        dr_calibrator = fit_calibrator(dr_raw, prep.test, strategies).with_heterogeneity(True)
        p_cv = cross_fitted(dr_raw, prep.test, strategies, heterogeneity=True)
        candidates.append(Candidate("dr_learner", p_cv, predictor.hurdle(p_cv, prep.flat_test)))
    per_customer = budget_per_customer(settings, catalogue, prep.ds)
    best = judge(candidates, prep.test, strategies, catalogue, per_customer, settings.bootstrap_samples)
    predictor.calibrator = calibrator.with_heterogeneity(best.name == "hurdle_heterogeneous")
    predictor.effects = effects if best.name == "hurdle" else None
    if best.name == "dr_learner":
        predictor.conversion, predictor.calibrator = dr, dr_calibrator
    metrics: dict[str, float] = {
        **predictor.calibrator.summary(strategies),
        **effects.summary(),
        **predictor.order_value.summary(),
    }
    if math.isfinite(per_customer):  # with only min_roi a run's spending has no limit per customer
        metrics["budget_per_customer"] = per_customer
    for c in candidates:
        metrics.update({f"candidate_{k}__{c.name}": v for k, v in c.metrics.items() if "_share__" not in k})
    metrics.update(best.metrics)
    figures = calibration_figures(raw, candidates[1].p, prep.test, strategies)
    mode = "direct" if best.name == "direct" else "hurdle"
    return predictor.with_mode(mode), best, candidates, metrics, figures

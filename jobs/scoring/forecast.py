"""``campaign_forecast``: what tonight's assignments are expected to bring, per strategy and segment.

Per (strategy, segment) of the assignment: customers, expected conversions (Σ p_convert of the
assigned strategy), expected incremental conversions (Σ p_assigned − p_control), expected and
incremental revenue, cost, profit and ROI (incremental profit / cost). Intervals are a Poisson
bootstrap over customers (each customer's weight ~ Poisson(1) per replicate), vectorised in chunks,
so they describe the uncertainty of the sums over this population under the model's predictions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

METRICS = ("conversions", "incremental_conversions", "revenue", "incremental_revenue", "cost", "profit", "inc_profit")


def forecast(
    strategy: np.ndarray,
    segment: np.ndarray,
    p_chosen: np.ndarray,
    p_control: np.ndarray,
    rev_chosen: np.ndarray,
    rev_control: np.ndarray,
    cost: np.ndarray,
    profit: np.ndarray,
    inc_profit: np.ndarray,
    n_boot: int = 200,
    seed: int = 0,
    chunk: int = 100_000,
) -> pd.DataFrame:
    """One row per (strategy, segment) with sums, ROI and 95% bootstrap bounds."""
    import numpy as np
    import pandas as pd

    keys = pd.MultiIndex.from_arrays([np.asarray(strategy).astype(str), np.asarray(segment).astype(str)])
    codes, groups = pd.factorize(keys, sort=True)
    values = np.column_stack(
        [p_chosen, p_chosen - p_control, rev_chosen, rev_chosen - rev_control, cost, profit, inc_profit]
    ).astype("float64")
    g = len(groups)
    point = np.zeros((g, len(METRICS)))
    np.add.at(point, codes, values)
    boot = np.zeros((n_boot, g, len(METRICS)))
    rng = np.random.default_rng(seed)
    onehot_rows = np.arange(len(codes))
    for start in range(0, len(codes), chunk):
        stop = min(len(codes), start + chunk)
        w = rng.poisson(1.0, size=(stop - start, n_boot)).astype("float64")
        for j in range(g):
            rows = onehot_rows[start:stop][codes[start:stop] == j] - start
            if rows.size:
                boot[:, j, :] += w[rows].T @ values[start + rows]
    customers = np.bincount(codes, minlength=g)
    out = pd.DataFrame(
        {
            "strategy": [k[0] for k in groups],
            "segment": [k[1] for k in groups],
            "customers": customers,
            "expected_conversions": point[:, 0],
            "expected_incremental_conversions": point[:, 1],
            "expected_revenue": point[:, 2],
            "expected_incremental_revenue": point[:, 3],
            "expected_cost": point[:, 4],
            "expected_profit": point[:, 5],
        }
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        out["roi"] = np.where(point[:, 4] > 0, point[:, 6] / point[:, 4], np.nan)
        roi_boot = np.where(boot[:, :, 4] > 0, boot[:, :, 6] / boot[:, :, 4], np.nan)
    for name, series in (
        ("expected_incremental_conversions", boot[:, :, 1]),
        ("expected_incremental_revenue", boot[:, :, 3]),
        ("roi", roi_boot),
    ):
        finite = np.isfinite(series).any(axis=0)
        lo, hi = np.full(g, np.nan), np.full(g, np.nan)
        if finite.any():
            lo[finite], hi[finite] = np.nanquantile(series[:, finite], [0.025, 0.975], axis=0)
        out[f"{name}_lo"] = lo
        out[f"{name}_hi"] = hi
    return out

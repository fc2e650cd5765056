"""Realised incremental effects of the strategies, measured against the random holdout.

Design: the effect of strategy s compares the customers the model assigned s (``reason == 'model'``,
``strategy == s``) with the holdout customers the model *would* have assigned s (``reason == 'holdout'``,
``model_strategy == s``). The holdout is a random draw of the same population and receives the control,
so the difference of the two groups is an unbiased estimate of what s added over the control for the
customers the policy picks s for. Rows with ``reason == 'explore'`` are left out of both sides: their
strategy was drawn at random, not by the policy, so they measure neither the policy's choice nor the
control. Conversion uses a two-proportion test (unpooled Wald interval, pooled z p-value); revenue and
profit use Welch's t-test (Welch–Satterthwaite degrees of freedom). Predicted effects are summed over the
same treated customers, so predicted and realised can be compared row by row.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

log = logging.getLogger(__name__)

REASONS = frozenset({"model", "explore", "holdout"})
ALL_SEGMENTS = "all"
DEFAULT_BY = ("run_date", "strategy", "segment")
REQUIRED_COLUMNS = (
    "run_date",
    "customer_id",
    "strategy",
    "model_strategy",
    "reason",
    "segment",
    "converted",
    "revenue",
    "clicked",
    "cost",
    "p_convert_chosen",
    "p_convert_control",
    "expected_incremental_revenue",
    "expected_incremental_profit",
)
NAN = float("nan")


@dataclass(frozen=True)
class TestResult:
    """A difference (treated minus control), its confidence interval, two-sided p-value and standard error."""

    __test__ = False  # not a pytest test class

    estimate: float
    lo: float
    hi: float
    p_value: float
    se: float


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def _degenerate(estimate: float) -> TestResult:
    """Zero variance on both sides: certain when the two sides agree, undefined otherwise."""
    if estimate == 0:
        return TestResult(estimate, estimate, estimate, 1.0, 0.0)
    return TestResult(estimate, NAN, NAN, NAN, 0.0)


def two_proportion_test(x1: int, n1: int, x0: int, n0: int, level: float = 0.95) -> TestResult:
    """p1 - p0 with an unpooled Wald interval (``se`` is that unpooled error) and a pooled z-test p-value."""
    _check_level(level)
    if not (0 <= x1 <= n1 and 0 <= x0 <= n0):
        raise ValueError(f"successes must lie in [0, n]: x1={x1}, n1={n1}, x0={x0}, n0={n0}")
    if n1 == 0 or n0 == 0:
        return TestResult(NAN, NAN, NAN, NAN, NAN)
    p1, p0 = x1 / n1, x0 / n0
    diff = p1 - p0
    pooled = (x1 + x0) / (n1 + n0)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    if pooled_se == 0:
        return _degenerate(diff)
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    half = stats.norm.ppf((1 + level) / 2) * se
    p_value = float(2 * stats.norm.sf(abs(diff) / pooled_se))
    return TestResult(diff, diff - half, diff + half, p_value, se)


def _welch(mean1: float, var1: float, n1: int, mean0: float, var0: float, n0: int, level: float) -> TestResult:
    """Welch's test from the groups' means, sample variances (ddof=1) and sizes."""
    _check_level(level)
    diff = mean1 - mean0 if n1 >= 1 and n0 >= 1 else NAN
    if n1 < 2 or n0 < 2:
        return TestResult(diff, NAN, NAN, NAN, NAN)
    v1, v0 = var1 / n1, var0 / n0
    se = math.sqrt(v1 + v0)
    if se == 0:
        return _degenerate(diff)
    df = (v1 + v0) ** 2 / (v1**2 / (n1 - 1) + v0**2 / (n0 - 1))
    half = stats.t.ppf((1 + level) / 2, df) * se
    p_value = float(2 * stats.t.sf(abs(diff) / se, df))
    return TestResult(diff, diff - half, diff + half, p_value, se)


def welch_test(a: Iterable[float] | np.ndarray, b: Iterable[float] | np.ndarray, level: float = 0.95) -> TestResult:
    """mean(a) - mean(b) with a Welch–Satterthwaite t interval and p-value; missing values are dropped."""
    x = np.asarray(a, dtype="float64")
    y = np.asarray(b, dtype="float64")
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    var_x = float(x.var(ddof=1)) if x.size > 1 else NAN
    var_y = float(y.var(ddof=1)) if y.size > 1 else NAN
    mean_x = float(x.mean()) if x.size else NAN
    mean_y = float(y.mean()) if y.size else NAN
    return _welch(mean_x, var_x, x.size, mean_y, var_y, y.size, level)


def _validate(frame: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        raise ValueError(f"effects frame is missing columns: {', '.join(missing)}")
    reason = frame["reason"]
    bad = sorted({str(v) for v in reason[~reason.isin(REASONS)].unique()})
    if bad:
        raise ValueError(f"unknown reason values: {', '.join(bad)} (expected one of {', '.join(sorted(REASONS))})")


def _floats(series: pd.Series) -> pd.Series:
    """Any numeric, boolean or nullable column as float64 with NaN for missing values."""
    return pd.Series(series.to_numpy(dtype="float64", na_value=np.nan), index=series.index)


def _rows(rows: pd.DataFrame, strategy_column: str, by: tuple[str, ...]) -> pd.DataFrame:
    """Per-row outcomes keyed by ``by``, the strategy taken from ``strategy_column``."""
    data: dict[str, object] = {key: rows[key] for key in by}
    data["strategy"] = rows[strategy_column].astype(object)
    if "segment" in by:
        data["segment"] = rows["segment"].astype(object)
    data |= {
        "converted": _floats(rows["converted"]),
        "revenue": _floats(rows["revenue"]),
        "clicked": _floats(rows["clicked"]),
        "cost": _floats(rows["cost"]),
        "margin_rate": _floats(rows["margin_rate"]) if "margin_rate" in rows else 1.0,
        "predicted_conversions": _floats(rows["p_convert_chosen"]) - _floats(rows["p_convert_control"]),
        "p_chosen": _floats(rows["p_convert_chosen"]),
        "p_control": _floats(rows["p_convert_control"]),
        "predicted_revenue": _floats(rows["expected_incremental_revenue"]),
        "predicted_profit": _floats(rows["expected_incremental_profit"]),
    }
    out = pd.DataFrame(data, index=rows.index)
    if "segment" in by:
        out = pd.concat([out, out.assign(segment=ALL_SEGMENTS)], ignore_index=True)
    return out


OUTPUT_DTYPES: dict[str, str] = {
    "customers": "int64",
    "holdout_customers": "int64",
    **dict.fromkeys(
        [
            "conversion_rate",
            "holdout_conversion_rate",
            "click_through_rate",
            "revenue_per_customer",
            "holdout_revenue_per_customer",
            "incremental_conversion_rate",
            "incremental_conversion_rate_lo",
            "incremental_conversion_rate_hi",
            "incremental_conversion_rate_p_value",
            "incremental_revenue_per_customer",
            "incremental_revenue_per_customer_lo",
            "incremental_revenue_per_customer_hi",
            "incremental_revenue_per_customer_p_value",
            "incremental_conversions",
            "incremental_conversions_lo",
            "incremental_conversions_hi",
            "incremental_revenue",
            "incremental_revenue_lo",
            "incremental_revenue_hi",
            "cost",
            "incremental_profit",
            "roi",
            "predicted_incremental_conversions",
            "predicted_incremental_revenue",
            "predicted_incremental_profit",
            "predicted_incremental_conversions_lo",
            "predicted_incremental_conversions_hi",
        ],
        "float64",
    ),
    "prediction_inside_interval": "boolean",
    "realised_inside_predicted_interval": "boolean",
}


def strategy_effects(
    frame: pd.DataFrame,
    control: str = "no_action",
    level: float = 0.95,
    by: tuple[str, ...] = DEFAULT_BY,
    model_error_var: float = 0.0,
) -> pd.DataFrame:
    """Realised against predicted incremental effect per ``by`` group of model-assigned, non-control strategies.

    With ``segment`` in ``by`` each group is also reported pooled over segments as segment ``'all'``.
    Explore rows are excluded (random assignment, not the policy's); missing outcomes are skipped.

    Two checks compare them. ``realised_inside_predicted_interval``: the realised incremental
    conversions lie inside the *predicted* interval, the predicted sum ± z · n · sqrt(v), where v is the
    variance the realised rate difference would have if the model were right (Bernoulli variance of the
    predicted treated and holdout rates over their counts) plus ``model_error_var``, the model's
    out-of-sample error variance of a group-average uplift (``uplift_error_var`` of its training run).
    ``prediction_inside_interval``: the prediction lies inside the realised confidence interval.
    """
    by = tuple(by)
    if "strategy" not in by:
        raise ValueError(f"by must contain 'strategy', got {by}")
    _validate(frame, (*REQUIRED_COLUMNS, *by))
    _check_level(level)
    if not model_error_var >= 0:  # also rejects NaN
        raise ValueError(f"model_error_var must be a variance (>= 0), got {model_error_var}")
    if "segment" in by and (frame["segment"] == ALL_SEGMENTS).any():
        raise ValueError(f"segment value {ALL_SEGMENTS!r} is reserved for the pooled rows")
    keys = list(by)
    reason = frame["reason"]
    treated = _rows(frame[(reason == "model") & (frame["strategy"] != control)], "strategy", by)
    holdout = _rows(frame[reason == "holdout"], "model_strategy", by)
    log.info(
        "strategy effects: %d treated rows, %d holdout rows, %d explore rows excluded",
        int(((reason == "model") & (frame["strategy"] != control)).sum()),
        int((reason == "holdout").sum()),
        int((reason == "explore").sum()),
    )

    t_groups = treated.groupby(keys, dropna=False, sort=True)
    t = t_groups.agg(
        customers=("converted", "size"),
        conversions=("converted", "sum"),
        converted_n=("converted", "count"),
        conversion_rate=("converted", "mean"),
        click_through_rate=("clicked", "mean"),
        revenue_per_customer=("revenue", "mean"),
        revenue_var=("revenue", "var"),
        revenue_n=("revenue", "count"),
        cost=("cost", "sum"),
        margin_rate=("margin_rate", "mean"),
        predicted_rate=("p_chosen", "mean"),
    )
    predicted = t_groups[["predicted_conversions", "predicted_revenue", "predicted_profit"]].sum(min_count=1)
    h = holdout.groupby(keys, dropna=False, sort=True).agg(
        holdout_customers=("converted", "size"),
        holdout_conversions=("converted", "sum"),
        holdout_converted_n=("converted", "count"),
        holdout_conversion_rate=("converted", "mean"),
        holdout_revenue_per_customer=("revenue", "mean"),
        holdout_revenue_var=("revenue", "var"),
        holdout_revenue_n=("revenue", "count"),
        holdout_predicted_rate=("p_control", "mean"),
    )
    g = t.join(predicted).reset_index().merge(h.reset_index(), on=keys, how="left")
    for count in ("holdout_customers", "holdout_conversions", "holdout_converted_n", "holdout_revenue_n"):
        g[count] = g[count].fillna(0)

    conversion = [
        two_proportion_test(int(x1), int(n1), int(x0), int(n0), level)
        for x1, n1, x0, n0 in zip(
            g["conversions"], g["converted_n"], g["holdout_conversions"], g["holdout_converted_n"], strict=True
        )
    ]
    revenue = [
        _welch(m1, v1, int(n1), m0, v0, int(n0), level)
        for m1, v1, n1, m0, v0, n0 in zip(
            g["revenue_per_customer"],
            g["revenue_var"],
            g["revenue_n"],
            g["holdout_revenue_per_customer"],
            g["holdout_revenue_var"],
            g["holdout_revenue_n"],
            strict=True,
        )
    ]
    customers = g["customers"].astype("float64")
    for name, results in (("incremental_conversion_rate", conversion), ("incremental_revenue_per_customer", revenue)):
        g[name] = [r.estimate for r in results]
        g[f"{name}_lo"] = [r.lo for r in results]
        g[f"{name}_hi"] = [r.hi for r in results]
        g[f"{name}_p_value"] = [r.p_value for r in results]
    for total, rate in (
        ("incremental_conversions", "incremental_conversion_rate"),
        ("incremental_revenue", "incremental_revenue_per_customer"),
    ):
        for suffix in ("", "_lo", "_hi"):
            g[f"{total}{suffix}"] = g[f"{rate}{suffix}"] * customers
    # profit counts the margin on revenue when the frame says it (per strategy, so constant in a group)
    g["incremental_profit"] = g["incremental_revenue"] * g["margin_rate"] - g["cost"]
    g["roi"] = g["incremental_profit"] / g["cost"].where(g["cost"] != 0)
    g = g.rename(
        columns={
            "predicted_conversions": "predicted_incremental_conversions",
            "predicted_revenue": "predicted_incremental_revenue",
            "predicted_profit": "predicted_incremental_profit",
        }
    )
    pred = g["predicted_incremental_conversions"]
    lo, hi = g["incremental_conversions_lo"], g["incremental_conversions_hi"]
    inside = pd.array((pred >= lo) & (pred <= hi), dtype="boolean")
    inside[(pred.isna() | lo.isna() | hi.isna()).to_numpy()] = pd.NA
    g["prediction_inside_interval"] = inside

    m1, m0 = g["predicted_rate"], g["holdout_predicted_rate"]
    n1, n0 = g["converted_n"].astype("float64"), g["holdout_converted_n"].astype("float64")
    var = m1 * (1 - m1) / n1.where(n1 > 0) + m0 * (1 - m0) / n0.where(n0 > 0) + model_error_var
    half = stats.norm.ppf(0.5 + level / 2) * customers * np.sqrt(var)
    g["predicted_incremental_conversions_lo"] = pred - half
    g["predicted_incremental_conversions_hi"] = pred + half
    realised = g["incremental_conversions"]
    covered = pd.array((realised >= pred - half) & (realised <= pred + half), dtype="boolean")
    covered[(realised.isna() | half.isna() | pred.isna()).to_numpy()] = pd.NA
    g["realised_inside_predicted_interval"] = covered

    out = g[[*keys, *OUTPUT_DTYPES]].astype(OUTPUT_DTYPES)
    return out.sort_values(keys, kind="mergesort", na_position="last").reset_index(drop=True)


def policy_value(frame: pd.DataFrame, control: str = "no_action", level: float = 0.95) -> dict[str, float | int]:
    """The policy's realised incremental profit over the run, against the holdout, with a Welch interval.

    (mean profit of model-assigned rows - mean profit of holdout rows) x non-holdout customers, where a row's
    profit is ``margin_rate * revenue - cost`` (``margin_rate`` 1 when the frame has no such column). Explore
    rows are left out of both means but counted among the customers.
    """
    _validate(frame, ("strategy", "reason", "revenue", "cost"))
    reason = frame["reason"]
    off_control = int(((reason == "holdout") & (frame["strategy"] != control)).sum())
    if off_control:
        log.warning("policy value: %d holdout rows did not receive the control %r", off_control, control)
    margin = _floats(frame["margin_rate"]) if "margin_rate" in frame else 1.0
    profit = margin * _floats(frame["revenue"]) - _floats(frame["cost"])
    result = welch_test(profit[reason == "model"], profit[reason == "holdout"], level)
    customers = int((reason != "holdout").sum())
    value = {
        "value": result.estimate * customers,
        "lo": result.lo * customers,
        "hi": result.hi * customers,
        "p_value": result.p_value,
        "customers": customers,
    }
    log.info("policy value: %.2f [%.2f, %.2f] over %d customers", value["value"], value["lo"], value["hi"], customers)
    return value

"""Rolling-origin backtest of ``forecast_sales`` against the seasonal-naive baseline.

For each origin, the model and the baseline (the same weekday of the last week before the origin)
forecast ``horizon`` days from the history before the origin only; both are scored on the actual days:

- MASE: mean absolute error over the horizon divided by the series' in-sample mean absolute lag-7
  difference (the seasonal-naive one-step error on its history); mean over series (category x origin),
  series whose history has no lag-7 variation left out;
- WAPE: sum of absolute errors over sum of actuals, over every category-day (defined with zero days);
- weekly MAPE: mean absolute percentage error of the 7-day totals per category (weeks with a zero
  total left out), the MAPE the zero days of a daily series would make undefined;
- coverage: the share of actual days inside the model's interval.

Category ``all`` (the shop's total) is scored apart from the categories.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from jobs.forecasting.model import ALL, METRICS, SEASON, fill_daily, forecast_sales, seasonal_naive

if TYPE_CHECKING:
    import pandas as pd


def _scores(frame: pd.DataFrame, column: str) -> dict[str, float]:
    import numpy as np

    err = (frame[column] - frame["actual"]).abs()
    by_series = frame.assign(err=err).groupby(["origin", "category"])
    mase = (by_series["err"].mean() / by_series["scale"].first()).replace([np.inf], np.nan).dropna()
    weeks = frame.assign(week=(frame["horizon"] - 1) // SEASON)
    weekly = weeks.groupby(["origin", "category", "week"])[[column, "actual"]].sum()
    weekly = weekly[weekly["actual"] > 0]
    return {
        "mase": float(mase.mean()),
        "wape": float(err.sum() / frame["actual"].abs().sum()),
        "weekly_mape": float(((weekly[column] - weekly["actual"]).abs() / weekly["actual"]).mean()),
    }


def backtest(
    daily: pd.DataFrame, origins: list[date], horizon: int = 28, level: float = 0.8
) -> tuple[dict[str, Any], pd.DataFrame]:
    """(figures per metric and scope, the scored rows) of model and baseline over ``origins``."""
    import numpy as np
    import pandas as pd

    days = pd.to_datetime(daily["ds"]).dt.date
    first = min(days)
    categories = sorted(set(daily["category"]))
    rows = []
    for origin in origins:
        history = daily[days < origin]
        grid = fill_daily(history, first, origin - timedelta(days=1), categories)
        actual = fill_daily(daily, origin, origin + timedelta(days=horizon - 1), categories)
        fc = forecast_sales(history, horizon, origin=origin, level=level, categories=categories)
        for category in categories:
            hist = grid[grid["category"] == category].sort_values("ds")
            act = actual[actual["category"] == category].sort_values("ds")
            for metric in METRICS:
                y = hist[metric].to_numpy()
                y = y[np.flatnonzero(y)[0] :] if y.any() else y
                diffs = np.abs(y[SEASON:] - y[:-SEASON])
                naive = seasonal_naive(y, horizon, level)[0] if len(y) >= SEASON else np.zeros(horizon)
                model = fc[(fc["category"] == category) & (fc["metric"] == metric)].sort_values("horizon")
                rows.append(
                    pd.DataFrame(
                        {
                            "origin": origin,
                            "category": category,
                            "metric": metric,
                            "horizon": np.arange(1, horizon + 1),
                            "actual": act[metric].to_numpy(),
                            "model": model["forecast"].to_numpy(),
                            "lower": model["lower"].to_numpy(),
                            "upper": model["upper"].to_numpy(),
                            "model_name": model["model_name"].to_numpy(),
                            "baseline": np.clip(naive, 0.0, None),
                            "scale": diffs.mean() if len(diffs) else np.nan,
                        }
                    )
                )
    scored = pd.concat(rows, ignore_index=True)
    figures: dict[str, Any] = {}
    for metric in METRICS:
        for scope, part in (
            ("categories", scored[(scored["metric"] == metric) & (scored["category"] != ALL)]),
            ("all", scored[(scored["metric"] == metric) & (scored["category"] == ALL)]),
        ):
            if part.empty:
                continue
            model, base = _scores(part, "model"), _scores(part, "baseline")
            inside = (part["actual"] >= part["lower"]) & (part["actual"] <= part["upper"])
            figures[f"{metric}/{scope}"] = {
                "model": {k: round(v, 4) for k, v in model.items()},
                "baseline": {k: round(v, 4) for k, v in base.items()},
                "mase_improvement": round(1 - model["mase"] / base["mase"], 4),
                "wape_improvement": round(1 - model["wape"] / base["wape"], 4),
                "coverage": round(float(inside.mean()), 4),
                "series": int(part.groupby(["origin", "category"]).ngroups),
                "models": {
                    str(k): int(v) for k, v in part.groupby("model_name")["origin"].count().div(horizon).items()
                },
            }
    return figures, scored

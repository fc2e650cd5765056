"""Daily sales forecasts per category: ETS with a weekly season, and the fallbacks for short series.

``forecast_sales(daily, horizon=28)`` takes a daily history (``ds``, ``category``, ``orders``,
``revenue``) and returns one row per category, metric and target day with the point forecast and
the bounds of a central prediction interval (``level``, default 80%).

Per series (one category, one metric), after dropping the days before its first sale:

- no sale at all: ``zero`` (point and bounds 0);
- fewer than ``season`` days: ``mean`` (the history's mean, interval ``± z·s·sqrt(1 + 1/n)``);
- fewer than ``MIN_ETS_SEASONS`` seasons: ``seasonal_naive`` (the same weekday of the last week,
  ``σ_h = σ·sqrt(⌊(h−1)/7⌋ + 1)`` from the history's lag-7 differences);
- else ETS with additive errors and an additive weekly season (statsmodels ``ETSModel``, maximum
  likelihood): ``ets_ANA`` (no trend) and ``ets_AAdA`` (damped trend), the one of lower AICc;
  analytical prediction intervals. A fit that fails or gives non-finite values falls back to
  ``seasonal_naive``.

Forecasts and bounds are clipped at 0 (orders and revenue cannot be negative).
"""

from __future__ import annotations

import logging
import math
import warnings
from datetime import date, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

METRICS = ("orders", "revenue")
SEASON = 7
#: ETS needs this many full seasons of history (its initial states are 2 + season values)
MIN_ETS_SEASONS = 4
#: the category row that forecasts the shop's totals (all categories together)
ALL = "all"
FORECAST_COLUMNS = [
    "target_date",
    "horizon",
    "category",
    "metric",
    "forecast",
    "lower",
    "upper",
    "model_name",
    "history_days",
]


def fill_daily(daily: pd.DataFrame, start: date, end: date, categories: list[str] | None = None) -> pd.DataFrame:
    """Every (day in ``start..end``, category) with its ``orders`` and ``revenue``; missing days are 0."""
    import pandas as pd

    frame = daily.copy()
    frame["ds"] = pd.to_datetime(frame["ds"]).dt.date
    frame = frame[(frame["ds"] >= start) & (frame["ds"] <= end)]
    cats = sorted(set(frame["category"]) | set(categories or []))
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    grid = pd.MultiIndex.from_product([days, cats], names=["ds", "category"])
    summed = frame.groupby(["ds", "category"])[list(METRICS)].sum()
    out = summed.reindex(grid, fill_value=0).reset_index()
    return out.astype({"orders": "float64", "revenue": "float64"})


def z_value(level: float) -> float:
    """The standard normal quantile of a central interval of ``level`` (1.2816 for 0.8)."""
    from scipy.stats import norm

    if not 0 < level < 1:
        raise ValueError(f"interval level must lie in (0, 1), got {level}")
    return float(norm.ppf(0.5 + level / 2))


def seasonal_naive(y: np.ndarray, horizon: int, level: float = 0.8, season: int = SEASON) -> tuple[np.ndarray, ...]:
    """(point, lower, upper): the value of the same weekday in the last ``season`` days of ``y``."""
    import numpy as np

    y = np.asarray(y, dtype=float)
    h = np.arange(1, horizon + 1)
    point = y[len(y) - season + (h - 1) % season]
    diffs = y[season:] - y[:-season]
    sigma = float(np.sqrt(np.mean(diffs**2))) if len(diffs) else 0.0
    half = z_value(level) * sigma * np.sqrt((h - 1) // season + 1)
    return point, point - half, point + half


def _mean_model(y: np.ndarray, horizon: int, level: float) -> tuple[np.ndarray, ...]:
    import numpy as np

    n = len(y)
    sd = float(np.std(y, ddof=1)) if n > 1 else 0.0
    point = np.full(horizon, float(np.mean(y)))
    half = z_value(level) * sd * math.sqrt(1 + 1 / n)
    return point, point - half, point + half


def _ets(y: np.ndarray, first: date, horizon: int, level: float, season: int) -> tuple[tuple[np.ndarray, ...], str]:
    """The lower-AICc ETS of (A,N,A) and (A,Ad,A) and its analytical interval; raises if neither fits."""
    import numpy as np
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    series = pd.Series(y, index=pd.date_range(first, periods=len(y), freq="D"))
    best = None
    for name, trend in (("ets_ANA", None), ("ets_AAdA", "add")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence and start-value warnings: judged by AICc below
                model = ETSModel(
                    series,
                    error="add",
                    trend=trend,
                    damped_trend=trend is not None,
                    seasonal="add",
                    seasonal_periods=season,
                )
                fit = model.fit(disp=False)
        except (ValueError, np.linalg.LinAlgError) as exc:
            log.debug("%s failed: %s", name, exc)
            continue
        if np.isfinite(fit.aicc) and (best is None or fit.aicc < best[1].aicc):
            best = (name, fit)
    if best is None:
        raise ValueError("no ETS model could be fitted")
    name, fit = best
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = fit.get_prediction(start=len(y), end=len(y) + horizon - 1).summary_frame(alpha=1 - level)
    out = tuple(frame[c].to_numpy(dtype=float) for c in ("mean", "pi_lower", "pi_upper"))
    if not all(np.isfinite(a).all() for a in out):
        raise ValueError(f"{name} gave non-finite forecasts")
    return out, name


def forecast_series(
    y: np.ndarray, first: date, horizon: int = 28, level: float = 0.8, season: int = SEASON
) -> tuple[tuple[np.ndarray, ...], str, int]:
    """((point, lower, upper), model name, history days used) for one daily series starting on ``first``."""
    import numpy as np

    y = np.asarray(y, dtype=float)
    sold = np.flatnonzero(y != 0)
    if len(sold) == 0:
        zeros = np.zeros(horizon)
        return (zeros, zeros, zeros), "zero", 0
    y, first = y[sold[0] :], first + timedelta(days=int(sold[0]))
    if len(y) < season:
        result, name = _mean_model(y, horizon, level), "mean"
    elif len(y) < MIN_ETS_SEASONS * season:
        result, name = seasonal_naive(y, horizon, level, season), "seasonal_naive"
    else:
        try:
            result, name = _ets(y, first, horizon, level, season)
        except ValueError as exc:
            log.warning("ETS failed on a series of %d days (%s): seasonal naive instead", len(y), exc)
            result, name = seasonal_naive(y, horizon, level, season), "seasonal_naive"
    point, lower, upper = (np.clip(a, 0.0, None) for a in result)
    return (point, lower, upper), name, len(y)


def forecast_sales(
    daily: pd.DataFrame,
    horizon: int = 28,
    *,
    origin: date | None = None,
    level: float = 0.8,
    categories: list[str] | None = None,
    with_total: bool = False,
) -> pd.DataFrame:
    """Forecast ``orders`` and ``revenue`` per category for ``origin .. origin + horizon - 1``.

    ``daily``: one row per day and category (``ds``, ``category``, ``orders``, ``revenue``), days
    before ``origin`` (default: the day after the last one); missing days count as 0. ``categories``
    adds categories without any row (forecast 0). ``with_total`` adds category ``all`` (unless present),
    the sum of the categories' history, forecast as its own series. Returns :data:`FORECAST_COLUMNS`.
    """
    import pandas as pd

    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    z_value(level)
    days = pd.to_datetime(daily["ds"]).dt.date if len(daily) else pd.Series([], dtype=object)
    if origin is None:
        if not len(days):
            raise ValueError("an empty history needs an explicit origin")
        origin = max(days) + timedelta(days=1)
    history = daily[days < origin] if len(daily) else daily
    start = min(days[days < origin]) if len(history) else origin - timedelta(days=1)
    grid = fill_daily(history, start, origin - timedelta(days=1), categories)
    if with_total and ALL not in set(grid["category"]):
        total = grid.groupby("ds", as_index=False)[list(METRICS)].sum().assign(category=ALL)
        grid = pd.concat([grid, total], ignore_index=True)
    targets = [origin + timedelta(days=h) for h in range(horizon)]
    parts = []
    for category, group in grid.groupby("category", sort=True):
        rows = group.sort_values("ds")
        for metric in METRICS:
            (point, lower, upper), name, used = forecast_series(rows[metric].to_numpy(), start, horizon, level)
            parts.append(
                pd.DataFrame(
                    {
                        "target_date": targets,
                        "horizon": range(1, horizon + 1),
                        "category": category,
                        "metric": metric,
                        "forecast": point,
                        "lower": lower,
                        "upper": upper,
                        "model_name": name,
                        "history_days": used,
                    }
                )
            )
    if not parts:
        return pd.DataFrame(columns=FORECAST_COLUMNS)
    return pd.concat(parts, ignore_index=True)[FORECAST_COLUMNS]

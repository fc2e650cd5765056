"""Sales forecast backtest: ETS per category against the seasonal-naive baseline, rolling origins, 28 days ahead.

One shop is simulated (``msp simulate``, clean: ``--dirt-scale 0``, so the landing zone holds exactly the
rows cleaning would keep) for 30 weeks. Its orders and products are read from the landing zone into the
daily history per category with the same code the nightly job runs on silver
(``jobs.forecasting.sales.order_lines`` and ``daily_sales``); then ``jobs.forecasting.backtest.backtest``
forecasts 28 days from each origin (every 14 days from day 126 on) with the model and with the seasonal-naive
baseline, both from the history before the origin only, and scores both on the same days.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger("bench.forecast")

FULL = {"customers": 20_000, "products": 400, "days": 210, "first_origin": 126, "every": 14}
QUICK = {"customers": 1_500, "products": 100, "days": 63, "first_origin": 35, "every": 14}
HORIZON = 28
GOAL_IMPROVEMENT = 0.20  # issue 22: at least 20% better than the seasonal naive (MASE)


def landing_history(home: Path, days: int) -> Any:
    """The daily history per category (``all`` included) of the simulated shop's landing zone."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.json as pj

    from jobs.forecasting.sales import daily_sales, order_lines
    from jobs.simulator.config import SimConfig

    landing = home / "var/lake/landing"
    tables = [pj.read_json(f) for f in sorted((landing / "orders").glob("ds=*/*.jsonl"))]
    orders, lines = order_lines(pa.concat_tables(tables, promote_options="permissive"))
    products = pd.concat(pd.read_json(f, lines=True) for f in sorted((landing / "products").glob("ds=*/*.jsonl")))
    products = products.sort_values("updated_at", kind="stable").drop_duplicates("product_id", keep="last")
    start = SimConfig().start
    return daily_sales(orders, lines, products, start, start + timedelta(days=days - 1)), start, len(orders)


def bench_forecast(work: Path, quick: bool = False) -> dict[str, Any]:
    from jobs.forecasting.backtest import backtest
    from tests.bench.scaling import run_tree

    size = QUICK if quick else FULL
    home = work / "forecast"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MSP_HOME": str(home), "MSP_LOG_LEVEL": "WARNING"}
    msp = str(Path(sys.executable).with_name("msp"))
    args = ["--customers", size["customers"], "--products", size["products"], "--days", size["days"]]
    sim = run_tree([msp, "simulate", *map(str, args), "--dirt-scale", "0"], env)
    t0 = time.perf_counter()
    daily, start, orders = landing_history(home, size["days"])
    extract_s = time.perf_counter() - t0
    origins = [
        start + timedelta(days=d) for d in range(size["first_origin"], size["days"] - HORIZON + 1, size["every"])
    ]
    t0 = time.perf_counter()
    figures, _ = backtest(daily, origins, HORIZON)
    backtest_s = time.perf_counter() - t0
    categories = sorted(set(daily["category"]) - {"all"})
    goal = {k: figures[f"{k}/categories"]["mase_improvement"] >= GOAL_IMPROVEMENT for k in ("orders", "revenue")}
    return {
        **{k: size[k] for k in ("customers", "products", "days")},
        "orders": orders,
        "categories": categories,
        "mean_daily_orders_per_category": round(
            float(daily[daily["category"] != "all"].groupby("category")["orders"].mean().mean()), 1
        ),
        "origins": [o.isoformat() for o in origins],
        "horizon": HORIZON,
        "level": 0.8,
        "figures": figures,
        "seconds": {
            "simulate": round(sim.seconds, 1),
            "extract": round(extract_s, 1),
            "backtest": round(backtest_s, 1),
            "per_origin": round(backtest_s / len(origins), 1),
        },
        "goal_improvement": GOAL_IMPROVEMENT,
        "goal_met": all(goal.values()),
    }


def forecast_markdown(fc: dict[str, Any] | None, title: str) -> list[str]:
    """The forecast section: model against seasonal naive per metric and scope, the goal's verdict."""
    if not fc:
        return []
    origins = fc["origins"]
    lines = [
        title,
        "",
        "Command: `python -m tests.bench.run --only forecast` (`tests/bench/forecast.py`). Data: one simulated shop "
        f"(`msp simulate --customers {fc['customers']:,} --products {fc['products']} --days {fc['days']} "
        f"--dirt-scale 0`): {fc['orders']:,} orders, {len(fc['categories'])} categories, about "
        f"{fc['mean_daily_orders_per_category']} orders a day per category. The daily history per category comes "
        "from the landing zone through the nightly job's own `order_lines` / `daily_sales` (clean data, so "
        f"landing = silver). Rolling origins: {len(origins)} ({origins[0]} .. {origins[-1]}, every 14 days), "
        f"{fc['horizon']} days ahead each, history = every day before the origin. Model: `forecast_sales` (ETS "
        "with an additive weekly season, no trend or damped trend by AICc). Baseline, in the same run: seasonal "
        "naive (the same weekday of the last week before the origin).",
        "",
        "MASE: mean absolute error over the 28 days / the series' in-sample mean absolute lag-7 difference, averaged "
        "over series (category x origin). WAPE: sum |error| / sum actual over every category-day (zero days "
        "included). Weekly MAPE: MAPE of 7-day totals per category (weeks with a zero total left out). Coverage: "
        f"share of actual days inside the model's {fc['level']:.0%} interval.",
        "",
        "| metric | scope | MASE model | MASE naive | MASE better by | WAPE model | WAPE naive "
        "| weekly MAPE model | weekly MAPE naive | 80% coverage |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, f in fc["figures"].items():
        metric, scope = key.split("/")
        m, b = f["model"], f["baseline"]
        lines.append(
            f"| {metric} | {'each category' if scope == 'categories' else 'shop total'} | {m['mase']:.3f} "
            f"| {b['mase']:.3f} | {f['mase_improvement']:.1%} | {m['wape']:.3f} | {b['wape']:.3f} "
            f"| {m['weekly_mape']:.3f} | {b['weekly_mape']:.3f} | {f['coverage']:.3f} |"
        )
    s = fc["seconds"]
    better = ", ".join(
        f"{k.split('/')[0]} {fc['figures'][k]['mase_improvement']:.1%}" for k in fc["figures"] if "/cat" in k
    )
    lines += [
        "",
        f"Time: simulate {s['simulate']} s, extract {s['extract']} s, backtest {s['backtest']} s "
        f"({s['per_origin']} s per origin: every category and the total, both metrics, two ETS fits each).",
        "",
        f"Goal (issue 22): per category, MASE at least {fc['goal_improvement']:.0%} better than the seasonal naive "
        f"({better}): **{'met' if fc['goal_met'] else 'NOT met'}**.",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the forecast backtest on its own")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work", type=Path, default=Path("var/bench/forecast-work"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    print(json.dumps(bench_forecast(args.work, quick=args.quick), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

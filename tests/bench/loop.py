"""The closed loop over several nights: does decision quality hold, and rise, as the platform's own logs accumulate?

One shop is simulated with enough history for every night (60 days, then one attribution window per
night), so each night's customers still have organic activity. The platform starts on day 60 with
the history before it: ingest, features, training, scoring. Then, night after night, one attribution
window apart (each night's outcomes are known by the next):

1. the simulator answers the previous night's assignments (``respond``: outcomes drawn from its truth);
2. the days since are ingested and cleaned (every table: the organic activity and the answers);
3. the models are retrained (``msp train``: dataset, the three families, promote), now also on the
   platform's own logged nights, with the propensities their assignments recorded;
4. the night is scored (``msp score``) and, once the simulator has answered it, valued against the
   truth (``tests/support/policy_truth.py``).

Every stage runs as a child process of the ``msp`` command line, as in the scaling benchmark.
The simulator's own designed campaigns go on every 14 days inside the longer history; they count as
designed data beside the platform's nights. Since the history is generated in advance, the customers
the platform targets keep their organic sessions in its windows (``respond`` warns about it): their
campaign outcome is drawn from the truth, their organic orders add a little noise to the order data.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import shutil
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger("bench.loop")

CUSTOMERS, NIGHTS, PRODUCTS, HISTORY_DAYS = 20_000, 5, 400, 60
QUICK = {"customers": 1_500, "nights": 2, "products": 100, "history": 30}


def served(home: Path) -> dict[str, Any]:
    """What serves after tonight's promotion: the served version, the family version it copies, every champion."""
    from jobs.settings import Settings
    from jobs.training.registry import aliases
    from jobs.training.train import SERVED, configure_mlflow, model_name

    settings = Settings(home=home)
    configure_mlflow(settings)
    import mlflow

    version = mlflow.MlflowClient().get_model_version_by_alias(model_name(settings, SERVED), "champion")
    champions = {name: alias["champion"] for name, alias in aliases(settings).items()}
    return {
        "version": str(version.version),
        "source": (version.tags or {}).get("msp.source", ""),
        "champions": champions,
    }


def training_rows(home: Path, ds: str) -> dict[str, int]:
    """Rows of tonight's training set: designed campaigns and the platform's own nights (RUN-...)."""
    import pandas as pd

    from jobs.pipeline.lake import partition_path
    from jobs.settings import Settings

    frame = pd.read_parquet(partition_path(Settings(home=home), "gold", "training_set", ds), columns=["campaign_id"])
    own = frame["campaign_id"].str.startswith("RUN-")
    return {"designed": int((~own).sum()), "platform": int(own.sum())}


def bench_loop(
    work: Path, quick: bool = False, keep: bool = False, sizes: dict[str, int] | None = None
) -> dict[str, Any]:
    from jobs.simulator.config import SimConfig
    from tests.bench.scaling import decision_quality, pipeline_commands, run_tree

    full = {"customers": CUSTOMERS, "nights": NIGHTS, "products": PRODUCTS, "history": HISTORY_DAYS}
    sizes = {**(QUICK if quick else full), **(sizes or {})}
    n, nights, products, history = sizes["customers"], sizes["nights"], sizes["products"], sizes["history"]
    probe = SimConfig()
    window = probe.attribution_days
    days = history + window * nights + 1  # the last night's window closes inside the history
    cfg = SimConfig(customers=n, days=days, products=products)
    home = work / "loop"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MSP_HOME": str(home), "MSP_LOG_LEVEL": "WARNING"}
    msp = str(Path(sys.executable).with_name("msp"))
    started = time.perf_counter()
    run_tree([msp, "simulate", "--customers", str(n), "--days", str(days), "--products", str(products)], env)
    first = cfg.start + timedelta(days=history - 1)
    dates = [(first + timedelta(days=window * k)).isoformat() for k in range(nights)]
    results: dict[str, Any] = {
        "customers": n,
        "products": products,
        "history_days": history,
        "attribution_days": window,
        "simulated_days": days,
        "nights": [],
    }
    since = cfg.start.isoformat()
    for k, ds in enumerate(dates):
        t0 = time.perf_counter()
        if k > 0:
            from jobs.loop import answer
            from jobs.settings import Settings

            answer(Settings(home=home), dates[k - 1])  # the simulator answers last night (its window has closed)
        seconds: dict[str, float] = {}
        # up to the night itself: its partition holds last night's outcome rows (the window closed at 00:00);
        # the features of a date only ever read data before it
        for stage, commands in pipeline_commands(ds, since).items():
            seconds[stage] = 0.0
            for command in commands:
                seconds[stage] += run_tree(command, env).seconds
        since = (date.fromisoformat(ds) + timedelta(days=1)).isoformat()
        night = {"ds": ds, "seconds": {k: round(v, 1) for k, v in seconds.items()}, "served": served(home)}
        night["training_rows"] = training_rows(home, ds)
        results["nights"].append(night)
        log.info("loop: night %s scored in %.0f s (%s)", ds, time.perf_counter() - t0, night["training_rows"])
    for k, night in enumerate(results["nights"]):  # answered and valued: the truth of a night exists once answered
        if k == len(dates) - 1:
            from jobs.loop import answer
            from jobs.settings import Settings

            answer(Settings(home=home), night["ds"])
        night["quality"] = decision_quality(home, night["ds"], full=True, answered=True)
        log.info("loop: night %s: policy / oracle %.3f", night["ds"], night["quality"]["ratio_to_oracle"])
    ratios = [night["quality"]["ratio_to_oracle"] for night in results["nights"]]
    results["ratio_to_oracle"] = ratios
    results["never_falls"] = all(b >= a - 0.02 for a, b in itertools.pairwise(ratios))
    results["rises"] = ratios[-1] > ratios[0]
    results["seconds"] = round(time.perf_counter() - started, 1)
    if not keep:
        shutil.rmtree(home, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the closed-loop benchmark on its own")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work", type=Path, default=Path("var/bench/loop-work"))
    parser.add_argument("--keep", action="store_true", help="keep the loop's home (lake, registry) for a look after")
    parser.add_argument("--customers", type=int, help="the shop's size (default: the benchmark's)")
    parser.add_argument("--nights", type=int, help="nights of the loop (default: the benchmark's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    sizes = {k: v for k, v in (("customers", args.customers), ("nights", args.nights)) if v}
    print(json.dumps(bench_loop(args.work, quick=args.quick, keep=args.keep, sizes=sizes), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

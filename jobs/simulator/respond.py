"""Closing the loop offline: outcomes for the platform's own assignments, drawn from the same truth."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.simulator.activity import Sessions, ShelfState, expand
from jobs.simulator.config import CONTROL, STRATEGIES, SimConfig
from jobs.simulator.engine import (
    LandingWriter,
    day_ms,
    draw_campaign,
    event_rows,
    load_manifest,
    order_rows,
    outcome_rows,
    outcomes_on,
    truth_frame,
    write_parquet,
)
from jobs.simulator.files import write_atomic
from jobs.simulator.rng import rng_for
from jobs.simulator.world import make_catalogue, make_population

log = logging.getLogger(__name__)
REQUIRED = ("customer_id", "strategy", "propensity")


class AssignmentError(ValueError):
    """An assignments file that cannot be answered; the message names file, row and rule."""


@dataclass
class RespondResult:
    run_date: date
    assignments: int
    converted: int
    revenue: float
    files: list[str]


def first_row(path: Path) -> int:
    """Number reported for the first data row: its physical line in a CSV, 1 in Parquet."""
    return 1 if path.suffix == ".parquet" else 2


def _as_bool(value: object) -> object:
    text = str(value).strip().lower()
    return {"true": True, "1": True, "false": False, "0": False}.get(text, value)


def read_assignments(path: Path) -> pd.DataFrame:
    """Read and validate an assignments file (Parquet or CSV)."""
    if not path.exists():
        raise AssignmentError(f"{path}: file not found")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"customer_id": str})
    except Exception as exc:
        raise AssignmentError(f"{path}: cannot be read as {path.suffix.lstrip('.') or 'csv'}: {exc}") from exc
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise AssignmentError(f"{path}: missing required column(s) {missing}; found {list(frame.columns)}")
    if "is_holdout" in frame.columns:
        frame["is_holdout"] = frame["is_holdout"].map(_as_bool)
    header = first_row(path)
    holdout = frame["is_holdout"] if "is_holdout" in frame.columns else pd.Series(False, index=frame.index)
    checks = [
        ("customer_id is null", frame["customer_id"].isna()),
        ("strategy not in the catalogue " + str(list(STRATEGIES)), ~frame["strategy"].isin(STRATEGIES)),
        (
            "propensity must be in (0, 1]",
            ~pd.to_numeric(frame["propensity"], errors="coerce").between(0, 1, "right"),
        ),
        ("customer_id assigned twice", frame["customer_id"].duplicated(keep="first")),
        ("is_holdout must be true/false or 1/0", ~holdout.map(_as_bool).isin([True, False])),
    ]
    for rule, bad in checks:
        if bad.any():
            rows = (np.flatnonzero(bad.to_numpy()) + header)[:5].tolist()
            raise AssignmentError(f"{path}: row(s) {rows} break the rule: {rule} ({int(bad.sum())} row(s) in all)")
    return frame


def respond(assignments: Path, run_date: date, landing: Path, truth: Path, dirt_scale: float = 0.0) -> RespondResult:
    """Draw outcomes for assignments made on ``run_date``; write them as landing data of the next days.

    Writes ``respond-<date>`` files (so a rerun replaces them): the assignment rows in
    ``campaign_log/ds=<date>``, events and orders of the attribution window in their days'
    partitions, the outcome rows in ``campaign_log/ds=<date + window>``; and the truth of every
    customer under every strategy in ``truth/campaign_truth/ds=<date>``.
    """
    cfg = SimConfig.from_json(load_manifest(truth)["config"])
    frame = read_assignments(assignments)
    pop = make_population(cfg)
    catalogue = make_catalogue(cfg)
    day = (run_date - cfg.start).days
    if day < 0:
        raise AssignmentError(f"{assignments}: --date {run_date} is before the simulated shop opened ({cfg.start})")
    if day < cfg.days:
        log.warning(
            "respond date %s lies inside the simulated history (%s..%s): "
            "its outcomes add to the organic activity already there",
            run_date,
            cfg.start,
            cfg.end,
        )
    index = pd.Series(np.arange(pop.n), index=pop.col("customer_id"))
    known = frame["customer_id"].isin(index.index).to_numpy()
    signed_up = np.zeros(len(frame), bool)
    signed_up[known] = pop.col("signup_day")[index[frame.loc[known, "customer_id"]].to_numpy()] <= day
    if not signed_up.all():
        rows = (np.flatnonzero(~signed_up) + first_row(assignments))[:5].tolist()
        raise AssignmentError(
            f"{assignments}: row(s) {rows} break the rule: customer_id unknown to the shop on {run_date}"
        )
    customers = index[frame["customer_id"]].to_numpy()
    strategy = np.array([STRATEGIES.index(s) for s in frame["strategy"]])
    propensity = frame["propensity"].astype(float).to_numpy()
    holdout = (
        frame["is_holdout"].astype(bool).to_numpy()  # validated above: only True / False remain
        if "is_holdout" in frame.columns
        else strategy == STRATEGIES.index(CONTROL)
    )
    ymd = run_date.strftime("%Y%m%d")
    stem = f"respond-{run_date.isoformat()}"
    rng = rng_for(cfg.seed, "respond", day)
    outcomes = outcomes_on(cfg, pop, catalogue, day, run_date)
    campaign, sessions, emails = draw_campaign(
        cfg, pop, outcomes, f"RUN-{ymd}", day, run_date, customers, strategy, propensity, holdout, 0, rng
    )
    writer = LandingWriter(cfg, landing, dirt_scale=dirt_scale)
    revenue = np.zeros(len(customers))
    for k in range(cfg.attribution_days):
        d = day + k
        when = run_date + timedelta(days=k)
        shelf = ShelfState.from_state(catalogue.state_on(min(d, cfg.days - 1)), pop.cum_affinity.shape[1])
        drng = rng_for(cfg.seed, "respond-day", day, k)
        events, orders = expand(
            sessions.get(d, Sessions.concat([])),
            pop,
            shelf,
            day_ms(when),
            drng,
            f"R{ymd}",
            when.strftime("%Y%m%d"),
        )
        np.add.at(revenue, orders["_tag"].to_numpy(), (orders["amount"] - orders["discount"]).to_numpy())
        day_events = pd.concat([events, emails], ignore_index=True) if k == 0 else events
        writer.write("events", when, event_rows(day_events, when.strftime("%Y%m%d"), f"R{ymd}"), stem)
        writer.write("orders", when, order_rows(orders), stem)
    assigned = campaign.frame(pop)
    assigned[["visited", "converted", "revenue"]] = None
    assigned["updated_at"] = assigned["ts"]
    writer.write("campaign_log", run_date, assigned.astype(object), stem)
    close = run_date + timedelta(days=cfg.attribution_days)
    writer.write("campaign_log", close, outcome_rows(campaign, pop, revenue, day_ms(close), rng).astype(object), stem)
    write_parquet(
        truth / "campaign_truth" / f"ds={run_date.isoformat()}" / "part-00000.parquet",
        truth_frame(pop, outcomes, pop.col("signup_day") <= day, run_date.isoformat()),
    )
    result = RespondResult(
        run_date=run_date,
        assignments=len(customers),
        converted=int(campaign.converted.sum()),
        revenue=float(np.round(revenue.sum(), 2)),
        files=sorted(writer.files),
    )
    summary = {
        "run_date": run_date.isoformat(),
        "assignments_file": str(assignments),
        "assignments": result.assignments,
        "converted": result.converted,
        "revenue": result.revenue,
        "files": result.files,
    }
    write_atomic(truth / "responses" / f"{run_date.isoformat()}.json", (json.dumps(summary, indent=2) + "\n").encode())
    return result

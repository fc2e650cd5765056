"""The simulation loop: one pass over the days, writing every landing partition and the truth.

Memory is bounded by the population (latents of every customer) plus one day of activity:
events and orders are generated, dirtied and written day by day.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from jobs.simulator.activity import Sessions, ShelfState, email_events, expand, ids, organic_sessions
from jobs.simulator.config import (
    CATEGORIES,
    CHANNELS,
    CONTROL,
    DESIGNS,
    FORMATS,
    STRATEGIES,
    TABLES,
    SimConfig,
)
from jobs.simulator.dirt import RECORD_COLUMNS, Dirtied, FileContext, inject
from jobs.simulator.files import swap_in, write_atomic
from jobs.simulator.render import render
from jobs.simulator.response import Outcome, exposure, outcome
from jobs.simulator.rng import rng_for
from jobs.simulator.tables import (
    CAMPAIGN_LOG_SCHEMA,
    SPECS,
    TS_FORMAT,
    iso_date,
    iso_local,
    iso_utc_ms,
    iso_utc_s,
    other_region,
)
from jobs.simulator.world import Catalogue, Population, category_mean_price, make_catalogue, make_population

log = logging.getLogger(__name__)
DAY_MS = 86_400_000
SEND_HOUR_MS = 8 * 3_600_000  # campaign e-mails go out between 08:00 and 09:00 UTC
MANIFEST = "manifest.json"
EXTENSIONS = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}


def day_ms(d: date) -> int:
    return int((datetime(d.year, d.month, d.day) - datetime(1970, 1, 1)).total_seconds() * 1000)


# --- landing writer -----------------------------------------------------------------------


@dataclass
class LandingWriter:
    """Dirties, renders and writes landing files; keeps the dirt record and the clean counts."""

    cfg: SimConfig
    root: Path
    dirt_scale: float = 1.0
    records: list[dict[str, Any]] = field(default_factory=list)
    clean_rows: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    written_rows: Counter = field(default_factory=Counter)
    files: list[str] = field(default_factory=list)

    def write(self, table: str, day: date, clean: pd.DataFrame, stem: str = "part-00000") -> None:
        spec = SPECS[table]
        ds = day.isoformat()
        relpath = f"{table}/ds={ds}/{stem}.{EXTENSIONS[spec.fmt]}"
        key = (day - self.cfg.start).days
        rng = rng_for(self.cfg.seed, f"dirt:{table}:{stem}", key)
        ctx = FileContext(
            table=table,
            ds=ds,
            relpath=relpath,
            format_ts=TS_FORMAT[table],
            unknown_id=self._unknown_id,
            day_ms=day_ms(day),
        )
        rates = self.cfg.dirt.scaled(self.dirt_scale)
        dirtied = (
            inject(clean, spec, ctx, rates, rng)
            if self.dirt_scale > 0
            else Dirtied(clean.reset_index(drop=True), np.zeros(0, dtype=np.int64), [])
        )
        schema = CAMPAIGN_LOG_SCHEMA if table == "campaign_log" else None
        write_atomic(self.root / relpath, render(dirtied, spec, rng, schema))
        self.records.extend(dirtied.records)
        self.clean_rows[table][ds] += len(clean)
        self.written_rows[table] += len(dirtied.frame)
        self.files.append(relpath)

    def _unknown_id(self, table: str, rng: np.random.Generator) -> str:
        if table == "customers":
            return f"C{self.cfg.customers + 1 + int(rng.integers(0, 10**6)):07d}"
        return f"P{self.cfg.products + 1 + int(rng.integers(0, 10**5)):05d}"

    def dirt_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.records, columns=list(RECORD_COLUMNS))
        return frame.astype({"row_number": "int64"})


# --- table builders (clean rows in landing representation) --------------------------------


def customer_rows(pop: Population, idx: np.ndarray, updated_ms: np.ndarray) -> pd.DataFrame:
    f = pop.frame
    email = f["email"].to_numpy()[idx]
    return pd.DataFrame(
        {
            "customer_id": f["customer_id"].to_numpy()[idx],
            "first_name": f["first_name"].to_numpy()[idx],
            "last_name": f["last_name"].to_numpy()[idx],
            "email": np.where(email == "", None, email),
            "phone": f["phone"].to_numpy()[idx],
            "signup_date": iso_date(day_ms_array(f["signup_date"].to_numpy()[idx])),
            "region": f["region"].to_numpy()[idx],
            "channel": f["channel"].to_numpy()[idx],
            "birth_year": f["birth_year"].to_numpy()[idx].astype(str),
            "gender": f["gender"].to_numpy()[idx],
            "updated_at": iso_utc_s(updated_ms),
        },
        dtype=object,
    )


def day_ms_array(dates: np.ndarray) -> np.ndarray:
    return dates.astype("datetime64[D]").astype("datetime64[ms]").astype(np.int64)


def product_rows(catalogue: Catalogue, state: pd.DataFrame, idx: np.ndarray, updated_ms: np.ndarray) -> pd.DataFrame:
    f = catalogue.frame
    return pd.DataFrame(
        {
            "product_id": f["product_id"].to_numpy()[idx],
            "name": f["name"].to_numpy()[idx],
            "category": f["category"].to_numpy()[idx],
            "price": state["price"].to_numpy()[idx].astype(float),
            "margin_rate": f["margin_rate"].to_numpy()[idx].astype(float),
            "is_active": state["is_active"].to_numpy()[idx].astype(bool),
            "updated_at": iso_utc_s(updated_ms),
        }
    ).astype(object)


def event_rows(events: pd.DataFrame, ymd: str, id_tag: str) -> pd.DataFrame:
    events = events.sort_values("ts_ms", kind="stable").reset_index(drop=True)
    return pd.DataFrame(
        {
            "event_id": ids("E", ymd, id_tag, len(events), 7),
            "customer_id": events["customer_id"].to_numpy(),
            "ts": iso_utc_ms(events["ts_ms"].to_numpy()),
            "event_type": events["event_type"].to_numpy(),
            "product_id": events["product_id"].to_numpy(),
            "session_id": events["session_id"].to_numpy(),
        },
        dtype=object,
    )


def order_rows(orders: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy(),
            "customer_id": orders["customer_id"].to_numpy(),
            "ts": iso_local(orders["ts_ms"].to_numpy()),
            "amount": orders["amount"].to_numpy().astype(float),
            "discount": orders["discount"].to_numpy().astype(float),
            "currency": "EUR",
            "items": orders["items"].to_numpy(),
            "_ts_ms": orders["ts_ms"].to_numpy(),
        }
    )
    return out.astype(object)


# --- campaigns ------------------------------------------------------------------------------


def design_probabilities(design: str, pop: Population, idx: np.ndarray) -> np.ndarray:
    """Assignment probabilities (rows: customers, columns: STRATEGIES) of a logging policy."""
    m = len(idx)
    if design == "uniform":
        return np.full((m, len(STRATEGIES)), 1.0 / len(STRATEGIES))
    if design == "control_heavy":
        return np.tile([0.4, 0.15, 0.15, 0.15, 0.15], (m, 1))
    if design == "channel_targeted":
        by_channel = {
            "web": [0.2, 0.4, 0.1, 0.1, 0.2],
            "app": [0.2, 0.1, 0.3, 0.3, 0.1],
            "marketplace": [0.15, 0.1, 0.2, 0.15, 0.4],
        }
        table = np.array([by_channel[c] for c in CHANNELS])
        channel = np.searchsorted(np.array(CHANNELS), pop.col("channel")[idx], sorter=np.argsort(CHANNELS))
        channel = np.argsort(CHANNELS)[channel]
        return table[channel]
    raise ValueError(f"unknown design {design!r}")


@dataclass
class Campaign:
    """The assignments of one campaign and their drawn outcomes."""

    campaign_id: str
    day: int  # day index of the send
    customers: np.ndarray
    strategy: np.ndarray  # index into STRATEGIES
    propensity: np.ndarray
    is_holdout: np.ndarray
    send_ms: np.ndarray
    visited: np.ndarray
    converted: np.ndarray
    tag_base: int  # first global tag of this campaign's assignments

    def frame(self, pop: Population) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "campaign_id": self.campaign_id,
                "customer_id": pop.col("customer_id")[self.customers],
                "ts": pd.to_datetime(self.send_ms, unit="ms", utc=True),
                "strategy": np.array(STRATEGIES)[self.strategy],
                "propensity": self.propensity,
                "is_holdout": self.is_holdout,
            }
        )


def draw_campaign(
    cfg: SimConfig,
    pop: Population,
    outcomes: dict[str, Outcome],
    campaign_id: str,
    day: int,
    send_day: date,
    customers: np.ndarray,
    strategy: np.ndarray,
    propensity: np.ndarray,
    is_holdout: np.ndarray,
    tag_base: int,
    rng: np.random.Generator,
) -> tuple[Campaign, dict[int, Sessions], pd.DataFrame]:
    """Draw every assignment's outcome from the truth; schedule the sessions that realise it."""
    m = len(customers)
    p_conv = np.empty(m)
    p_visit_nc = np.empty(m)
    lam = np.empty(m)
    disc = np.empty(m)
    for j, name in enumerate(STRATEGIES):
        sel = strategy == j
        out = outcomes[name]
        p_conv[sel] = out.p_convert[customers[sel]]
        p_visit_nc[sel] = out.p_visit_no_purchase[customers[sel]]
        lam[sel] = out.items_lambda[customers[sel]]
        disc[sel] = out.discount_rate
    converted = rng.random(m) < p_conv
    visited = converted | (rng.random(m) < p_visit_nc)
    offset = rng.integers(0, cfg.attribution_days, size=m)
    start_second = rng.integers(10 * 3600, 21 * 3600, size=m)
    send_ms = day_ms(send_day) + SEND_HOUR_MS + rng.integers(0, 3_600_000, size=m)
    sessions: dict[int, Sessions] = {}
    for k in range(cfg.attribution_days):
        sel = visited & (offset == k)
        if sel.any():
            sessions[day + k] = Sessions(
                customer=customers[sel],
                purchase=converted[sel],
                items_lambda=np.where(converted[sel], lam[sel], 0.0),
                discount_rate=np.where(converted[sel], disc[sel], 0.0),
                start_second=start_second[sel],
                tag=tag_base + np.flatnonzero(sel),
            )
    treated = strategy != STRATEGIES.index(CONTROL)
    emails = email_events(pop, customers[treated], send_ms[treated], rng)
    campaign = Campaign(
        campaign_id, day, customers, strategy, propensity, is_holdout, send_ms, visited, converted, tag_base
    )
    return campaign, sessions, emails


def truth_frame(pop: Population, outcomes: dict[str, Outcome], existing: np.ndarray, ds: str) -> pd.DataFrame:
    """Long-format truth: one row per existing customer and strategy."""
    idx = np.flatnonzero(existing)
    parts = []
    for name in STRATEGIES:
        out = outcomes[name]
        parts.append(
            pd.DataFrame(
                {
                    "campaign_date": ds,
                    "customer_id": pop.col("customer_id")[idx],
                    "strategy": name,
                    "p_convert": out.p_convert[idx],
                    "p_visit": out.p_visit[idx],
                    "expected_order_value": out.expected_order_value[idx],
                    "expected_gross": out.expected_gross[idx],
                    "expected_discount": out.expected_discount[idx],
                    "expected_revenue": out.expected_revenue[idx],
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    return frame.sort_values(["customer_id", "strategy"], kind="stable").reset_index(drop=True)


def outcomes_on(cfg: SimConfig, pop: Population, catalogue: Catalogue, day: int, send_day: date) -> dict:
    state = catalogue.state_on(min(day, cfg.days - 1))
    cat_price = category_mean_price(state, len(CATEGORIES))
    expo = exposure(send_day.weekday(), cfg.attribution_days)
    return {name: outcome(pop, name, cat_price, expo) for name in STRATEGIES}


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    write_atomic(path, sink.getvalue().to_pybytes())


# --- the simulation -------------------------------------------------------------------------


@dataclass
class SimulationResult:
    config: SimConfig
    landing: Path
    truth: Path
    rows_written: dict[str, int]
    clean_rows: dict[str, int]
    dirt_by_kind: dict[str, int]
    campaigns: int
    seconds: float

    @property
    def total_rows(self) -> int:
        return sum(self.rows_written.values())


def simulate(cfg: SimConfig, landing: Path, truth: Path, progress: bool = False) -> SimulationResult:
    """Generate the shop into staging folders, then swap them in for ``landing`` tables and ``truth``."""
    t0 = time.perf_counter()
    token = uuid.uuid4().hex[:8]
    stage_landing = landing.parent / f".staging-landing-{token}"
    stage_truth = truth.parent / f".staging-truth-{token}"
    try:
        result = _simulate_into(cfg, stage_landing, stage_truth, progress)
        for table in TABLES:
            (stage_landing / table).mkdir(parents=True, exist_ok=True)  # a table with no rows yet
            swap_in(stage_landing / table, landing / table)
        swap_in(stage_truth, truth)
    finally:
        shutil.rmtree(stage_landing, ignore_errors=True)
        shutil.rmtree(stage_truth, ignore_errors=True)
    result.landing, result.truth = landing, truth
    result.seconds = time.perf_counter() - t0
    return result


def _simulate_into(cfg: SimConfig, landing: Path, truth: Path, progress: bool) -> SimulationResult:
    pop = make_population(cfg)
    catalogue = make_catalogue(cfg)
    writer = LandingWriter(cfg, landing)
    n = pop.n
    signup_day = pop.col("signup_day")
    has_email = pop.col("has_email")
    window_end = np.full(n, -1)  # last day of a customer's running attribution window
    pending: dict[int, list[Sessions]] = defaultdict(list)
    closing: dict[int, list[Campaign]] = defaultdict(list)
    revenue = np.zeros(0)
    campaign_days = cfg.campaign_days()
    k = len(CATEGORIES)

    rng_u = rng_for(cfg.seed, "customer-updates")
    n_updates = round(cfg.customer_update_share * n)
    update_who = rng_u.choice(
        np.flatnonzero(signup_day <= 0), size=min(n_updates, int((signup_day <= 0).sum())), replace=False
    )
    update_day = rng_u.integers(1, max(cfg.days, 2), size=len(update_who))
    update_region = other_region(pop.col("region")[update_who], rng_u)

    days = range(cfg.days)
    for d in tqdm(days, desc="simulating days", unit="day", disable=None if progress else True):
        today = cfg.day(d)
        ds_ms = day_ms(today)
        ymd = today.strftime("%Y%m%d")
        rng = rng_for(cfg.seed, "activity", d)

        # customers: the base on day 0, then signups and updates of the day
        if d == 0:
            idx = np.flatnonzero(signup_day <= 0)
            signup_ms = day_ms_array(pop.col("signup_date")[idx])
            rows = customer_rows(pop, idx, signup_ms + rng.integers(6 * 3_600_000, 22 * 3_600_000, size=len(idx)))
        else:
            idx = np.flatnonzero(signup_day == d)
            rows = customer_rows(pop, idx, ds_ms + rng.integers(0, DAY_MS, size=len(idx)))
        upd = update_day == d
        if upd.any():
            moved = customer_rows(pop, update_who[upd], ds_ms + rng.integers(0, DAY_MS, size=int(upd.sum())))
            moved["region"] = update_region[upd]
            rows = pd.concat([rows, moved], ignore_index=True)
        writer.write("customers", today, rows)

        # products: the catalogue on day 0, then price changes and discontinuations
        state = catalogue.state_on(d)
        if d == 0:
            pidx = np.arange(len(catalogue.frame))
            p_ms = np.full(len(pidx), ds_ms - 30 * DAY_MS)
        else:
            pidx = catalogue.changes.loc[catalogue.changes["day"] == d, "product"].to_numpy()
            p_ms = ds_ms + rng.integers(0, 6 * 3_600_000, size=len(pidx))
        writer.write("products", today, product_rows(catalogue, state, pidx, p_ms))

        # campaigns sent today
        email_frames: list[pd.DataFrame] = []
        campaign_rows: list[pd.DataFrame] = []
        if d in campaign_days:
            c_index = campaign_days.index(d)
            design = DESIGNS[c_index % len(DESIGNS)]
            crng = rng_for(cfg.seed, "campaign", d)
            eligible = (signup_day < d) & has_email & (window_end < d)
            target = np.flatnonzero(eligible & (crng.random(n) < cfg.campaign_share))
            probs = design_probabilities(design, pop, target)
            arm = np.minimum(
                (crng.random(len(target))[:, None] > np.cumsum(probs, axis=1)).sum(axis=1),
                len(STRATEGIES) - 1,
            )
            propensity = probs[np.arange(len(target)), arm]
            outcomes = outcomes_on(cfg, pop, catalogue, d, today)
            campaign, sessions, emails = draw_campaign(
                cfg,
                pop,
                outcomes,
                f"CMP-{ymd}",
                d,
                today,
                target,
                arm,
                propensity,
                arm == STRATEGIES.index(CONTROL),
                len(revenue),
                crng,
            )
            revenue = np.concatenate([revenue, np.zeros(len(target))])
            window_end[target] = d + cfg.attribution_days - 1
            for when, s in sessions.items():
                pending[when].append(s)
            closing[d + cfg.attribution_days].append(campaign)
            email_frames.append(emails)
            frame = campaign.frame(pop)
            frame["visited"] = None
            frame["converted"] = None
            frame["revenue"] = None
            frame["updated_at"] = frame["ts"]
            campaign_rows.append(frame)
            write_parquet(
                truth / "campaign_truth" / f"ds={today.isoformat()}" / "part-00000.parquet",
                truth_frame(pop, outcomes, signup_day <= d, today.isoformat()),
            )
            log.debug("campaign %s (%s): %d customers", campaign.campaign_id, design, len(target))

        # today's activity: organic sessions of customers outside a campaign window + campaign responses
        active = (signup_day <= d) & (window_end < d)
        sessions = Sessions.concat([organic_sessions(pop, today.weekday(), active, rng), *pending.pop(d, [])])
        shelf = ShelfState.from_state(state, k)
        events, orders = expand(sessions, pop, shelf, ds_ms, rng, "", ymd)
        tagged = orders["_tag"].to_numpy() >= 0
        np.add.at(
            revenue,
            orders["_tag"].to_numpy()[tagged],
            (orders["amount"] - orders["discount"]).to_numpy()[tagged],
        )
        writer.write("events", today, event_rows(pd.concat([events, *email_frames], ignore_index=True), ymd, ""))
        writer.write("orders", today, order_rows(orders))

        # campaign log: today's assignments, and the outcomes of windows that closed today
        for campaign in closing.pop(d, []):
            campaign_rows.append(outcome_rows(campaign, pop, revenue, ds_ms, rng))
        if campaign_rows:
            writer.write("campaign_log", today, pd.concat(campaign_rows, ignore_index=True).astype(object))

    _write_truth(cfg, pop, catalogue, writer, truth, len(campaign_days))
    dirt = writer.dirt_frame()
    return SimulationResult(
        config=cfg,
        landing=landing,
        truth=truth,
        rows_written=dict(writer.written_rows),
        clean_rows={t: sum(c.values()) for t, c in writer.clean_rows.items()},
        dirt_by_kind=dirt["kind"].value_counts().sort_index().to_dict(),
        campaigns=len(campaign_days),
        seconds=0.0,
    )


def outcome_rows(
    campaign: Campaign, pop: Population, revenue: np.ndarray, close_ms: int, rng: np.random.Generator
) -> pd.DataFrame:
    """The second version of a campaign's rows, written when its attribution window closes."""
    frame = campaign.frame(pop)
    rev = revenue[campaign.tag_base : campaign.tag_base + len(campaign.customers)]
    frame["visited"] = campaign.visited
    frame["converted"] = campaign.converted
    frame["revenue"] = np.round(np.where(campaign.converted, rev, 0.0), 2)
    frame["updated_at"] = pd.to_datetime(
        close_ms + 2 * 3_600_000 + rng.integers(0, 3_600_000, size=len(frame)), unit="ms", utc=True
    )
    return frame


def _write_truth(
    cfg: SimConfig, pop: Population, catalogue: Catalogue, writer: LandingWriter, truth: Path, campaigns: int
) -> None:
    latents = pop.frame.drop(columns=["first_name", "last_name", "email", "phone"]).copy()
    latents["signup_date"] = latents["signup_date"].astype("datetime64[ms]")
    write_parquet(truth / "customers.parquet", latents)
    write_parquet(truth / "products.parquet", catalogue.frame)
    write_parquet(truth / "product_changes.parquet", catalogue.changes)
    dirt = writer.dirt_frame()
    write_parquet(truth / "dirt.parquet", dirt)
    manifest = {
        "generator": "msp simulate",
        "config": cfg.to_json(),
        "formats": FORMATS,
        "strategies": list(STRATEGIES),
        "campaign_days": [cfg.day(d).isoformat() for d in cfg.campaign_days()],
        "campaigns": campaigns,
        "rows_written": dict(sorted(writer.written_rows.items())),
        "clean_rows": {t: sum(c.values()) for t, c in sorted(writer.clean_rows.items())},
        "clean_rows_by_ds": {t: dict(sorted(c.items())) for t, c in sorted(writer.clean_rows.items())},
        "dirt_by_kind": dirt.groupby(["table", "kind"]).size().unstack(fill_value=0).to_dict(orient="index")
        if len(dirt)
        else {},
        "files": sorted(writer.files),
    }
    write_atomic(truth / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def load_manifest(truth: Path) -> dict[str, Any]:
    path = truth / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `msp simulate` first (respond needs its world)")
    return json.loads(path.read_text())

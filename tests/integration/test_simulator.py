"""The simulator end to end on a small shop: determinism, dirt accounting, truth, respond."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs.simulator.config import STRATEGIES, DirtRates, SimConfig
from jobs.simulator.engine import simulate
from jobs.simulator.respond import AssignmentError, respond
from tests.support.landing_audit import audit

CFG = SimConfig(seed=7, customers=6_000, products=120, days=45)


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("world")
    result = simulate(CFG, root / "lake" / "landing", root / "truth")
    return {"root": root, "landing": root / "lake" / "landing", "truth": root / "truth", "result": result}


@pytest.fixture(scope="module")
def dirt(world: dict) -> pd.DataFrame:
    return pd.read_parquet(world["truth"] / "dirt.parquet")


@pytest.fixture(scope="module")
def campaign_log(world: dict, dirt: pd.DataFrame) -> pd.DataFrame:
    """Valid campaign_log rows (dirty rows dropped using the record), latest version per key."""
    frames = []
    for path in sorted((world["landing"] / "campaign_log").glob("ds=*/*.parquet")):
        frame = pd.read_parquet(path)
        frame["file"] = str(path.relative_to(world["landing"]))
        frame["row_number"] = np.arange(1, len(frame) + 1)
        frames.append(frame)
    log = pd.concat(frames, ignore_index=True)
    bad = dirt[dirt["table"] == "campaign_log"].set_index(["file", "row_number"]).index
    log = log[~log.set_index(["file", "row_number"]).index.isin(bad)]
    log = log.sort_values("updated_at").drop_duplicates(["campaign_id", "customer_id"], keep="last")
    return log


@pytest.fixture(scope="module")
def truth(world: dict) -> pd.DataFrame:
    frame = pd.read_parquet(world["truth"] / "campaign_truth")
    frame["campaign_id"] = "CMP-" + frame["campaign_date"].astype(str).str.replace("-", "")
    return frame


def test_same_seed_gives_byte_identical_output(world: dict, tmp_path: Path) -> None:
    again = simulate(CFG, tmp_path / "lake" / "landing", tmp_path / "truth")
    assert again.rows_written == world["result"].rows_written
    assert digest(tmp_path / "lake" / "landing") == digest(world["landing"])
    assert digest(tmp_path / "truth") == digest(world["truth"])
    other = SimConfig(seed=8, customers=CFG.customers, products=CFG.products, days=5)
    simulate(other, tmp_path / "o" / "landing", tmp_path / "o" / "truth")
    first = "events/ds=2026-09-01/part-00000.csv"
    assert (tmp_path / "o" / "landing" / first).read_bytes() != (world["landing"] / first).read_bytes()


def test_rerun_replaces_the_landing_zone_without_leftovers(tmp_path: Path) -> None:
    small = SimConfig(customers=200, products=20, days=6)
    simulate(SimConfig(customers=200, products=20, days=9), tmp_path / "landing", tmp_path / "truth")
    simulate(small, tmp_path / "landing", tmp_path / "truth")
    days = sorted(p.name for p in (tmp_path / "landing" / "events").iterdir())
    assert days == [f"ds=2026-09-0{d}" for d in range(1, 7)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging folders left behind"


def test_layout_formats_and_partitions(world: dict) -> None:
    landing = world["landing"]
    assert sorted(p.name for p in landing.iterdir()) == sorted(
        ["customers", "products", "events", "orders", "campaign_log"]
    )
    suffixes = {t: {p.suffix for p in (landing / t).rglob("*.*")} for t in ("customers", "events", "orders")}
    assert suffixes == {"customers": {".csv"}, "events": {".csv"}, "orders": {".jsonl"}}
    assert {p.suffix for p in (landing / "campaign_log").rglob("*.*")} == {".parquet"}
    events_days = sorted(p.name for p in (landing / "events").iterdir())
    assert len(events_days) == CFG.days and events_days[0] == "ds=2026-09-01"
    manifest = json.loads((world["truth"] / "manifest.json").read_text())
    assert manifest["config"] == CFG.to_json()
    assert manifest["campaign_days"] == ["2026-09-08", "2026-09-22", "2026-10-06"]
    assert sorted(manifest["files"]) == sorted(str(p.relative_to(landing)) for p in landing.rglob("*") if p.is_file())


def test_every_defect_in_the_files_is_in_the_record_and_nothing_else(world: dict, dirt: pd.DataFrame) -> None:
    found = audit(world["landing"])
    assert found.inconsistent_duplicates == [], "same key with different meaning is not a duplicate"
    multi = [(r.file, r.row_number, r.reasons) for rows in found.rows.values() for r in rows if len(r.reasons) > 1]
    assert multi == [], "each dirty row carries exactly one defect"

    recorded = dirt[dirt["action"] != "dedupe"]
    record_set = set(zip(recorded["file"], recorded["row_number"], recorded["reason"], strict=True))
    findings = found.findings()
    assert findings - record_set == set(), "defects in the files that the record does not list"
    assert record_set - findings == set(), "recorded defects that are not in the files"

    dups = dirt[dirt["action"] == "dedupe"].groupby(["file", "key"]).size().to_dict()
    assert dups == found.duplicates


def test_clean_row_counts_add_up(world: dict, dirt: pd.DataFrame) -> None:
    manifest = json.loads((world["truth"] / "manifest.json").read_text())
    found = audit(world["landing"])
    for table, rows in found.rows.items():
        by_ds = Counter(r.file.split("/")[1].removeprefix("ds=") for r in rows)
        added = dirt[(dirt["table"] == table) & (dirt["action"] != "impute")]
        added_by_ds = added.groupby("ds").size()
        for ds, count in by_ds.items():
            assert count - added_by_ds.get(ds, 0) == manifest["clean_rows_by_ds"][table][ds], (table, ds)
    # customers: one valid row per customer, plus one later version for each customer who moved
    valid = [r for r in found.rows["customers"] if not r.quarantined]
    assert len({r.key for r in valid}) == CFG.customers


def test_dirt_rates_are_within_tolerance(world: dict, dirt: pd.DataFrame) -> None:
    manifest = json.loads((world["truth"] / "manifest.json").read_text())
    applicable = {
        "exact_duplicate": ["customers", "products", "events", "orders", "campaign_log"],
        "near_duplicate": ["customers", "products", "events", "orders", "campaign_log"],
        "optional_null": ["customers", "products", "orders"],
        "required_null": ["customers", "products", "events", "orders", "campaign_log"],
        "malformed": ["customers", "products", "events", "orders"],
        "wrong_type": ["customers", "products", "events", "orders"],
        "bad_value": ["customers", "products", "events", "orders", "campaign_log"],
        "unknown_fk": ["events", "orders", "campaign_log"],
        "future_ts": ["customers", "products", "events", "orders", "campaign_log"],
    }
    rates = DirtRates()
    for kind, tables in applicable.items():
        n = sum(manifest["clean_rows"][t] for t in tables)
        expected = n * getattr(rates, kind)
        observed = int((dirt["kind"] == kind).sum())
        assert abs(observed - expected) <= 4 * np.sqrt(expected) + 2, (kind, observed, expected)
        assert set(dirt.loc[dirt["kind"] == kind, "table"]) <= set(tables)


def test_propensities_follow_the_three_designs(campaign_log: pd.DataFrame) -> None:
    by_campaign = campaign_log.groupby("campaign_id")
    props = {cid: sorted(g["propensity"].round(4).unique()) for cid, g in by_campaign}
    assert props["CMP-20260908"] == [0.2]
    assert props["CMP-20260922"] == [0.15, 0.4]
    assert len(props["CMP-20261006"]) > 2, "channel-targeted design: propensities vary by customer"
    for cid, g in by_campaign:
        # logged propensities are right when inverse-propensity weights recover the campaign size
        weights = (1.0 / g["propensity"]).groupby(g["strategy"]).sum() / len(g)
        assert sorted(weights.index) == sorted(STRATEGIES)
        assert np.allclose(weights, 1.0, atol=0.1), (cid, weights.to_dict())
    assert (campaign_log["is_holdout"] == (campaign_log["strategy"] == "no_action")).all()


def test_observed_uplift_of_each_arm_lies_in_its_95_interval_around_the_truth(
    campaign_log: pd.DataFrame, truth: pd.DataFrame
) -> None:
    """Horvitz-Thompson with the logged propensities, pooled over campaigns whose window closed."""
    done = campaign_log[campaign_log["converted"].notna()].copy()
    assert done["campaign_id"].nunique() == 3
    wide = truth.pivot_table(index=["campaign_id", "customer_id"], columns="strategy", values="p_convert")
    wide = wide.loc[list(zip(done["campaign_id"], done["customer_id"], strict=True))]
    y = done["converted"].astype(float).to_numpy()
    pi = done["propensity"].to_numpy()
    arm = done["strategy"].to_numpy()
    control = np.where(arm == "no_action", y / pi, 0.0)
    for strategy in STRATEGIES[1:]:
        terms = np.where(arm == strategy, y / pi, 0.0) - control
        estimate, se = terms.mean(), terms.std(ddof=1) / np.sqrt(len(terms))
        true_effect = float((wide[strategy] - wide["no_action"]).mean())
        assert abs(estimate - true_effect) <= 1.96 * se, (strategy, estimate, true_effect, se)
        assert se < 0.02, "the test must be sharp enough to catch a wrong simulator"


def test_respond_refuses_a_date_before_the_shop_opened(world: dict, tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    pd.DataFrame({"customer_id": ["C0000001"], "strategy": ["coupon_10"], "propensity": [0.5]}).to_csv(path)
    with pytest.raises(AssignmentError, match="before the simulated shop opened"):
        respond(path, pd.Timestamp("2026-08-01").date(), tmp_path / "landing", world["truth"])


def test_campaign_emails_are_opened_after_they_were_sent(world: dict, campaign_log: pd.DataFrame) -> None:
    found = audit(world["landing"])
    opens = pd.DataFrame(
        [
            {"customer_id": r.values["customer_id"], "opened": r.normalised[2]}
            for r in found.rows["events"]
            if not r.reasons and r.values["event_type"] == "email_open"
        ]
    )
    sent = campaign_log[campaign_log["strategy"] != "no_action"][["customer_id", "ts"]]
    merged = opens.merge(sent, on="customer_id")
    merged = merged[merged["opened"].dt.date == merged["ts"].dt.date]  # the same campaign's day
    assert len(merged) > 100
    assert (merged["opened"] > merged["ts"]).all()


def test_true_effects_are_heterogeneous_and_some_strategy_hurts_a_segment(truth: pd.DataFrame) -> None:
    wide = truth.pivot_table(index=["campaign_id", "customer_id"], columns="strategy", values="p_convert")
    effects = wide.drop(columns="no_action").sub(wide["no_action"], axis=0)
    assert (effects.std() > 0.005).all(), "effects vary between customers"
    hurt = (effects < 0).mean()
    assert hurt["coupon_20"] > 0.02 and hurt["email_recommendations"] > 0.02
    assert (effects.mean() > 0).all(), "on average every strategy helps conversion"
    revenue = truth.pivot_table(index=["campaign_id", "customer_id"], columns="strategy", values="expected_revenue")
    assert ((revenue["coupon_20"] - revenue["no_action"]) < 0).mean() > 0.05, "coupons cannibalise revenue"


def test_campaign_outcomes_match_the_orders_in_the_window(world: dict, campaign_log: pd.DataFrame) -> None:
    """A converter has exactly one order in its window and its net value is the logged revenue."""
    found = audit(world["landing"])
    orders = pd.DataFrame(
        [r.values | {"ts": r.normalised[2]} for r in found.rows["orders"] if not r.reasons]
    ).drop_duplicates("order_id")
    orders["ts"] = pd.to_datetime(orders["ts"], utc=True)
    done = campaign_log[campaign_log["converted"].notna()]
    merged = done.merge(orders, on="customer_id", how="left", suffixes=("", "_order"))
    in_window = merged[
        (merged["ts_order"] >= merged["ts"].dt.normalize())
        & (merged["ts_order"] < merged["ts"].dt.normalize() + pd.Timedelta(days=CFG.attribution_days))
    ]
    count = in_window.groupby(["campaign_id", "customer_id"]).size()
    key = pd.MultiIndex.from_frame(done[["campaign_id", "customer_id"]])
    count = count.reindex(key, fill_value=0).to_numpy()
    converted = done["converted"].astype(bool).to_numpy()
    assert (count[converted] == 1).mean() > 0.99  # dirty (quarantined) copies may hide a handful
    assert (count[~converted] == 0).all()
    net = (in_window["amount"] - in_window["discount"]).round(2)
    assert np.allclose(net, in_window["revenue"], atol=0.011)


def test_respond_draws_outcomes_for_assignments_and_reruns_idempotently(world: dict, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "w"
    shutil.copytree(world["root"], root)
    landing, truth_dir = root / "lake" / "landing", root / "truth"
    rng = np.random.default_rng(0)
    customers = [f"C{i:07d}" for i in rng.choice(np.arange(1, 5000), size=1500, replace=False)]
    assignments = pd.DataFrame(
        {"customer_id": customers, "strategy": rng.choice(STRATEGIES, size=1500), "propensity": 0.2}
    )
    path = tmp_path / "assignments.parquet"
    assignments.to_parquet(path)
    run_date = pd.Timestamp("2026-10-16").date()  # the day after the simulated history
    first = respond(path, run_date, landing, truth_dir)
    before = digest(landing)
    second = respond(path, run_date, landing, truth_dir)
    assert digest(landing) == before, "a rerun replaces its files with identical ones"
    assert first == second and first.assignments == 1500 and first.converted > 0
    log = pd.read_parquet(landing / "campaign_log" / "ds=2026-10-16" / "respond-2026-10-16.parquet")
    assert len(log) == 1500 and log["converted"].isna().all()
    out = pd.read_parquet(landing / "campaign_log" / "ds=2026-10-23" / "respond-2026-10-16.parquet")
    assert out["converted"].sum() == first.converted
    assert (out["revenue"].sum()).round(2) == pytest.approx(first.revenue, abs=0.05)
    orders = pd.concat(pd.read_json(p, lines=True) for p in landing.glob("orders/ds=*/respond-2026-10-16.jsonl"))
    assert len(orders) == first.converted
    assert (truth_dir / "campaign_truth" / "ds=2026-10-16" / "part-00000.parquet").exists()


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            pd.DataFrame({"customer_id": ["C0000001"], "strategy": ["coupon_10"]}),
            r"missing required column.*propensity",
        ),
        (
            pd.DataFrame(
                {"customer_id": ["C0000001", "C0000002"], "strategy": ["coupon_10", "sms"], "propensity": 0.5}
            ),
            r"row\(s\) \[3\] break the rule: strategy not in the catalogue",
        ),
        (
            pd.DataFrame({"customer_id": ["C0000001"], "strategy": ["coupon_10"], "propensity": 1.5}),
            r"row\(s\) \[2\] break the rule: propensity must be in \(0, 1\]",
        ),
        (
            pd.DataFrame({"customer_id": ["C9999999"], "strategy": ["coupon_10"], "propensity": 0.5}),
            r"row\(s\) \[2\] break the rule: customer_id unknown",
        ),
    ],
)
def test_respond_rejects_bad_assignments_naming_file_row_and_rule(
    world: dict, tmp_path: Path, frame: pd.DataFrame, message: str
) -> None:
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(AssignmentError, match=message) as info:
        respond(path, pd.Timestamp("2026-10-16").date(), tmp_path / "landing", world["truth"])
    assert str(path) in str(info.value)
    assert not (tmp_path / "landing").exists(), "nothing is written for a rejected file"

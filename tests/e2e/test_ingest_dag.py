"""marketing_ingest end to end through Airflow on a dirty simulated shop, checked against the truth."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from jobs.airflow_local import dags_test, failed_tasks
from jobs.contracts import ORDER, SOURCES
from jobs.settings import Settings
from jobs.simulator.config import SimConfig
from jobs.simulator.engine import simulate
from tests.support.landing_audit import audit

CFG = SimConfig(seed=11, customers=1_500, products=60, days=16)
START, END = CFG.start.isoformat(), CFG.end.isoformat()


def parquet(settings: Settings, layer: str, table: str) -> pd.DataFrame:
    files = sorted(str(p) for p in (settings.lake / layer / table).glob("ds=*/*.parquet"))
    if not files:
        return pd.DataFrame(columns=["key", "reason", "ds"])
    return duckdb.sql(
        f"SELECT * FROM read_parquet({files!r}, hive_partitioning = true, hive_types_autocast = false)"
    ).df()


def checksum(settings: Settings, table: str) -> str:
    """Content hash of every silver partition of a table (load time excluded)."""
    pattern = settings.lake / "silver" / table / "ds=*" / "*.parquet"
    return duckdb.sql(
        f"SELECT md5(string_agg(t::VARCHAR, chr(10) ORDER BY t::VARCHAR)) FROM "
        f"(SELECT * EXCLUDE (_ingested_at) FROM read_parquet('{pattern}', hive_partitioning = true)) t"
    ).fetchall()[0][0]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("shop")
    settings = Settings(home=home)
    simulate(CFG, settings.landing, settings.truth)
    run = dags_test(settings, "marketing_ingest", END, {"ds": END, "since": START})
    assert run.ok, f"DAG run {run.state}, failed tasks {failed_tasks(settings, run)}; see {run.log_path}"
    return {
        "settings": settings,
        "manifest": json.loads((settings.truth / "manifest.json").read_text()),
        "dirt": pd.read_parquet(settings.truth / "dirt.parquet"),
        "run": run,
    }


def test_silver_counts_equal_the_simulators_clean_counts(shop: dict) -> None:
    settings, manifest = shop["settings"], shop["manifest"]
    for table in ORDER:
        silver = parquet(settings, "silver", table)
        by_ds = silver.groupby(silver["ds"].astype(str)).size().to_dict()
        assert by_ds == {ds: n for ds, n in manifest["clean_rows_by_ds"][table].items() if n}, table


def test_every_recorded_defect_is_quarantined_with_its_reason(shop: dict) -> None:
    settings, dirt = shop["settings"], shop["dirt"]
    for table in ORDER:
        q = parquet(settings, "quarantine", table)
        expected = dirt[(dirt["table"] == table) & (dirt["action"] != "impute")]
        keyed = expected[expected["reason"] != "malformed_record"]
        got_keyed = q[q["reason"] != "malformed_record"]
        assert Counter(zip(got_keyed["key"], got_keyed["reason"], strict=True)) == Counter(
            zip(keyed["key"], keyed["reason"], strict=True)
        ), table
        malformed = expected[expected["reason"] == "malformed_record"].groupby("ds").size().to_dict()
        got_malformed = q[q["reason"] == "malformed_record"].groupby(q["ds"].astype(str)).size().to_dict()
        assert got_malformed == malformed, table


def test_no_valid_row_is_lost_and_imputed_rows_say_so(shop: dict) -> None:
    settings, dirt = shop["settings"], shop["dirt"]
    found = audit(settings.landing)
    for table in ORDER:
        valid = {(r.file.split("/")[1].removeprefix("ds="), r.key) for r in found.rows[table] if not r.quarantined}
        silver = parquet(settings, "silver", table)
        key = silver[list(SOURCES[table].key)].astype(str).agg("|".join, axis=1)
        assert set(zip(silver["ds"].astype(str), key, strict=True)) == valid, table
    customers = parquet(settings, "silver", "customers")
    missing = {(r["customer_id"], str(r["ds"])): list(r["_missing"]) for r in customers.to_dict("records")}
    imputed = dirt[(dirt["table"] == "customers") & (dirt["action"] == "impute")]
    assert len(imputed) > 0
    for rec in imputed.itertuples():
        assert rec.column in missing[(rec.key, rec.ds)]


def test_no_raw_pii_in_silver_or_quarantine(shop: dict) -> None:
    settings = shop["settings"]
    customers = parquet(settings, "silver", "customers")
    assert not {"email", "phone", "first_name", "last_name"} & set(customers.columns)
    assert customers["email_hash"].dropna().str.fullmatch(r"[0-9a-f]{64}").all()
    for layer in ("silver", "quarantine"):
        for table in ORDER:
            text = parquet(settings, layer, table).astype(str).to_csv()
            assert "@example.com" not in text and "+49 151" not in text, (layer, table)


def test_quality_results_land_in_the_warehouse_and_data_docs(shop: dict) -> None:
    from jobs.quality.validate import docs_index
    from jobs.warehouse import Warehouse

    settings = shop["settings"]
    dq = Warehouse.from_settings(settings).query(
        f"SELECT table_name, severity, success FROM marketing.data_quality WHERE run_date = DATE '{END}'"
    )
    assert set(dq["table_name"]) == set(ORDER)
    assert dq.loc[dq["severity"] == "critical", "success"].all()
    assert docs_index(settings).exists()


def test_rerunning_a_date_replaces_it_identically(shop: dict) -> None:
    settings = shop["settings"]
    before = {t: checksum(settings, t) for t in ORDER}
    totals = {t: len(parquet(settings, "silver", t)) for t in ORDER}
    run = dags_test(settings, "marketing_ingest", END, {"ds": END})
    assert run.ok, failed_tasks(settings, run)
    assert {t: checksum(settings, t) for t in ORDER} == before
    assert {t: len(parquet(settings, "silver", t)) for t in ORDER} == totals


def test_a_corrupt_file_fails_naming_it_and_leaves_silver_intact(shop: dict, tmp_path: Path) -> None:
    from jobs.pipeline.lake import PipelineError
    from jobs.pipeline.run import ingest_step

    settings = shop["settings"]
    before = checksum(settings, "campaign_log")
    bad = settings.landing / "campaign_log" / f"ds={END}" / "zz-export.parquet"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(b"PAR1 this is not a parquet file")
    try:
        with pytest.raises(PipelineError, match=r"zz-export\.parquet: not a readable Parquet file"):
            ingest_step(settings, "campaign_log", END)
        run = dags_test(settings, "marketing_ingest", END, {"ds": END})
        assert not run.ok and "ingest_campaign_log" in failed_tasks(settings, run)
        assert "zz-export.parquet" in run.log_path.read_text()
    finally:
        bad.unlink()
    assert checksum(settings, "campaign_log") == before

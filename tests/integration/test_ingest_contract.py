"""Schema drift, corrupt inputs and the Great Expectations gate, on a tiny landing zone with real Spark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.pipeline.clean import clean
from jobs.pipeline.ingest import ingest
from jobs.pipeline.lake import PipelineError
from jobs.quality.validate import QualityError, validate_silver
from jobs.settings import Settings
from jobs.warehouse import Warehouse

DS = "2026-09-08"
CUSTOMERS = "customer_id,first_name,last_name,email,phone,signup_date,region,channel,birth_year,gender,updated_at"


def write(settings: Settings, table: str, name: str, text: str, ds: str = DS) -> Path:
    path = settings.landing / table / f"ds={ds}" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(home=tmp_path, pii_salt="pepper")
    write(
        s,
        "customers",
        "part-00000.csv",
        CUSTOMERS + "\n"
        "C1,Ann,Lee,ann@example.com,+49 1,2025-01-01,north,web,1990,f,2025-01-01T00:00:00Z\n"
        "C2,Bo,Ng,bo@example.com,+49 2,2025-01-01,south,app,1985,m,2025-01-01T00:00:00Z\n",
    )
    return s


def silver_rows(spark, settings: Settings, table: str) -> list[dict]:
    return [r.asDict() for r in spark.read.parquet(str(settings.lake / "silver" / table)).collect()]


def test_extra_and_reordered_csv_columns_are_mapped_by_name(spark, settings: Settings) -> None:
    write(
        settings,
        "events",
        "part-00000.csv",
        "customer_id,event_id,utm_source,ts,event_type,product_id,session_id\n"
        "C1,E1,newsletter,2026-09-08T10:00:00Z,search,,S1\n",
    )
    result = ingest(spark, settings, "events", DS)
    assert any("extra column(s) ['utm_source'] dropped" in w for w in result.warnings)
    ingest(spark, settings, "customers", DS)
    clean(spark, settings, "customers", DS)
    clean(spark, settings, "events", DS)
    [row] = silver_rows(spark, settings, "events")
    assert (row["event_id"], row["customer_id"], row["event_type"]) == ("E1", "C1", "search")
    assert "utm_source" not in row


def test_a_missing_optional_json_key_is_imputed(spark, settings: Settings) -> None:
    write(
        settings,
        "products",
        "part-00000.jsonl",
        json.dumps(
            {
                "product_id": "P1",
                "name": "Book",
                "category": "books",
                "price": 9.5,
                "margin_rate": 0.3,
                "updated_at": "2026-09-01T00:00:00Z",
            }
        )
        + "\n",
    )
    ingest(spark, settings, "products", DS)
    clean(spark, settings, "products", DS)
    [row] = silver_rows(spark, settings, "products")
    assert row["is_active"] is True and row["_missing"] == ["is_active"]


def test_a_renamed_required_column_fails_naming_file_and_columns(spark, settings: Settings) -> None:
    path = write(
        settings,
        "customers",
        "part-00001.csv",
        CUSTOMERS.replace("customer_id", "cust_id") + "\n"
        "C3,Cy,Oh,cy@example.com,+49 3,2025-01-01,west,web,1970,x,2025-01-01T00:00:00Z\n",
    )
    with pytest.raises(PipelineError) as info:
        ingest(spark, settings, "customers", DS)
    message = str(info.value)
    assert str(path) in message and "['customer_id'] missing" in message and "['cust_id'] (renamed?)" in message


def test_a_file_that_is_not_text_fails_naming_the_file(spark, settings: Settings) -> None:
    bad = settings.landing / "orders" / f"ds={DS}" / "export.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x1f\x8b\x08\x00 truncated gzip, not json lines")
    ingest(spark, settings, "customers", DS)
    clean(spark, settings, "customers", DS)
    ingest(spark, settings, "orders", DS)  # unreadable lines are malformed records, not a crash
    result = clean(spark, settings, "orders", DS)
    assert result.silver_total == 0 and result.quarantined == {"malformed_record": 1}


def test_the_gate_blocks_silver_on_a_critical_failure_and_records_it(spark, settings: Settings) -> None:
    ingest(spark, settings, "customers", DS)
    clean(spark, settings, "customers", DS)
    before = sorted(r["customer_id"] for r in silver_rows(spark, settings, "customers"))
    frame = spark.read.parquet(str(settings.lake / "silver" / "customers"))
    broken = frame.unionByName(frame)  # every key twice: the uniqueness expectation must fail
    with pytest.raises(QualityError) as info:
        validate_silver(settings, broken, "customers", [DS])
    assert "silver.customers: expect_compound_columns_to_be_unique on column customer_id,ds failed (critical)" in str(
        info.value
    )
    assert "4 unexpected of 4 rows" in str(info.value)
    # the gate's first pass counts only; the failure reruns it (same run id) with samples for the Data Docs
    stored = [
        json.loads(f.read_text())
        for f in (settings.path(settings.gx_dir) / "gx" / "uncommitted" / "validations").rglob("*.json")
    ]
    failed = [
        r["result"]
        for v in stored
        for r in v["results"]
        if not r["success"] and r["expectation_config"]["type"] == "expect_compound_columns_to_be_unique"
    ]
    assert len(failed) == 1 and len(failed[0]["partial_unexpected_list"]) == 4
    dq = Warehouse.from_settings(settings).query(
        "SELECT expectation, success, unexpected_count FROM marketing.data_quality WHERE NOT success"
    )
    assert dq.to_dict("records") == [
        {"expectation": "expect_compound_columns_to_be_unique", "success": False, "unexpected_count": 4}
    ]

    def failing_gate(df, table, dates):
        return validate_silver(settings, df.unionByName(df), table, dates)

    with pytest.raises(QualityError):
        clean(spark, settings, "customers", DS, validate=failing_gate)
    assert sorted(r["customer_id"] for r in silver_rows(spark, settings, "customers")) == before


def test_rest_pages_are_ingested_next_to_csv_exports(spark, settings: Settings) -> None:
    write(
        settings,
        "events",
        "part-00000.csv",
        "event_id,customer_id,ts,event_type,product_id,session_id\nE1,C1,2026-09-08T10:00:00Z,search,,S1\n",
    )
    write(
        settings,
        "events",
        "http-page-00001.jsonl",
        json.dumps(
            {
                "event_id": "E2",
                "customer_id": "C2",
                "ts": "2026-09-08T11:00:00Z",
                "event_type": "view",
                "product_id": None,
                "session_id": "S2",
            }
        )
        + '\n{"event_id": "E3", "cust\n',
    )
    write(settings, "events", "_http_state.json", '{"complete": true}')
    ingest(spark, settings, "customers", DS)
    clean(spark, settings, "customers", DS)
    result = ingest(spark, settings, "events", DS)
    assert sorted(Path(f).name for f in result.files) == ["http-page-00001.jsonl", "part-00000.csv"]
    cleaned = clean(spark, settings, "events", DS)
    assert sorted(r["event_id"] for r in silver_rows(spark, settings, "events")) == ["E1", "E2"]
    assert cleaned.quarantined == {"malformed_record": 1}

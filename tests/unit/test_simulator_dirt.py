"""Dirt injection and rendering on tiny inline tables."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from jobs.simulator.config import DirtRates
from jobs.simulator.dirt import DEDUPE, IMPUTE, QUARANTINE, FileContext, inject
from jobs.simulator.render import GARBLED, render
from jobs.simulator.tables import CAMPAIGN_LOG_SCHEMA, SPECS, TS_FORMAT, iso_local, iso_utc_ms

NONE = DirtRates().scaled(0)
DAY_MS = 1_788_220_800_000  # 2026-09-01T00:00:00Z


def ctx(table: str) -> FileContext:
    return FileContext(
        table=table,
        ds="2026-09-01",
        relpath=f"{table}/ds=2026-09-01/part-00000.x",
        format_ts=TS_FORMAT[table],
        unknown_id=lambda t, rng: "C9999999" if t == "customers" else "P99999",
        day_ms=DAY_MS,
    )


def events(n: int = 6) -> pd.DataFrame:
    ms = DAY_MS + np.arange(n) * 60_000
    return pd.DataFrame(
        {
            "event_id": [f"E202609010{i:06d}" for i in range(n)],
            "customer_id": [f"C{i % 3 + 1:07d}" for i in range(n)],
            "ts": iso_utc_ms(ms),
            "event_type": ["view"] * n,
            "product_id": ["P00001"] * n,
            "session_id": ["S20260901000001"] * n,
        },
        dtype=object,
    )


def parse_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


def test_timestamp_formats() -> None:
    assert iso_utc_ms(np.array([DAY_MS + 1_234]))[0] == "2026-09-01T00:00:01.234Z"
    # Europe/Berlin: summer time in September, winter time in December
    assert iso_local(np.array([DAY_MS]))[0] == "2026-09-01T02:00:00+02:00"
    december = DAY_MS + 91 * 86_400_000
    assert iso_local(np.array([december]))[0] == "2026-12-01T01:00:00+01:00"


def test_no_dirt_keeps_the_file_clean_and_in_order() -> None:
    clean = events()
    out = inject(clean, SPECS["events"], ctx("events"), NONE, np.random.default_rng(0))
    assert out.records == [] and len(out.malformed_rows) == 0
    pd.testing.assert_frame_equal(out.frame, clean)


def test_exact_duplicates_are_identical_lines_and_recorded_where_they_are() -> None:
    clean = events(8)
    rates = NONE.with_overrides({"exact_duplicate": 0.5})
    out = inject(clean, SPECS["events"], ctx("events"), rates, np.random.default_rng(1))
    rows = parse_csv(render(out, SPECS["events"], np.random.default_rng(1), None))
    header, body = rows[0], rows[1:]
    assert header == list(SPECS["events"].columns)
    assert len(body) == 8 + len(out.records) and out.records
    clean_rows = [list(r) for r in clean.itertuples(index=False)]
    # without the recorded copies, the file is the clean rows in their order
    copies = {rec["row_number"] for rec in out.records}
    assert [r for number, r in enumerate(rows, 1) if number > 1 and number not in copies] == clean_rows
    for rec in out.records:
        line = rows[rec["row_number"] - 1]  # row_number is the physical line (header = 1)
        assert rec["action"] == DEDUPE and rec["reason"] == "duplicate_key"
        assert line[0] == rec["key"] and body.count(line) >= 2


@pytest.mark.parametrize(
    ("kind", "reason_prefix"),
    [
        ("required_null", "null_required:"),
        ("wrong_type", "wrong_type:"),
        ("bad_value", "invalid_value:event_type"),
        ("unknown_fk", "unknown_fk:"),
        ("future_ts", "future_timestamp:ts"),
        ("malformed", "malformed_record"),
    ],
)
def test_invalid_rows_get_a_fresh_key_and_a_reason(kind: str, reason_prefix: str) -> None:
    clean = events(10)
    out = inject(clean, SPECS["events"], ctx("events"), NONE.with_overrides({kind: 0.5}), np.random.default_rng(7))
    data = render(out, SPECS["events"], np.random.default_rng(7), None)
    lines = data.decode().splitlines()
    assert out.records, "the rate should have produced defects"
    for rec in out.records:
        assert rec["action"] == QUARANTINE and rec["reason"].startswith(reason_prefix)
        line = lines[rec["row_number"] - 1]
        if kind == "malformed":
            assert line == GARBLED or len(line.split(",")) < len(SPECS["events"].columns)
            continue
        fields = line.split(",")
        assert len(fields) == 6
        if rec["column"] != "event_id":
            assert fields[0] not in set(clean["event_id"]), "an invalid row must not share a valid row's key"
        if kind == "future_ts":
            assert fields[2] > "2026-09-03"
        if kind == "unknown_fk":
            assert fields[1] == "C9999999" or fields[4] == "P99999"


def test_optional_nulls_blank_a_field_in_place() -> None:
    clean = pd.DataFrame(
        {
            "order_id": ["O1", "O2", "O3", "O4"],
            "customer_id": ["C0000001"] * 4,
            "ts": ["2026-09-01T10:00:00+02:00"] * 4,
            "amount": [10.0, 20.0, 30.0, 40.0],
            "discount": [0.0, 2.0, 0.0, 4.0],
            "currency": ["EUR"] * 4,
            "items": [[{"product_id": "P00001", "qty": 1, "price": 10.0}]] * 4,
            "_ts_ms": [DAY_MS] * 4,
        }
    ).astype(object)
    out = inject(
        clean,
        SPECS["orders"],
        ctx("orders"),
        NONE.with_overrides({"optional_null": 0.5}),
        np.random.default_rng(3),
    )
    assert len(out.frame) == 4  # nothing added
    lines = render(out, SPECS["orders"], np.random.default_rng(3), None).decode().splitlines()
    for rec in out.records:
        assert rec["action"] == IMPUTE and rec["reason"] == "missing:discount"
        row = json.loads(lines[rec["row_number"] - 1])
        assert row["order_id"] == rec["key"] and row["discount"] is None


def test_malformed_json_lines_do_not_parse_and_valid_ones_do() -> None:
    clean = pd.DataFrame(
        {
            "product_id": [f"P{i:05d}" for i in range(1, 11)],
            "name": ["x"] * 10,
            "category": ["books"] * 10,
            "price": [9.99] * 10,
            "margin_rate": [0.3] * 10,
            "is_active": [True] * 10,
            "updated_at": ["2026-08-01T00:00:00Z"] * 10,
        }
    ).astype(object)
    out = inject(
        clean,
        SPECS["products"],
        ctx("products"),
        NONE.with_overrides({"malformed": 0.5}),
        np.random.default_rng(5),
    )
    lines = render(out, SPECS["products"], np.random.default_rng(5), None).decode().splitlines()
    broken = {rec["row_number"] for rec in out.records}
    assert broken
    for number, line in enumerate(lines, 1):
        if number in broken:
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
        else:
            assert json.loads(line)["category"] == "books"


def test_csv_renderer_refuses_values_that_would_need_quoting() -> None:
    frame = events(2)
    frame.loc[0, "session_id"] = "a,b"
    out = inject(frame, SPECS["events"], ctx("events"), NONE, np.random.default_rng(0))
    with pytest.raises(Exception, match=r"(?i)quot|structural"):
        render(out, SPECS["events"], np.random.default_rng(0), None)


def test_campaign_log_parquet_round_trips_with_nulls() -> None:
    frame = pd.DataFrame(
        {
            "campaign_id": ["CMP-20260901"] * 2,
            "customer_id": ["C0000001", "C0000002"],
            "ts": pd.to_datetime([DAY_MS, DAY_MS], unit="ms", utc=True),
            "strategy": ["coupon_10", "no_action"],
            "propensity": [0.2, 0.4],
            "is_holdout": [False, True],
            "visited": [None, True],
            "converted": [None, False],
            "revenue": [None, 0.0],
            "updated_at": pd.to_datetime([DAY_MS, DAY_MS], unit="ms", utc=True),
        }
    ).astype(object)
    out = inject(frame, SPECS["campaign_log"], ctx("campaign_log"), NONE, np.random.default_rng(0))
    data = render(out, SPECS["campaign_log"], np.random.default_rng(0), CAMPAIGN_LOG_SCHEMA)
    table = pq.read_table(io.BytesIO(data))
    assert table.schema == CAMPAIGN_LOG_SCHEMA
    assert table.column("visited").to_pylist() == [None, True]
    assert table.column("revenue").to_pylist() == [None, 0.0]

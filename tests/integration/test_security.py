"""No raw e-mail address or phone number gets past cleaning: silver, quarantine, gold, warehouse, GX results.

The landing zone is the bad-input corpus (tests/data/bad/), whose customer files are full of PII
in every shape the pipeline must survive: good rows, duplicates, rows with bad values, malformed
lines, a Latin-1 export. Gold features are built on its silver, and the Great Expectations gate
runs on its silver customers (it writes ``marketing.data_quality`` and the GX results). Then every
value of every Parquet column, every warehouse row and every GX file is searched for the raw values
and for anything shaped like an e-mail address or an international phone number.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from jobs.features.build import build_features
from jobs.quality.validate import validate_silver
from jobs.warehouse import Warehouse
from tests.support.bad_corpus import CorpusRun

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
PHONE = re.compile(r"\+\d[\d ()/.-]{6,}\d")  # international numbers, as the shop exports them


def _raw_pii(landing: Path) -> set[str]:
    """Every e-mail address and phone number in the customers landing files (whatever their encoding)."""
    found: set[str] = set()
    for path in (landing / "customers").rglob("*.csv"):
        data = path.read_bytes()
        text = data.decode("utf-16") if data.startswith((b"\xff\xfe", b"\xfe\xff")) else data.decode("latin-1")
        found |= set(_emails(text)) | {p.strip() for p in PHONE.findall(text)}
    return found


def _texts(value: Any) -> list[str]:
    """Every text inside a Parquet value (lists, structs and maps included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (*_texts(k), *_texts(v))]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _texts(v)]
    return []


def _emails(text: str) -> list[str]:
    """E-mail addresses in ``text``, searched around each ``@`` (a regex over a 10 MB field would be quadratic)."""
    found = []
    for at in re.finditer("@", text):
        start = max(0, at.start() - 64)
        found += [
            m.group(0)
            for m in EMAIL.finditer(text[start : at.start() + 256])
            if m.start() < at.start() - start < m.end()
        ]
    return found


def _leaks(text: str, raw: set[str]) -> list[str]:
    """Raw values, and anything shaped like an e-mail address or an international phone number, in ``text``."""
    return _emails(text) + PHONE.findall(text) + [r for r in raw if r in text]


@pytest.fixture(scope="module")
def scanned(spark, bad_corpus: CorpusRun) -> CorpusRun:
    """The corpus lake with gold features built and the GX gate run on silver customers."""
    settings = bad_corpus.settings
    assert build_features(spark, settings, [bad_corpus.last_ds])[bad_corpus.last_ds] > 0
    silver = spark.read.parquet(str(settings.lake / "silver" / "customers"))
    dates = sorted(r["ds"] for r in silver.select(silver["ds"].cast("string").alias("ds")).distinct().collect())
    validate_silver(settings, silver.withColumn("ds", silver["ds"].cast("string")), "customers", dates)
    return bad_corpus


def test_the_landing_zone_is_full_of_pii(scanned: CorpusRun) -> None:
    raw = _raw_pii(scanned.settings.landing)
    assert {"ann.lee@example.com", "+49 30 1234567", "zoe.jaeger@example.com", "nia.popa@example.com"} <= raw
    assert len(raw) > 40


@pytest.mark.parametrize("layer", ["silver", "quarantine", "gold"])
def test_no_raw_pii_in_a_lake_layer(layer: str, scanned: CorpusRun) -> None:
    raw = _raw_pii(scanned.settings.landing)
    files = sorted((scanned.settings.lake / layer).rglob("*.parquet"))
    assert files, f"nothing in {layer}"
    leaks: list[str] = []
    values = 0
    for path in files:
        table = pq.read_table(path)
        for column in table.column_names:
            for value in table[column].to_pylist():
                for text in _texts(value):
                    values += 1
                    leaks += [f"{path.relative_to(scanned.settings.lake)}:{column}: {hit}" for hit in _leaks(text, raw)]
    assert values > 50
    assert leaks == []


def test_silver_customers_keep_only_salted_hashes(scanned: CorpusRun) -> None:
    table = pq.read_table(next((scanned.settings.lake / "silver" / "customers").rglob("*.parquet")))
    assert {"email", "phone", "first_name", "last_name"}.isdisjoint(table.column_names)
    hashes = [h for h in table["email_hash"].to_pylist() + table["phone_hash"].to_pylist() if h is not None]
    assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes)


def test_no_raw_pii_in_the_warehouse_or_the_gx_results(scanned: CorpusRun) -> None:
    settings = scanned.settings
    raw = _raw_pii(settings.landing)
    warehouse = Warehouse.from_settings(settings)
    tables = warehouse.query(
        f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{settings.warehouse_schema}'"
    )["table_name"].tolist()
    assert "data_quality" in tables
    dq = warehouse.query(f"SELECT * FROM {settings.warehouse_schema}.data_quality")
    assert set(dq["table_name"]) == {"customers"} and len(dq) > 5
    leaks = []
    for table in tables:
        frame = warehouse.query(f"SELECT * FROM {settings.warehouse_schema}.{table}")
        for value in frame.astype(str).to_numpy().ravel():
            leaks += [f"{table}: {hit}" for hit in _leaks(value, raw)]
    gx_files = [p for p in settings.path(settings.gx_dir).rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" for p in gx_files)
    for path in gx_files:  # raw values only: the Data Docs' HTML and scripts hold e-mail-shaped text of their own
        text = path.read_bytes().decode("utf-8", errors="replace")
        leaks += [f"{path.name}: {value}" for value in raw if value in text]
    assert leaks == []

"""The benchmark harness runs end to end at tiny sizes (figures come from `make bench`, not from here)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench.run import main


def test_bench_quick_writes_results_and_markdown(tmp_path: Path) -> None:
    results, markdown = tmp_path / "results.json", tmp_path / "BENCHMARKS.md"
    assert main(["--quick", "--results", str(results), "--markdown", str(markdown)]) == 0
    data = json.loads(results.read_text())
    runs = data["simulator"]["runs"]
    assert [r["customers"] for r in runs] == [1_000, 2_000]
    assert all(r["rows"] > 0 and r["peak_rss_mb"] > 0 and r["ratio_to_io_floor"] > 0 for r in runs)
    ingest = data["ingest"]
    assert ingest["spark_silver_rows"] == ingest["clean_rows_expected"], "Spark's silver must match the truth"
    assert ingest["duckdb_silver_rows"] > 0 and ingest["ratio_spark_to_duckdb"] > 0
    text = markdown.read_text()
    assert "## Shop simulator" in text and "| 2,000 |" in text
    assert "## Ingest + clean of events" in text

"""Entry points that wire a step to its session, settings and gates (used by the DAGs and the CLI)."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from jobs.contracts import ORDER
from jobs.pipeline.lake import LAYERS, ds_range, layer_path
from jobs.settings import Settings

log = logging.getLogger(__name__)


def ingest_step(settings: Settings, table: str, ds: str, since: str | None = None) -> dict[str, Any]:
    from jobs.pipeline.ingest import ingest
    from jobs.spark import get_spark

    result = ingest(get_spark(settings, f"msp-ingest-{table}"), settings, table, ds, since)
    return {
        "table": table,
        "rows": result.rows,
        "malformed": result.malformed,
        "files": len(result.files),
        "warnings": result.warnings,
    }


def clean_step(settings: Settings, table: str, ds: str, since: str | None = None) -> dict[str, Any]:
    """Clean with the Great Expectations gate: a critical failure raises before anything is written."""
    from jobs.pipeline.clean import clean
    from jobs.quality.validate import validate_silver
    from jobs.spark import get_spark

    def gate(frame, name: str, dates: list[str]) -> dict:
        outcomes = validate_silver(settings, frame, name, dates)
        return {"expectations": len(outcomes), "warnings": sum(not o.success for o in outcomes)}

    result = clean(get_spark(settings, f"msp-clean-{table}"), settings, table, ds, since, validate=gate)
    return {
        "table": table,
        "bronze": result.bronze_rows,
        "silver": result.silver_total,
        "quarantined": result.quarantined,
        "validation": result.validation,
    }


def build_data_docs(settings: Settings) -> str:
    from jobs.quality.validate import docs_index, gx_context

    gx_context(settings).build_data_docs()
    return str(docs_index(settings))


def layer_counts(settings: Settings, ds: str, since: str | None = None) -> dict[str, dict[str, int]]:
    """Rows per layer and table over the dates (landing counted by the files' data rows)."""
    import duckdb

    dates = set(ds_range(ds, since))
    con = duckdb.connect()
    out: dict[str, dict[str, int]] = {}
    for layer in ("bronze", "silver", "quarantine"):
        out[layer] = {}
        for table in ORDER:
            files = [
                str(p)
                for p in layer_path(settings, layer, table).glob("ds=*/*.parquet")
                if p.parent.name.removeprefix("ds=") in dates
            ]
            out[layer][table] = (
                con.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchone()[0] if files else 0
            )
    return out


def quarantine_reasons(settings: Settings, ds: str, since: str | None = None) -> dict[str, Counter]:
    import duckdb

    dates = set(ds_range(ds, since))
    con = duckdb.connect()
    reasons: dict[str, Counter] = {}
    for table in ORDER:
        files = [
            str(p)
            for p in layer_path(settings, "quarantine", table).glob("ds=*/*.parquet")
            if p.parent.name.removeprefix("ds=") in dates
        ]
        if files:
            rows = con.execute(
                "SELECT reason, count(*) FROM read_parquet(?) GROUP BY 1 ORDER BY 2 DESC", [files]
            ).fetchall()
            reasons[table] = Counter(dict(rows))
    return reasons


__all__ = ["LAYERS", "build_data_docs", "clean_step", "ingest_step", "layer_counts", "quarantine_reasons"]

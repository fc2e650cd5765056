"""Expectation suites of the silver tables, derived from the landing contract (jobs/contracts.py).

Severity ``critical`` blocks the pipeline (the silver partition is not written and downstream
tasks do not run); ``warning`` is recorded in ``marketing.data_quality`` and the Data Docs only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.contracts import Source

if TYPE_CHECKING:
    import great_expectations as gx

SHA256 = r"^[0-9a-f]{64}$"
CRITICAL, WARNING = "critical", "warning"


def silver_columns(source: Source) -> list[str]:
    """The exact column set of a silver table (raw PII never among them)."""
    cols = []
    for c in source.columns:
        if c.pii == "drop":
            continue
        cols.append(f"{c.name}_hash" if c.pii == "hash" else c.name)
        if c.outlier:
            cols.append(f"{c.name}_outlier")
    cols += list(source.nested)
    return [*cols, "_missing", "_source_file", "_ingested_at", "_row_hash", "ds"]


def build_suite(source: Source) -> gx.ExpectationSuite:
    """The versioned suite ``silver_<table>``: schema, keys, required values, domains, ranges, PII."""
    import great_expectations as gx
    from great_expectations import expectations as gxe

    suite = gx.ExpectationSuite(name=f"silver_{source.name}", meta={"generated_from": "jobs/contracts.py"})
    add = suite.add_expectation
    add(gxe.ExpectTableColumnsToMatchSet(column_set=silver_columns(source), exact_match=True, severity=CRITICAL))
    key = [*source.key, "ds"]
    add(gxe.ExpectCompoundColumnsToBeUnique(column_list=key, severity=CRITICAL))
    for c in source.columns:
        name = f"{c.name}_hash" if c.pii == "hash" else c.name
        if c.pii == "drop":
            continue
        if c.required or c.name in source.key:
            add(gxe.ExpectColumnValuesToNotBeNull(column=name, severity=CRITICAL))
        if c.enum:
            add(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=list(c.enum), severity=CRITICAL))
        if c.min is not None or c.max is not None:
            add(gxe.ExpectColumnValuesToBeBetween(column=name, min_value=c.min, max_value=c.max, severity=CRITICAL))
        if c.pii == "hash":
            add(gxe.ExpectColumnValuesToMatchRegex(column=name, regex=SHA256, severity=CRITICAL))
        if c.outlier:
            add(
                gxe.ExpectColumnValuesToBeInSet(
                    column=f"{c.name}_outlier", value_set=[False], mostly=0.95, severity=WARNING
                )
            )
    add(gxe.ExpectTableRowCountToBeBetween(min_value=1, severity=WARNING))
    return suite

"""Validate a silver DataFrame inside the task (never at DAG parse time) with a GX file context.

Results persist under ``settings.gx_dir`` and the Data Docs are rebuilt there; a summary row per
expectation goes to the warehouse table ``data_quality``. A failed critical expectation raises
:class:`QualityError`, naming the table, the expectation, the column and the counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.contracts import SOURCES
from jobs.quality.suites import CRITICAL, build_suite
from jobs.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)
DATASOURCE = "msp_spark"
#: the gate's first pass: every expectation's unexpected and element counts, no samples of unexpected values.
#: A sample costs a Spark job per expectation (a filtered ``limit``), more than the counts on a small shop
#: (the demo's events: 22 jobs and ~7 s of CPU with samples, 9 jobs and ~4 s without), and a passing
#: suite has nothing to show (or, for a ``mostly`` warning such as an outlier share, only the flag value)
COUNTS_ONLY = {"result_format": "SUMMARY", "partial_unexpected_count": 0}
#: the second pass, only when an expectation failed: up to 20 unexpected values each in the Data Docs
WITH_SAMPLES = {"result_format": "SUMMARY", "partial_unexpected_count": 20}


class QualityError(RuntimeError):
    """A critical expectation failed: downstream must not run on this data."""


@dataclass
class ExpectationOutcome:
    table: str
    expectation: str
    column: str | None
    severity: str
    success: bool
    unexpected_count: int
    element_count: int

    def describe(self) -> str:
        where = f" on column {self.column}" if self.column else ""
        return (
            f"silver.{self.table}: {self.expectation}{where} failed ({self.severity}): "
            f"{self.unexpected_count} unexpected of {self.element_count} rows"
        )


def gx_context(settings: Settings) -> Any:
    import great_expectations as gx

    root = settings.path(settings.gx_dir)
    root.mkdir(parents=True, exist_ok=True)
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def docs_index(settings: Settings) -> Path:
    return settings.path(settings.gx_dir) / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def run_suite(settings: Settings, frame: DataFrame, table: str, dates: list[str]) -> list[ExpectationOutcome]:
    """Run the table's suite on ``frame`` (results and Data Docs persist); return every outcome.

    Each check is a query on ``frame``, which GX does not cache: hand over a computed frame (cleaning
    passes a checkpoint of silver, :func:`jobs.pipeline.lake.checkpoint`).
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    context = gx_context(settings)
    # persist=False: GX would otherwise cache the frame as columnar (compression costs more than the rows on a
    # small shop: ~7 s of CPU on the demo's 267k silver events); the caller hands over a computed frame
    source = context.data_sources.add_or_update_spark(name=DATASOURCE, persist=False)
    asset_name = f"silver_{table}"
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_dataframe_asset(name=asset_name)
    try:
        batch = asset.get_batch_definition("whole")
    except KeyError:
        batch = asset.add_batch_definition_whole_dataframe("whole")
    suite = context.suites.add_or_update(build_suite(SOURCES[table]))
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"silver_{table}", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"silver_{table}",
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="update_data_docs")],
            result_format=COUNTS_ONLY,
        )
    )
    # one id for both passes: a second pass replaces the first's result and Data Docs page
    run_id = gx.RunIdentifier(run_name=f"{table}-{dates[0]}..{dates[-1]}", run_time=datetime.now(UTC))
    result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)
    if not result.success:  # something failed: again with samples of the unexpected values, for the Data Docs
        checkpoint.result_format = WITH_SAMPLES
        checkpoint.save()  # GX runs only a saved checkpoint; the next run's add_or_update resets the format
        result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)
    outcomes = []
    for run_result in result.run_results.values():
        for r in run_result.results:
            cfg = r.expectation_config
            outcomes.append(
                ExpectationOutcome(
                    table=table,
                    expectation=cfg.type,
                    column=cfg.kwargs.get("column")
                    or (",".join(cfg.kwargs["column_list"]) if "column_list" in cfg.kwargs else None),
                    severity=str(getattr(cfg, "severity", None) or CRITICAL).lower().removeprefix("failureseverity."),
                    success=bool(r.success),
                    unexpected_count=int((r.result or {}).get("unexpected_count") or 0),
                    element_count=int((r.result or {}).get("element_count") or 0),
                )
            )
    return outcomes


def gate(settings: Settings, table: str, outcomes: list[ExpectationOutcome]) -> None:
    """Log failures; raise :class:`QualityError` if any critical expectation failed."""
    failed = [o for o in outcomes if not o.success]
    for o in failed:
        (log.error if o.severity == CRITICAL else log.warning)("%s", o.describe())
    critical = [o for o in failed if o.severity == CRITICAL]
    if critical:
        raise QualityError("; ".join(o.describe() for o in critical) + f" (Data Docs: {docs_index(settings)})")
    log.info("silver.%s: %d expectations passed, %d warnings", table, len(outcomes) - len(failed), len(failed))


def record(settings: Settings, run_date: str, table: str, outcomes: list[ExpectationOutcome]) -> None:
    """Replace this run's rows for ``table`` in the warehouse table ``data_quality``."""
    from datetime import date

    import pandas as pd

    from jobs.warehouse import Warehouse

    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    frame = pd.DataFrame(
        [
            {
                "run_date": date.fromisoformat(run_date),
                "table_name": o.table,
                "expectation": o.expectation,
                "column_name": o.column,
                "severity": o.severity,
                "success": o.success,
                "unexpected_count": o.unexpected_count,
                "element_count": o.element_count,
                "checked_at": now,
            }
            for o in outcomes
        ]
    )
    Warehouse.from_settings(settings).replace(
        "data_quality", {"run_date": date.fromisoformat(run_date), "table_name": table}, frame
    )


def validate_silver(settings: Settings, frame: DataFrame, table: str, dates: list[str]) -> list[ExpectationOutcome]:
    """The gate used by cleaning: run the suite, record the summary, raise on a critical failure."""
    outcomes = run_suite(settings, frame, table, dates)
    record(settings, dates[-1], table, outcomes)
    gate(settings, table, outcomes)
    return outcomes

"""The application ``spark-submit`` runs in stack mode: one Spark step of a DAG, its result as JSON.

``spark-submit jobs/submit.py <step> --ds D [--since S] [--table T] [--rebuild] --result-file F``

Every step is the same function the embedded mode calls in the task's own process; here the session
is the one spark-submit configured (master, memory and conf from the command line), so the
step's ``get_spark`` reuses it. The result goes to ``--result-file`` (the driver runs in client
mode, on the Airflow worker), with ``{"ok": false, "data_error": ...}`` when the step fails: a data
error (missing input, failed quality gate) is not retried by :class:`jobs.operators.MspSparkSubmitOperator`.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a file: its folder must not shadow top-level modules (spark.py, ...)
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _here]

import argparse
import json
import logging
import os
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("jobs.submit")


@dataclass(frozen=True)
class Step:
    """A Spark step: ``run(ds, since, table, rebuild)`` -> JSON-able result; what needs a table."""

    run: Callable[[str, str | None, str | None, bool], Any]
    needs_table: bool = False


def _ingest(ds: str, since: str | None, table: str | None, rebuild: bool) -> Any:
    from jobs.pipeline.run import ingest_step
    from jobs.settings import get_settings

    return ingest_step(get_settings(), str(table), ds, since)


def _clean(ds: str, since: str | None, table: str | None, rebuild: bool) -> Any:
    from jobs.pipeline.run import clean_step
    from jobs.settings import get_settings

    return clean_step(get_settings(), str(table), ds, since)


def _features(ds: str, since: str | None, table: str | None, rebuild: bool) -> Any:
    from jobs.settings import get_settings
    from jobs.training.tasks import features_step

    return features_step(get_settings(), ds)


def _training_set(ds: str, since: str | None, table: str | None, rebuild: bool) -> Any:
    from jobs.settings import get_settings
    from jobs.training.tasks import training_set_step

    return training_set_step(get_settings(), ds)


def _score_features(ds: str, since: str | None, table: str | None, rebuild: bool) -> Any:
    from jobs.scoring.tasks import features_for

    return features_for(ds, rebuild=rebuild)


#: the steps the DAGs submit (``marketing_ingest``: ingest, clean; ``marketing_train``: features,
#: training_set; ``marketing_score``: score_features)
STEPS: dict[str, Step] = {
    "ingest": Step(_ingest, needs_table=True),
    "clean": Step(_clean, needs_table=True),
    "features": Step(_features),
    "training_set": Step(_training_set),
    "score_features": Step(_score_features),
}


def data_error_types() -> tuple[type[BaseException], ...]:
    """Errors a retry cannot fix: bad or missing data, a failed quality gate (as the embedded tasks treat them)."""
    from airflow.sdk.exceptions import AirflowFailException

    from jobs.pipeline.lake import PipelineError
    from jobs.quality.validate import QualityError

    return (PipelineError, QualityError, ValueError, AirflowFailException)


def run(step: str, ds: str, since: str | None = None, table: str | None = None, rebuild: bool = False) -> Any:
    """Run one step in this process (its Spark session: the one spark-submit started, else ``get_spark``'s)."""
    if step not in STEPS:
        raise KeyError(f"unknown Spark step {step!r}; known: {', '.join(STEPS)}")
    if STEPS[step].needs_table and not table:
        raise ValueError(f"step {step!r} needs --table")
    return STEPS[step].run(ds, since, table, rebuild)


def write_result(path: Path, payload: dict[str, Any]) -> None:
    """Atomic JSON write (the operator never reads half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        json.dump(payload, tmp, default=str)
    os.replace(tmp.name, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spark-submit jobs/submit.py", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--ds", required=True, help="Run date (YYYY-MM-DD).")
    parser.add_argument("--since", default=None, help="First date of a range (ingest, clean).")
    parser.add_argument("--table", default=None, help="Source table (ingest, clean).")
    parser.add_argument("--rebuild", action="store_true", help="score_features: recompute even when fresh.")
    parser.add_argument("--result-file", type=Path, required=True, help="Where the JSON result goes.")
    args = parser.parse_args(argv)

    from jobs.logging_setup import configure_logging
    from jobs.settings import get_settings

    configure_logging(get_settings().log_level)
    try:
        from pyspark.sql import SparkSession

        # the session spark-submit configured (master, memory, conf); every step's get_spark reuses it
        spark = SparkSession.builder.getOrCreate()
        context = spark.sparkContext
        log.info("spark-submit step %s on %s (app %s)", args.step, context.master, context.appName)
        try:
            result = run(args.step, args.ds, args.since or None, args.table or None, args.rebuild)
        finally:
            spark.stop()  # the application ends FINISHED on the master, not lost with the JVM
    except Exception as exc:  # reported to the operator, which decides about retries
        data_error = isinstance(exc, data_error_types())
        log.error("step %s failed (%s): %s", args.step, "data error" if data_error else "error", exc)
        payload = {"ok": False, "data_error": data_error, "error": type(exc).__name__, "message": str(exc)}
        write_result(args.result_file, {**payload, "traceback": traceback.format_exc()})
        return 3 if data_error else 1
    write_result(args.result_file, {"ok": True, "result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())

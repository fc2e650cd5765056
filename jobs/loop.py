"""The closed loop on the simulated shop, night after night: answer, ingest, score; then evaluate.

Night d (after the first, which the caller has scored): the simulator answers night d-1's
assignments (``respond``: outcomes drawn from its truth, written to the landing zone over the
attribution window), day d-1 is ingested and cleaned (events, orders, campaign log: the tables the
answers touch), and ``marketing_score`` runs for d. After the last night the remaining days of its
attribution window are ingested and ``marketing_evaluate`` runs on the day that window closes, which
measures every night. ``marketing_score`` and ``marketing_evaluate`` run through Airflow
(``airflow dags test``); the daily ingestion of the answers runs in process (the same task code as
``marketing_ingest``) to keep the loop short.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from jobs.settings import Settings

log = logging.getLogger(__name__)
#: the tables the simulator's answers write to
ANSWER_TABLES = ("events", "orders", "campaign_log")


@dataclass
class LoopResult:
    nights: list[str]
    evaluated_on: str
    truth: dict[str, dict[str, float]] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)


def _day(ds: str, days: int) -> str:
    return (date.fromisoformat(ds) + timedelta(days=days)).isoformat()


def answer(settings: Settings, ds: str) -> Path:
    """Let the simulator answer the assignments of night ``ds`` (gold/assignments) and return the file it read."""
    import pandas as pd

    from jobs.pipeline.lake import PipelineError, partition_path
    from jobs.simulator.respond import respond

    path = partition_path(settings, "gold", "assignments", ds)
    if not path.is_dir():
        raise PipelineError(f"{path} does not exist: score {ds} first")
    frame = pd.read_parquet(path, columns=["customer_id", "strategy", "propensity", "reason"])
    file = settings.truth / "answered" / f"assignments-{ds}.parquet"  # what the simulator was asked
    file.parent.mkdir(parents=True, exist_ok=True)
    frame.assign(is_holdout=frame["reason"] == "holdout").drop(columns="reason").to_parquet(file, index=False)
    result = respond(file, date.fromisoformat(ds), settings.landing, settings.truth)
    log.info("night %s answered: %d assignments, %d converted", ds, result.assignments, result.converted)
    return file


def ingest_days(settings: Settings, ds: str, since: str) -> None:
    """Ingest and clean the tables the answers touch, for ``since``..``ds``."""
    from jobs.pipeline.run import clean_step, ingest_step

    for table in ANSWER_TABLES:
        ingest_step(settings, table, ds, since)
        clean_step(settings, table, ds, since)


def night_against_truth(settings: Settings, ds: str) -> dict[str, float]:
    """True incremental profit of night ``ds``'s assignments and of the oracle (the simulator knows both)."""
    import pandas as pd

    from jobs.pipeline.lake import partition_path
    from jobs.scoring.catalogue import load_catalogue
    from jobs.simulator.oracle import against_oracle

    assignments = pd.read_parquet(partition_path(settings, "gold", "assignments", ds))
    features = pd.read_parquet(partition_path(settings, "gold", "features", ds))
    return against_oracle(assignments, features, settings.truth, ds, load_catalogue(settings.strategy_catalogue))


def run_loop(settings: Settings, first: str, nights: int, run_dag: Callable[[str, str], None]) -> LoopResult:
    """Nights ``first`` .. ``first + nights - 1`` (``first`` already scored), then the evaluation.

    ``run_dag(dag_id, ds)`` runs a DAG for a date and raises if it fails (the demo and the tests pass
    ``airflow dags test``).
    """
    from jobs.evaluation.evaluate import closed_runs

    if nights < 1:
        raise ValueError(f"nights must be >= 1, got {nights}")
    dates = [_day(first, k) for k in range(nights)]
    for previous, ds in itertools.pairwise(dates):
        log.info("[loop] night %s: answer %s, ingest it, score %s", ds, previous, ds)
        answer(settings, previous)
        ingest_days(settings, previous, previous)
        run_dag("marketing_score", ds)
    last = dates[-1]
    close = _day(last, settings.attribution_days)
    log.info("[loop] answer %s, ingest %s..%s, evaluate on %s", last, last, close, close)
    answer(settings, last)
    ingest_days(settings, close, last)
    run_dag("marketing_evaluate", close)
    missing = sorted(set(dates) - set(closed_runs(settings, close)))
    if missing:
        raise RuntimeError(f"nights {missing} were not evaluated on {close}")
    result = LoopResult(nights=dates, evaluated_on=close)
    result.truth = {ds: night_against_truth(settings, ds) for ds in dates}
    return result

"""Drift of tonight's scoring population against the champion's training population.

Reference: ``gold/features`` of the date the champion was trained on (its version tag ``msp.ds``):
every customer as of that date, built by the same code as tonight's features, so a stable shop
shows no drift and a shifted one does. Current: ``gold/features`` of the run date (a seeded
sample of at most ``SAMPLE_ROWS`` rows). Columns: the model's tabular inputs (its ``feature_spec.json``),
plus the predicted conversion probability under the control (reference: the champion's predictions
on the reference sample; current: ``p_convert_control`` of tonight's assignments).

Every column's PSI is recorded in ``marketing.feature_drift`` (the run date replaced on rerun); a
column at or above ``MSP_DRIFT_PSI_ALERT`` raises an alert (log + ``MSP_ALERT_WEBHOOK_URL``) without
failing the run: the decisions are still the best the champion can make, and someone should look.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.pipeline.lake import PipelineError, check_ds, partition_path
from jobs.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

    from jobs.monitoring.drift import Drift

log = logging.getLogger(__name__)
SAMPLE_ROWS = 200_000
SCORE_SAMPLE_ROWS = 20_000
SCORE_COLUMN = "score:p_convert_control"


@dataclass
class DriftResult:
    run_date: str
    reference_date: str
    model_name: str
    model_version: str
    drifts: list[Drift]
    alerted: bool

    def worst(self, n: int = 5) -> list[dict[str, Any]]:
        return [{"column": d.column, "psi": d.psi, "level": d.level} for d in self.drifts[:n]]


def _features(spark: SparkSession, settings: Settings, ds: str, spec: Any, rows: int) -> pd.DataFrame:
    path = partition_path(settings, "gold", "features", ds)
    if not path.is_dir():
        raise PipelineError(f"{path} does not exist: build the features of {ds} first")
    frame = spark.read.parquet(str(path))
    total = frame.count()
    if total > rows:
        frame = frame.sample(fraction=min(1.0, 1.2 * rows / total), seed=int(ds.replace("-", ""))).limit(rows)
    return spec.spark_flatten(frame).toArrow().to_pandas()


def scoring_drift(spark: SparkSession, settings: Settings, ds: str) -> DriftResult:
    """PSI of every model input and of the control score; recorded, and alerted above the threshold."""
    import mlflow
    import pandas as pd

    from jobs.alerts import send_alert
    from jobs.models.frame import FeatureSpec
    from jobs.monitoring.drift import drift_report
    from jobs.scoring.catalogue import load_catalogue
    from jobs.scoring.score import resolve_champion

    ds = check_ds(ds)
    champion = resolve_champion(settings)
    version = mlflow.MlflowClient().get_model_version(champion.name, champion.version)
    reference_date = version.tags.get("msp.ds")
    if not reference_date:
        raise PipelineError(f"{champion.name} v{champion.version} has no msp.ds tag: its training date is unknown")
    local = Path(mlflow.artifacts.download_artifacts(champion.uri))
    spec = FeatureSpec.from_json((local / "artifacts" / "feature_spec.json").read_text())
    columns = [c for c in spec.input_columns if c != spec.sequence]  # event tokens: one category per customer
    reference = _features(spark, settings, reference_date, spec, SAMPLE_ROWS)
    current = _features(spark, settings, ds, spec, SAMPLE_ROWS)
    kw = {"warn": settings.drift_psi_warn, "alert": settings.drift_psi_alert}
    drifts = drift_report(reference, current, columns, **kw)

    assignments = partition_path(settings, "gold", "assignments", ds)
    if assignments.is_dir():
        control = load_catalogue(settings.strategy_catalogue).control
        sample = reference.sample(n=min(SCORE_SAMPLE_ROWS, len(reference)), random_state=0)
        ref_scores = mlflow.pyfunc.load_model(champion.uri).predict(sample[spec.input_columns])[f"p_convert__{control}"]
        cur_scores = spark.read.parquet(str(assignments)).select("p_convert_control").toArrow().to_pandas()
        drifts += drift_report(
            pd.DataFrame({SCORE_COLUMN: ref_scores.to_numpy()}),
            pd.DataFrame({SCORE_COLUMN: cur_scores["p_convert_control"].to_numpy()}),
            [SCORE_COLUMN],
            **kw,
        )
    drifts.sort(key=lambda d: d.psi, reverse=True)
    alerts = [d for d in drifts if d.level == "alert"]
    result = DriftResult(ds, reference_date, champion.name, champion.version, drifts, bool(alerts))
    record(settings, result)
    if alerts:
        secret = settings.alert_webhook_url
        send_alert(
            {
                "event": "drift",
                "run_date": ds,
                "reference_date": reference_date,
                "model": f"{champion.name} v{champion.version}",
                "columns": [d.as_record() for d in alerts],
                "summary": f"population drift on {ds} against {reference_date}: "
                + ", ".join(f"{d.column} PSI {d.psi:.2f}" for d in alerts[:5]),
            },
            secret.get_secret_value() if secret is not None else None,
        )
    log.info("drift %s against %s: worst %s", ds, reference_date, result.worst(3))
    return result


def record(settings: Settings, result: DriftResult) -> int:
    """Replace the run date's rows of ``marketing.feature_drift``."""
    import pandas as pd

    from jobs.warehouse import Warehouse

    now = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("us")
    frame = pd.DataFrame([d.as_record() for d in result.drifts]).rename(columns={"column": "column_name"})
    frame.insert(0, "run_date", date.fromisoformat(result.run_date))
    frame["reference_date"] = date.fromisoformat(result.reference_date)
    frame["model_name"], frame["model_version"], frame["checked_at"] = result.model_name, result.model_version, now
    warehouse = Warehouse.from_settings(settings)
    warehouse.migrate()
    return warehouse.replace("feature_drift", {"run_date": date.fromisoformat(result.run_date)}, frame)

"""marketing_evaluate reads the model's held-out uplift error from its training run (real MLflow registry)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from jobs.evaluation.evaluate import model_error_var
from jobs.settings import get_settings
from jobs.training.evaluate import UPLIFT_ERROR_METRIC
from jobs.training.train import configure_mlflow


def register(name: str, metrics: dict[str, float]) -> str:
    client = mlflow.MlflowClient()
    with mlflow.start_run() as run:
        mlflow.log_metrics(metrics)
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    return client.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id).version


def test_the_training_runs_error_variance_or_zero_with_a_warning(
    msp_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = get_settings()
    configure_mlflow(settings)
    measured = register("msp_uplift_check", {UPLIFT_ERROR_METRIC: 0.00042, "qini_mean": 0.1})
    assert model_error_var(settings, "msp_uplift_check", measured) == pytest.approx(0.00042)
    older = register("msp_uplift_check", {"qini_mean": 0.1})  # trained before the metric existed
    assert model_error_var(settings, "msp_uplift_check", older) == 0.0
    assert "sampling noise only" in caplog.text
    assert model_error_var(settings, "msp_nowhere", "1") == 0.0  # not in the registry

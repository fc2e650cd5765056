"""A deliberately worse uplift model for promotion tests: the real model with its revenue ranking inverted.

It loads the artifacts of a real registered version and negates every expected revenue, so the
policy it induces picks, for every customer, the strategy the real model thinks is *worst*.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow

from jobs.models.pyfunc import UpliftPyfunc


class InvertedPyfunc(UpliftPyfunc):
    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        out = super().predict(context, model_input, params)
        revenue = [c for c in out.columns if c.startswith("exp_revenue__")]
        out[revenue] = -out[revenue]
        return out


def register_inverted(name: str, source_version: str) -> str:
    """Register a new version of ``name`` that inverts version ``source_version``; returns its number."""
    client = mlflow.MlflowClient()
    source = client.get_model_version(name, source_version)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{source_version}", dst_path=tmp))
        artifacts = {p.name.split(".")[0]: str(p) for p in (local / "artifacts").iterdir()}
        with mlflow.start_run(run_name="deliberately-worse") as run:
            mlflow.set_tag("msp.role", "test_worse_model")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=InvertedPyfunc(),
                artifacts=artifacts,
                registered_model_name=name,
                pip_requirements=["mlflow"],
            )
    assert run.info.run_id and source.version
    return str(info.registered_model_version)

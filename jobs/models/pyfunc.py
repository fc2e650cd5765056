"""The MLflow pyfunc flavour shared by both uplift models: flat features in, per-strategy predictions out.

Input: the flat frame of :meth:`FeatureSpec.flatten` (what the signature describes). Output: one
row per input row with ``p_convert__<strategy>`` (conversion probability in the attribution
window) and ``exp_revenue__<strategy>`` (expected net revenue in the window) for every strategy,
so scoring can price each decision without knowing which model family made it. The model's
artifacts (feature spec, fitted estimators) are files; the code is this package, which the
serving environment installs (the same lock file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc

from jobs.models.frame import FeatureSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

KINDS = ("xgboost", "keras")


def output_columns(strategies: tuple[str, ...] | list[str]) -> list[str]:
    return [f"p_convert__{s}" for s in strategies] + [f"exp_revenue__{s}" for s in strategies]


class UpliftPredictor:
    """A fitted model family plus its feature spec; ``predict(flat) -> (p_convert, exp_revenue)``."""

    def __init__(self, kind: str, spec: FeatureSpec, conversion: Any, revenue: Any = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown model kind {kind!r}; expected one of {KINDS}")
        self.kind = kind
        self.spec = spec
        self.conversion = conversion
        self.revenue = revenue

    @property
    def strategies(self) -> tuple[str, ...]:
        return tuple(self.conversion.strategies_)

    def inputs(self, flat: pd.DataFrame) -> Any:
        import pandas as pd

        matrix = self.spec.matrix(flat)
        if self.kind == "xgboost":
            return matrix
        frame = pd.DataFrame(matrix, columns=self.spec.matrix_columns, index=flat.index)
        frame[self.spec.sequence] = flat[self.spec.sequence].to_numpy() if self.spec.sequence in flat else ""
        return frame

    def predict(self, flat: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        X = self.inputs(flat)
        if self.kind == "xgboost":
            return self.conversion.predict(X), np.clip(self.revenue.predict(X), 0.0, None)
        return self.conversion.predict_conversion(X), self.conversion.predict_revenue(X)

    def predict_frame(self, flat: pd.DataFrame) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        conv, rev = self.predict(flat)
        return pd.DataFrame(np.hstack([conv, rev]), columns=output_columns(self.strategies), index=flat.index)

    # --- persistence (the MLflow model's artifacts) ---
    def save(self, folder: Path) -> dict[str, str]:
        """Write the artifacts; returns the mapping handed to ``mlflow.pyfunc.log_model(artifacts=...)``."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "feature_spec.json").write_text(self.spec.to_json())
        (folder / "kind.json").write_text(json.dumps({"kind": self.kind, "strategies": list(self.strategies)}))
        self.conversion.save(folder / "conversion")
        artifacts = {
            "feature_spec": str(folder / "feature_spec.json"),
            "kind": str(folder / "kind.json"),
            "conversion": str(folder / "conversion"),
        }
        if self.revenue is not None:
            self.revenue.save(folder / "revenue")
            artifacts["revenue"] = str(folder / "revenue")
        return artifacts

    @classmethod
    def load(cls, artifacts: dict[str, str]) -> UpliftPredictor:
        kind = json.loads(Path(artifacts["kind"]).read_text())["kind"]
        spec = FeatureSpec.from_json(Path(artifacts["feature_spec"]).read_text())
        if kind == "xgboost":
            from jobs.models.xgb_uplift import XGBUpliftTLearner

            return cls(
                kind,
                spec,
                XGBUpliftTLearner.load(artifacts["conversion"]),
                XGBUpliftTLearner.load(artifacts["revenue"]),
            )
        from jobs.models.keras_uplift import KerasMultiHeadUplift

        return cls(kind, spec, KerasMultiHeadUplift.load(artifacts["conversion"]))


class UpliftPyfunc(mlflow.pyfunc.PythonModel):
    """``mlflow.pyfunc`` wrapper; load with ``mlflow.pyfunc.load_model("models:/<name>@champion")``."""

    def load_context(self, context: Any) -> None:
        self.predictor = UpliftPredictor.load(dict(context.artifacts))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        import pandas as pd

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        flat = self.predictor.spec.flatten(frame)
        return self.predictor.predict_frame(flat).reset_index(drop=True)

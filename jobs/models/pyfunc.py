"""The MLflow pyfunc flavour shared by both uplift models: flat features in, per-strategy predictions out.

Input: the flat frame of :meth:`FeatureSpec.flatten` (what the signature describes). Output: one
row per input row with ``p_convert__<strategy>`` (conversion probability in the attribution
window) and ``exp_revenue__<strategy>`` (expected net revenue in the window) for every strategy,
so scoring can price each decision without knowing which model family (XGBoost, Keras, or their
fusion) or which revenue mode (direct, or the calibrated two-part hurdle) made it. The model's
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

KINDS = ("xgboost", "keras", "fusion")
#: how expected revenue is made: the family's own revenue model ("direct"), or the two-part model
#: calibrated P(convert) x E[order value | convert] x (1 - the catalogue's discount) ("hurdle")
REVENUE_MODES = ("direct", "hurdle")


def output_columns(strategies: tuple[str, ...] | list[str]) -> list[str]:
    return [f"p_convert__{s}" for s in strategies] + [f"exp_revenue__{s}" for s in strategies]


class UpliftPredictor:
    """A fitted model family plus its feature spec; ``predict(flat) -> (p_convert, exp_revenue)``.

    ``revenue_mode="direct"``: the family's conversion and revenue models as fitted. ``"hurdle"``:
    the conversion probabilities through ``calibrator`` (calibrated, shrunk effects) and, with
    ``effects`` (:class:`jobs.models.risk_effects.RiskEffects`), each strategy's effect put on the
    calibrated control probability as a function of the customer's baseline risk; expected net
    revenue ``p x order_value.predict(x) x (1 - discounts)``. A ``fusion`` predictor blends the
    logits of its ``components`` (an XGBoost and a Keras predictor) with ``weight`` on the first,
    then calibrates the blend; it is always a hurdle model.
    """

    def __init__(
        self,
        kind: str,
        spec: FeatureSpec,
        conversion: Any = None,
        revenue: Any = None,
        *,
        order_value: Any = None,
        calibrator: Any = None,
        effects: Any = None,
        discounts: Any = None,
        revenue_mode: str = "direct",
        components: dict[str, UpliftPredictor] | None = None,
        weight: float = 1.0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown model kind {kind!r}; expected one of {KINDS}")
        if revenue_mode not in REVENUE_MODES:
            raise ValueError(f"unknown revenue mode {revenue_mode!r}; expected one of {REVENUE_MODES}")
        if kind == "fusion" and (not components or revenue_mode != "hurdle"):
            raise ValueError("a fusion predictor needs its components and the hurdle revenue mode")
        self.kind = kind
        self.spec = spec
        self.conversion = conversion
        self.revenue = revenue
        self.order_value = order_value
        self.calibrator = calibrator
        self.effects = effects
        self.discounts = None if discounts is None else [float(d) for d in discounts]
        self.revenue_mode = revenue_mode
        self.components = components or {}
        self.weight = float(weight)

    @property
    def strategies(self) -> tuple[str, ...]:
        if self.kind == "fusion":
            return next(iter(self.components.values())).strategies
        return tuple(self.conversion.strategies_)

    def with_mode(self, revenue_mode: str) -> UpliftPredictor:
        """The same fitted parts, predicting in another revenue mode."""
        return UpliftPredictor(
            self.kind,
            self.spec,
            self.conversion,
            self.revenue,
            order_value=self.order_value,
            calibrator=self.calibrator,
            effects=self.effects,
            discounts=self.discounts,
            revenue_mode=revenue_mode,
            components=self.components,
            weight=self.weight,
        )

    def inputs(self, flat: pd.DataFrame) -> Any:
        import pandas as pd

        matrix = self.spec.matrix(flat)
        if self.kind == "xgboost":
            return matrix
        frame = pd.DataFrame(matrix, columns=self.spec.matrix_columns, index=flat.index)
        frame[self.spec.sequence] = flat[self.spec.sequence].to_numpy() if self.spec.sequence in flat else ""
        return frame

    def raw_conversion(self, flat: pd.DataFrame) -> np.ndarray:
        """(n, K) conversion probabilities before calibration (a fusion: the blend of its components')."""
        from jobs.models.calibration import logit, sigmoid

        if self.kind == "fusion":
            a, b = (c.raw_conversion(flat) for c in self.components.values())  # the weight is on the first
            return sigmoid(self.weight * logit(a) + (1.0 - self.weight) * logit(b))
        X = self.inputs(flat)
        if self.kind == "xgboost":
            return self.conversion.predict(X)
        return self.conversion.predict_conversion(X)

    def direct_revenue(self, flat: pd.DataFrame) -> np.ndarray:
        import numpy as np

        X = self.inputs(flat)
        if self.kind == "xgboost":
            return np.clip(self.revenue.predict(X), 0.0, None)
        return self.conversion.predict_revenue(X)

    def conditional_order_value(self, flat: pd.DataFrame) -> np.ndarray:
        """(n, K) expected gross order value given conversion (the hurdle's second part)."""
        model = self.order_value if self.order_value is not None else next(iter(self.components.values())).order_value
        if model is None:
            raise ValueError(f"this {self.kind} predictor has no order-value model: it cannot predict as a hurdle")
        return model.predict(self.spec.matrix(flat))

    def hurdle(self, p: np.ndarray, flat: pd.DataFrame) -> np.ndarray:
        """Expected net revenue from conversion probabilities ``p``: p x order value x (1 - discount)."""
        import numpy as np

        discounts = np.zeros(p.shape[1]) if self.discounts is None else np.asarray(self.discounts)
        return p * self.conditional_order_value(flat) * (1.0 - discounts)[None, :]

    def predict(self, flat: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        if self.revenue_mode == "direct":
            X = self.inputs(flat)
            if self.kind == "xgboost":
                import numpy as np

                return self.conversion.predict(X), np.clip(self.revenue.predict(X), 0.0, None)
            return self.conversion.predict_conversion(X), self.conversion.predict_revenue(X)
        p = self.raw_conversion(flat)
        if self.calibrator is not None:
            p = self.calibrator.transform(p)
        if self.effects is not None:
            p = self.effects.apply(p, self.spec.matrix(flat))
        return p, self.hurdle(p, flat)

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
        config = {
            "kind": self.kind,
            "strategies": list(self.strategies),
            "revenue_mode": self.revenue_mode,
            "discounts": self.discounts,
            "weight": self.weight,
            "components": list(self.components),
        }
        (folder / "kind.json").write_text(json.dumps(config))
        artifacts = {"feature_spec": str(folder / "feature_spec.json"), "kind": str(folder / "kind.json")}
        if self.conversion is not None:
            self.conversion.save(folder / "conversion")
            artifacts["conversion"] = str(folder / "conversion")
        if self.revenue is not None:
            self.revenue.save(folder / "revenue")
            artifacts["revenue"] = str(folder / "revenue")
        if self.order_value is not None:
            self.order_value.save(folder / "order_value")
            artifacts["order_value"] = str(folder / "order_value")
        if self.calibrator is not None:
            self.calibrator.save(folder / "calibrator.json")
            artifacts["calibrator"] = str(folder / "calibrator.json")
        if self.effects is not None:
            self.effects.save(folder / "effects")
            artifacts["effects"] = str(folder / "effects")
        for name, component in self.components.items():
            component.save(folder / "components" / name)
        if self.components:
            artifacts["components"] = str(folder / "components")
        return artifacts

    @classmethod
    def load_folder(cls, folder: Path) -> UpliftPredictor:
        """A predictor saved by :meth:`save` into ``folder`` (the artifact names are its entries' stems)."""
        return cls.load({entry.name.removesuffix(".json"): str(entry) for entry in Path(folder).iterdir()})

    @classmethod
    def load(cls, artifacts: dict[str, str]) -> UpliftPredictor:
        config = json.loads(Path(artifacts["kind"]).read_text())
        kind = config["kind"]
        spec = FeatureSpec.from_json(Path(artifacts["feature_spec"]).read_text())
        extra: dict[str, Any] = {
            "discounts": config.get("discounts"),
            "revenue_mode": config.get("revenue_mode", "direct"),  # models saved before the hurdle: direct
            "weight": config.get("weight", 1.0),
        }
        if "order_value" in artifacts:
            from jobs.models.order_value import OrderValueModel

            extra["order_value"] = OrderValueModel.load(artifacts["order_value"])
        if "calibrator" in artifacts:
            from jobs.models.calibration import UpliftCalibrator

            extra["calibrator"] = UpliftCalibrator.load(artifacts["calibrator"])
        if "effects" in artifacts:
            from jobs.models.risk_effects import RiskEffects

            extra["effects"] = RiskEffects.load(artifacts["effects"])
        if kind == "fusion":
            root = Path(artifacts["components"])
            extra["components"] = {name: cls.load_folder(root / name) for name in config["components"]}
            # the blend's order-value part is its first component's: read the matrix in that component's order
            first = next(iter(extra["components"].values()))
            if sorted(first.spec.matrix_columns) == sorted(spec.matrix_columns):
                spec = spec.aligned(first.spec.matrix_columns)
            return cls(kind, spec, **extra)
        if kind == "xgboost":
            from jobs.models.xgb_uplift import XGBUpliftTLearner, load_conversion

            conversion = load_conversion(artifacts["conversion"])
            # the matrix columns in the order the boosters were fitted on (older specs were saved sorted)
            spec = spec.aligned(conversion.feature_names_)
            return cls(kind, spec, conversion, XGBUpliftTLearner.load(artifacts["revenue"]), **extra)
        from jobs.models.keras_uplift import KerasMultiHeadUplift

        network = KerasMultiHeadUplift.load(artifacts["conversion"])
        return cls(kind, spec.aligned(network.feature_names_), network, **extra)


class UpliftPyfunc(mlflow.pyfunc.PythonModel):
    """``mlflow.pyfunc`` wrapper; load with ``mlflow.pyfunc.load_model("models:/<name>@champion")``."""

    def load_context(self, context: Any) -> None:
        self.predictor = UpliftPredictor.load(dict(context.artifacts))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        import pandas as pd

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        flat = self.predictor.spec.flatten(frame)
        return self.predictor.predict_frame(flat).reset_index(drop=True)

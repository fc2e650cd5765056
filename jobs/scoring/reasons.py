"""Scoring step: the top three reasons (jobs/models/reasons.py) of every model-chosen assignment.

Only rows with ``reason = 'model'`` and a strategy other than the control get reasons; held-out,
explored and ``no_action`` rows keep nulls. The contributions are computed on the executors, one
batch of rows at a time (``mapInPandas``), and only the top three per row leave them, as text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.models.reasons import TOP_K

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

#: the columns the reasons add to an assignment (all text; the first is JSON)
REASON_COLUMNS = ["reasons", *[f"reason_{j + 1}" for j in range(TOP_K)]]


def with_reasons(assignments: DataFrame, features: DataFrame, model_uri: str, control: str) -> DataFrame:
    """``assignments`` plus ``reasons`` (JSON) and ``reason_1`` .. ``reason_3`` (plain words) per customer.

    ``features`` are the night's feature rows (``customer_id`` and the model's inputs); ``model_uri``
    the pinned champion. A champion without an XGBoost conversion model (Keras) leaves every reason null.
    """
    import mlflow
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from jobs.models.pyfunc import UpliftPredictor
    from jobs.models.reasons import explainer

    local = Path(mlflow.artifacts.download_artifacts(model_uri)) / "artifacts"
    found = explainer(UpliftPredictor.load_folder(local))
    if found is None:
        log.info("%s has no XGBoost conversion model: the assignments carry no reasons", model_uri)
        return assignments.withColumns({c: F.lit(None).cast("string") for c in REASON_COLUMNS})
    spec, model = found
    targets = assignments.where((F.col("reason") == "model") & (F.col("strategy") != control))
    inputs = [c for c in spec.input_columns if c != spec.sequence]  # the trees never read the event sequence
    flat = spec.spark_flatten(features).select("customer_id", *inputs)
    rows = targets.select("customer_id", "strategy").join(flat, "customer_id")
    fields = [T.StructField(c, T.StringType()) for c in ["customer_id", *REASON_COLUMNS]]
    schema = T.StructType(fields)

    def explain(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        from jobs.models.reasons import reason_columns, top_reasons, uplift_contributions

        for batch in batches:
            X = spec.matrix(batch)
            contrib = uplift_contributions(model, X, batch["strategy"].to_numpy(), control)
            reasons = top_reasons(contrib, X, model.feature_names_)
            out = pd.DataFrame([reason_columns(r) for r in reasons], columns=REASON_COLUMNS)
            out.insert(0, "customer_id", batch["customer_id"].astype(str).to_numpy())
            yield out

    explained = rows.mapInPandas(explain, schema)
    return assignments.join(explained, "customer_id", "left")

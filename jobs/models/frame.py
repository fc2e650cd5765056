"""From gold feature rows to model inputs: one flat frame that training and scoring build alike.

The gold table keeps category affinities and the past responses per strategy as maps (their keys
come from the data); models need fixed columns. :class:`FeatureSpec` records, at training time,
which numeric features, categorical levels and map keys exist, and turns any later frame into the
same columns in the same order (unknown levels and keys fall away, missing ones become 0). The spec travels with the
model (as JSON inside the MLflow artifact), so scoring never guesses the layout.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from pyspark.sql import DataFrame

#: strategies of the shop, in the column order every model uses (control first)
STRATEGIES: tuple[str, ...] = ("no_action", "email_recommendations", "coupon_10", "coupon_20", "free_shipping")
CONTROL = "no_action"
AFFINITY_COLUMN = "category_affinity"
SEQUENCE_COLUMN = "seq_tokens"
#: map-valued inputs besides the affinity: a customer's past sends and conversions per strategy
MAP_COLUMNS = ("strategy_received", "strategy_converted")


def affinity_name(category: str) -> str:
    return "aff_" + "".join(ch if ch.isalnum() else "_" for ch in category.lower())


def map_name(column: str, key: str) -> str:
    """The flat column of one key of a map input, e.g. ``strategy_received__coupon_10``."""
    return f"{column}__" + "".join(ch if ch.isalnum() else "_" for ch in key.lower())


@dataclass
class FeatureSpec:
    """Column layout of a model's input, learned from the training frame."""

    numeric: list[str]
    categorical: dict[str, list[str]] = field(default_factory=dict)
    affinities: list[str] = field(default_factory=list)
    sequence: str | None = SEQUENCE_COLUMN
    #: map column -> its keys seen in training (models saved before these inputs have none)
    maps: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def learn(
        cls, frame: pd.DataFrame, numeric: list[str], categorical: list[str], sequence: str | None = SEQUENCE_COLUMN
    ) -> FeatureSpec:
        """Levels and affinity categories as seen in ``frame`` (gold layout, affinity as a map)."""
        levels = {c: sorted({str(v) for v in frame[c].dropna().unique()}) for c in categorical if c in frame}
        cats: set[str] = set()
        if AFFINITY_COLUMN in frame:
            for value in frame[AFFINITY_COLUMN]:
                cats.update(_as_dict(value))
        maps = {}
        for column in MAP_COLUMNS:
            if column in frame:
                keys: set[str] = set()
                for value in frame[column]:
                    keys.update(_as_dict(value))
                maps[column] = sorted(keys)
        missing = [c for c in numeric if c not in frame]
        if missing:
            raise ValueError(f"training frame lacks numeric feature columns {missing}")
        return cls(numeric=list(numeric), categorical=levels, affinities=sorted(cats), sequence=sequence, maps=maps)

    @property
    def map_columns(self) -> list[str]:
        """The flat columns of the map inputs other than the affinity, in layout order."""
        return [map_name(column, key) for column, keys in self.maps.items() for key in keys]

    # --- the flat input frame (what the MLflow model's signature describes) ---
    @property
    def input_columns(self) -> list[str]:
        cols = list(self.numeric) + [affinity_name(c) for c in self.affinities] + self.map_columns
        cols += list(self.categorical)
        return cols + ([self.sequence] if self.sequence else [])

    def flatten(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Gold rows (affinity map) -> the flat model input (affinities as ``aff_<category>`` columns)."""
        import pandas as pd

        out = pd.DataFrame(index=frame.index)
        for c in self.numeric:
            out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64") if c in frame else 0.0
        if self.affinities:
            maps = frame[AFFINITY_COLUMN].map(_as_dict) if AFFINITY_COLUMN in frame else None
            for cat in self.affinities:
                name = affinity_name(cat)
                if name in frame:
                    out[name] = frame[name].astype("float64")
                elif maps is not None:
                    out[name] = maps.map(lambda m, k=cat: float(m.get(k, 0.0))).astype("float64")
                else:
                    out[name] = 0.0
        for column, keys in self.maps.items():
            values = frame[column].map(_as_dict) if column in frame else None
            for key in keys:
                name = map_name(column, key)
                if name in frame:
                    out[name] = frame[name].astype("float64")
                elif values is not None:
                    out[name] = values.map(lambda m, k=key: float(m.get(k, 0.0))).astype("float64")
                else:
                    out[name] = 0.0
        for c in self.categorical:
            out[c] = frame[c].astype("string").fillna("unknown").astype(object) if c in frame else "unknown"
        if self.sequence:
            out[self.sequence] = frame[self.sequence].fillna("").astype(str) if self.sequence in frame else ""
        return out

    def spark_flatten(self, frame: DataFrame) -> DataFrame:
        """The same flattening on a Spark DataFrame (scoring), keeping the other columns."""
        from pyspark.sql import functions as F

        cols = [F.col(c).cast("double").alias(c) for c in self.numeric]
        cols += [
            F.coalesce(F.col(AFFINITY_COLUMN)[cat], F.lit(0.0)).cast("double").alias(affinity_name(cat))
            for cat in self.affinities
        ]
        cols += [
            (F.coalesce(F.col(column)[key], F.lit(0.0)) if column in frame.columns else F.lit(0.0))
            .cast("double")
            .alias(map_name(column, key))
            for column, keys in self.maps.items()
            for key in keys
        ]
        cols += [F.coalesce(F.col(c).cast("string"), F.lit("unknown")).alias(c) for c in self.categorical]
        if self.sequence:
            cols.append(F.coalesce(F.col(self.sequence), F.lit("")).alias(self.sequence))
        consumed = {*self.input_columns, AFFINITY_COLUMN, *self.maps}
        keep = [c for c in frame.columns if c not in consumed]
        return frame.select(*keep, *cols)

    # --- the numeric matrix (what tree models and the tabular tower consume) ---
    @property
    def matrix_columns(self) -> list[str]:
        cols = list(self.numeric) + [affinity_name(c) for c in self.affinities] + self.map_columns
        for c, levels in self.categorical.items():
            cols += [f"{c}={v}" for v in levels]
        return cols

    def matrix(self, flat: pd.DataFrame) -> np.ndarray:
        """Flat input -> float32 matrix (NaN kept: XGBoost learns a default direction; Keras imputes)."""
        import numpy as np

        n = len(flat)
        parts = [flat[c].to_numpy(dtype="float64", na_value=np.nan) if c in flat else np.zeros(n) for c in self.numeric]
        parts += [
            flat[affinity_name(c)].to_numpy(dtype="float64") if affinity_name(c) in flat else np.zeros(n)
            for c in self.affinities
        ]
        parts += [flat[c].to_numpy(dtype="float64") if c in flat else np.zeros(n) for c in self.map_columns]
        for c, levels in self.categorical.items():
            values = flat[c].astype(str).to_numpy() if c in flat else np.full(n, "unknown")
            parts += [(values == v).astype("float64") for v in levels]
        if not parts:
            return np.zeros((n, 0), dtype="float32")
        return np.column_stack(parts).astype("float32")

    def to_json(self) -> str:
        """JSON in layout order: the order of ``categorical`` and ``maps`` is the order of the matrix columns."""
        return json.dumps(asdict(self), indent=2)

    def aligned(self, names: list[str]) -> FeatureSpec:
        """This spec with ``categorical`` and ``maps`` in the order of a fitted model's ``names``.

        Specs saved before the layout order was kept were written with sorted keys, which permuted the
        one-hot and map columns of the matrix against what the model was fitted on; a model's own
        feature names restore its order. Raises ValueError when ``names`` is not a reordering of the layout.
        """
        if list(names) == self.matrix_columns:
            return self
        if sorted(names) != sorted(self.matrix_columns):
            raise ValueError("the model's feature names are not the columns of its feature spec")
        position = {name: i for i, name in enumerate(names)}
        first = len(names)

        def rank_categorical(column: str) -> int:
            return min((position[f"{column}={v}"] for v in self.categorical[column]), default=first)

        def rank_map(column: str) -> int:
            return min((position[map_name(column, k)] for k in self.maps[column]), default=first)

        spec = FeatureSpec(
            numeric=list(self.numeric),
            categorical={c: self.categorical[c] for c in sorted(self.categorical, key=rank_categorical)},
            affinities=list(self.affinities),
            sequence=self.sequence,
            maps={m: self.maps[m] for m in sorted(self.maps, key=rank_map)},
        )
        if spec.matrix_columns != list(names):
            raise ValueError("the model's feature names are in an order no feature spec can produce")
        return spec

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        return cls(**json.loads(text))


def _as_dict(value: Any) -> dict[str, float]:
    """An affinity map as read by pandas from Parquet (dict, list of pairs, or null)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items() if v is not None}
    try:
        return {str(k): float(v) for k, v in value if v is not None}
    except (TypeError, ValueError):
        return {}

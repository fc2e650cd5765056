"""An imported data set as a training frame: its mapping, its rows, their split and feature layout.

``msp import campaign-log FILE --mapping M`` lands ``campaign_log`` and ``customer_attributes`` under
``<lake>/datasets/<name>/landing`` with the mapping beside them (``dataset.json``). This module reads
them back as one row per customer (the latest logged version of each), with the mapped outcomes,
the arm, its propensity, the features under their own names, and a ``split``: the mapping's split
column where it has one, else a stable hash of the customer id (a customer held out today is held
out on every rerun, so the champion and a challenger are judged on the same rows).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.imports.campaign_log import MANIFEST, SPLIT_COLUMN, EconomicsSpec, GeneratedIds
from jobs.models.frame import CONTROL
from jobs.settings import Settings, require_identifier

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
HASH_BUCKETS = 10_000


class DatasetError(ValueError):
    """A data set that cannot be trained or scored; the message names the data set, file and cause."""


@dataclass(frozen=True)
class DatasetInfo:
    """What the mapping of an imported data set says the platform needs to know."""

    name: str
    root: Path
    strategies: tuple[str, ...]  # the control (no_action) first, then the mapping's order
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    economics: EconomicsSpec
    customer_id_column: str | None  # None: ids are generated from the row number
    id_prefix: str
    id_width: int
    has_revenue: bool = True  # False: the mapping names no revenue outcome (value = conversions x value_per_conversion)

    @property
    def features(self) -> tuple[str, ...]:
        return (*self.numeric, *self.categorical)

    def costs(self) -> list[float]:
        return [self.economics.cost_of(s, CONTROL) for s in self.strategies]


def dataset_root(settings: Settings, name: str) -> Path:
    return settings.lake / "datasets" / require_identifier(name, "data set ") / "landing"


def load_info(settings: Settings, name: str) -> DatasetInfo:
    """The data set's manifest, checked for what training needs (a control arm, at least one treatment)."""
    root = dataset_root(settings, name)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise DatasetError(
            f"data set {name!r} is not imported ({manifest} is missing): "
            f"run `msp import campaign-log FILE --mapping MAPPING` first"
        )
    mapping = json.loads(manifest.read_text(encoding="utf-8"))["mapping"]
    names = list(dict.fromkeys(mapping["strategy"]["values"].values()))
    if CONTROL not in names:
        raise DatasetError(
            f"data set {name!r}: no arm maps to {CONTROL!r} in strategy.values ({', '.join(names)}); "
            f"map the control arm's value to {CONTROL} so that effects are measured against it"
        )
    if len(names) < 2:
        raise DatasetError(f"data set {name!r}: strategy.values maps every arm to {CONTROL}: nothing to compare")
    attributes = _parquet_files(root / "customer_attributes", name)
    import pyarrow.parquet as pq

    schema = pq.read_schema(attributes[-1])
    types = dict(mapping.get("feature_types") or {})
    numeric, categorical = [], []
    for feature in mapping.get("features") or []:
        kind = types.get(feature) or _inferred_type(schema.field(feature).type)
        (categorical if kind == "categorical" else numeric).append(feature)
    economics = EconomicsSpec.model_validate(mapping.get("economics") or {})
    if economics.value_per_conversion is None and (mapping.get("outcomes") or {}).get("revenue") is None:
        raise DatasetError(
            f"data set {name!r} has no value: its mapping names no outcomes.revenue and no "
            f"economics.value_per_conversion; give one of them and import again"
        )
    ids = mapping["customer_id"]
    generate = ids.get("generate") or {}
    has_revenue = (mapping.get("outcomes") or {}).get("revenue") is not None
    return DatasetInfo(
        name=name,
        root=root,
        strategies=(CONTROL, *(s for s in names if s != CONTROL)),
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        economics=economics,
        customer_id_column=ids.get("column"),
        id_prefix=str(generate.get("prefix", "")),
        id_width=int(generate.get("width", 7)),
        has_revenue=has_revenue,
    )


def _inferred_type(arrow_type: object) -> str:
    import pyarrow as pa

    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "numeric"
    return "categorical"


def _parquet_files(folder: Path, name: str) -> list[Path]:
    files = sorted(folder.glob("ds=*/*.parquet"))
    if not files:
        raise DatasetError(f"data set {name!r}: no Parquet files under {folder}: import the data set again")
    return files


def load_frame(info: DatasetInfo, holdout_share: float) -> pd.DataFrame:
    """One row per customer: outcomes, arm, propensity, features and ``split`` ("train" or "test")."""
    import pandas as pd

    log_frame = pd.concat([pd.read_parquet(f) for f in _parquet_files(info.root / "campaign_log", info.name)])
    latest = log_frame.sort_values("updated_at").drop_duplicates("customer_id", keep="last")
    latest = latest[latest["converted"].notna() & latest["strategy"].isin(info.strategies)]
    attrs = pd.concat([pd.read_parquet(f) for f in _parquet_files(info.root / "customer_attributes", info.name)])
    attrs = attrs.drop_duplicates("customer_id", keep="last")
    frame = latest.merge(attrs, on="customer_id", how="inner", validate="one_to_one")
    converted = frame["converted"].astype("int64")
    if info.has_revenue:
        revenue = frame["revenue"].astype("float64").fillna(0.0)
    else:  # no revenue outcome: what a conversion is worth (the revenue models learn value x P(convert))
        revenue = converted.astype("float64") * float(info.economics.value_per_conversion or 0.0)
    frame = frame.assign(
        converted=converted,
        visited=frame["visited"].astype("float64").fillna(converted.astype("float64")).astype("int64"),
        revenue=revenue,
        split=frame[SPLIT_COLUMN] if SPLIT_COLUMN in frame else hashed_split(frame["customer_id"], holdout_share),
    )
    frame = typed_features(frame, info)
    log.info(
        "data set %s: %d customers (%d fit, %d held out), arms %s",
        info.name,
        len(frame),
        int((frame["split"] == "train").sum()),
        int((frame["split"] == "test").sum()),
        frame["strategy"].value_counts().to_dict(),
    )
    return frame.sort_values("customer_id").reset_index(drop=True)


def typed_features(frame: pd.DataFrame, info: DatasetInfo) -> pd.DataFrame:
    """Numeric and boolean features as floats, categorical ones as text (what the feature layout reads)."""
    import pandas as pd

    missing = [c for c in info.features if c not in frame]
    if missing:
        raise DatasetError(f"data set {info.name!r}: the customers lack the feature columns {missing}")
    out = frame.copy()
    for c in info.numeric:
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    for c in info.categorical:
        out[c] = out[c].astype("string")
    return out


def hashed_split(customer_id: pd.Series, holdout_share: float) -> pd.Series:
    """A stable split by customer id: "test" for about ``holdout_share`` of the ids, "train" for the rest."""
    import hashlib

    import numpy as np
    import pandas as pd

    cut = round(holdout_share * HASH_BUCKETS)

    def bucket(customer: object) -> int:
        return int.from_bytes(hashlib.blake2b(str(customer).encode(), digest_size=8).digest(), "big") % HASH_BUCKETS

    buckets = np.fromiter((bucket(c) for c in customer_id), dtype=np.int64, count=len(customer_id))
    return pd.Series(np.where(buckets < cut, "test", "train"), index=customer_id.index)


def read_customers(info: DatasetInfo, file: Path) -> pd.DataFrame:
    """A file of customers to score (CSV or Parquet) with the data set's features, ids as the mapping says."""
    import pandas as pd

    if not file.is_file():
        raise DatasetError(f"{file}: no such file of customers to score")
    if file.suffix.lower() in (".parquet", ".pq"):
        frame = pd.read_parquet(file)
    elif file.suffix.lower() == ".csv":
        frame = pd.read_csv(file, dtype={info.customer_id_column: str} if info.customer_id_column else None)
    else:
        raise DatasetError(f"{file}: unsupported file type {file.suffix!r} (use .csv or .parquet)")
    if info.customer_id_column is not None:
        if info.customer_id_column not in frame:
            raise DatasetError(f"{file}: no customer id column {info.customer_id_column!r} (the mapping's customer_id)")
        ids = frame[info.customer_id_column].astype("string")
    else:
        generated = GeneratedIds(prefix=info.id_prefix, width=info.id_width).ids(len(frame))  # as the import numbers
        ids = pd.Series(generated.to_pylist(), dtype="string")
    if ids.isna().any() or ids.duplicated().any():
        bad = int(ids.isna().idxmax() if ids.isna().any() else ids.duplicated().idxmax())
        raise DatasetError(f"{file}: data row {bad + 1}: customer ids must be present and unique")
    return typed_features(frame.assign(customer_id=ids.to_numpy()), info)

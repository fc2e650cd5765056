"""Population stability index (PSI): how far a feature's (or a score's) distribution moved.

``PSI = Σ_b (a_b − e_b) · ln(a_b / e_b)`` over bins b, with e_b the reference (training) share and
a_b the current (scoring) share of bin b. Numeric columns are binned at the reference's quantiles
(``bins`` bins, ties merged), with one extra bin for missing values; categorical columns use one
bin per category seen in either population (plus missing). Empty bins get ``EPSILON`` so the
logarithm stays finite. Usual reading: below 0.1 stable, 0.1-0.25 a moderate shift (warn), above
0.25 a major shift (alert); both thresholds are settings (``MSP_DRIFT_PSI_WARN``,
``MSP_DRIFT_PSI_ALERT``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

EPSILON = 1e-4
DEFAULT_BINS = 10


@dataclass(frozen=True)
class Drift:
    """PSI of one column, with its verdict against the thresholds."""

    column: str
    kind: str  # numeric | categorical
    psi: float
    level: str  # ok | warn | alert
    reference_rows: int
    current_rows: int
    reference_missing: float
    current_missing: float

    def as_record(self) -> dict[str, object]:
        return asdict(self)


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.clip(expected / max(expected.sum(), 1), EPSILON, None)
    a = np.clip(actual / max(actual.sum(), 1), EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_psi(reference: Iterable[float], current: Iterable[float], bins: int = DEFAULT_BINS) -> float:
    """PSI of a numeric column: reference quantile bins plus a missing-value bin."""
    ref = np.asarray(reference, dtype="float64")
    cur = np.asarray(current, dtype="float64")
    if ref.size == 0 or cur.size == 0:
        raise ValueError("PSI needs rows in both populations")
    ref_ok, cur_ok = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if ref_ok.size:
        edges = np.unique(np.quantile(ref_ok, np.linspace(0, 1, bins + 1)[1:-1]))
        ref_counts = np.bincount(np.searchsorted(edges, ref_ok, side="right"), minlength=edges.size + 1)
        cur_counts = np.bincount(np.searchsorted(edges, cur_ok, side="right"), minlength=edges.size + 1)
    else:
        ref_counts = np.zeros(1)
        cur_counts = np.array([cur_ok.size])
    expected = np.append(ref_counts, ref.size - ref_ok.size)
    actual = np.append(cur_counts, cur.size - cur_ok.size)
    return _psi(expected.astype("float64"), actual.astype("float64"))


def categorical_psi(reference: Iterable[object], current: Iterable[object]) -> float:
    """PSI of a categorical column: one bin per category of either population, missing as its own bin."""
    ref = pd.Series(list(reference), dtype="object").fillna("<missing>")
    cur = pd.Series(list(current), dtype="object").fillna("<missing>")
    if ref.empty or cur.empty:
        raise ValueError("PSI needs rows in both populations")
    levels = sorted(set(ref) | set(cur), key=str)
    expected = ref.value_counts().reindex(levels, fill_value=0).to_numpy(dtype="float64")
    actual = cur.value_counts().reindex(levels, fill_value=0).to_numpy(dtype="float64")
    return _psi(expected, actual)


def level_of(psi: float, warn: float, alert: float) -> str:
    if not 0 <= warn <= alert:
        raise ValueError(f"PSI thresholds must satisfy 0 <= warn <= alert (got warn={warn}, alert={alert})")
    return "alert" if psi >= alert else "warn" if psi >= warn else "ok"


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Iterable[str],
    *,
    warn: float = 0.1,
    alert: float = 0.25,
    bins: int = DEFAULT_BINS,
) -> list[Drift]:
    """PSI of every column (numeric or categorical by the reference's dtype), worst first."""
    out = []
    for column in columns:
        missing = [name for name, frame in (("reference", reference), ("current", current)) if column not in frame]
        if missing:
            raise KeyError(f"column {column!r} is missing from the {' and '.join(missing)} population")
        ref, cur = reference[column], current[column]
        numeric = pd.api.types.is_numeric_dtype(ref) and not pd.api.types.is_bool_dtype(ref)
        psi = numeric_psi(ref, cur, bins) if numeric else categorical_psi(ref, cur)
        out.append(
            Drift(
                column=column,
                kind="numeric" if numeric else "categorical",
                psi=round(psi, 6),
                level=level_of(psi, warn, alert),
                reference_rows=len(ref),
                current_rows=len(cur),
                reference_missing=float(ref.isna().mean()),
                current_missing=float(cur.isna().mean()),
            )
        )
    out.sort(key=lambda d: d.psi, reverse=True)
    for d in out:
        if d.level != "ok":
            log.warning("drift %s: %s PSI %.3f (%s)", d.level, d.column, d.psi, d.kind)
    return out

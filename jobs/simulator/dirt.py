"""Dirt injection: realistic defects added to landing files, each one recorded with its reason.

Every landing file starts as clean rows. For each dirt kind a binomial number of defects is
drawn from the file's clean row count and the kind's rate; defects are then placed at random
positions. ``optional_null`` blanks an optional field of a clean row in place (the row stays
valid; cleaning imputes it). Every other kind *adds* a row, so the clean rows are exactly the
rows the simulator generated: duplicates (same key) that cleaning must collapse, and invalid
rows (each with a key no valid row has) that cleaning must quarantine. The record says where
each defect is (file and physical row number), what it is, and what cleaning must do with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from jobs.simulator.config import DirtRates

#: what cleaning must do with a defect
DEDUPE, IMPUTE, QUARANTINE = "dedupe", "impute", "quarantine"
RECORD_COLUMNS = ("table", "ds", "file", "row_number", "key", "kind", "reason", "action", "column", "detail")


@dataclass(frozen=True)
class TableSpec:
    """What a landing table looks like and which defects make sense for it."""

    name: str
    fmt: str  # csv | jsonl | parquet
    key: tuple[str, ...]
    columns: tuple[str, ...]
    required: tuple[str, ...]  # non-key columns that must not be null
    optional: tuple[str, ...] = ()  # may be blank: imputed downstream
    fk: dict[str, str] = field(default_factory=dict)  # column -> referenced table
    ts_col: str | None = None  # event time checked against the partition date
    wrong_type: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # (row, rng) -> (column, bad value, reason) for out-of-range or unknown values
    bad_value: Callable[[dict[str, Any], np.random.Generator], tuple[str, Any, str]] | None = None
    # (row, rng) -> column whose formatting was varied without changing its meaning
    near_dup: Callable[[dict[str, Any], np.random.Generator], str] | None = None
    # gives a row a key no valid row has: (row, dirty sequence number, yyyymmdd) -> None
    fresh_key: Callable[[dict[str, Any], int, str], None] | None = None

    def applicable(self, kind: str) -> bool:
        return {
            "exact_duplicate": True,
            "near_duplicate": self.near_dup is not None,
            "optional_null": bool(self.optional),
            "required_null": bool(self.required) or bool(self.key),
            "malformed": self.fmt != "parquet",
            "wrong_type": bool(self.wrong_type) and self.fmt != "parquet",
            "bad_value": self.bad_value is not None,
            "unknown_fk": bool(self.fk),
            "future_ts": self.ts_col is not None,
        }[kind]


@dataclass
class FileContext:
    """Where a file goes and what the generator knows when dirtying it."""

    table: str
    ds: str
    relpath: str  # path relative to the landing root
    format_ts: Callable[[int], Any]  # epoch ms -> the landing representation of a timestamp
    unknown_id: Callable[[str, np.random.Generator], str]  # referenced table -> an id that does not exist
    day_ms: int  # epoch ms of the partition's midnight (UTC)


@dataclass
class Dirtied:
    """A file's rows in their final order, with what the renderer must break, and the record."""

    frame: pd.DataFrame
    malformed_rows: np.ndarray  # positions (0-based, in frame) to render as broken lines
    records: list[dict[str, Any]]


def inject(
    clean: pd.DataFrame, spec: TableSpec, ctx: FileContext, rates: DirtRates, rng: np.random.Generator
) -> Dirtied:
    """Add defects to one file's clean rows; return all rows in file order and the record."""
    n = len(clean)
    frame = clean.copy()
    records: list[dict[str, Any]] = []

    def record(row: dict[str, Any], kind: str, reason: str, action: str, column: str, detail: str) -> dict:
        rec = {
            "table": spec.name,
            "ds": ctx.ds,
            "file": ctx.relpath,
            "row_number": -1,
            "key": "|".join("" if row.get(k) is None else str(row[k]) for k in spec.key),
            "kind": kind,
            "reason": reason,
            "action": action,
            "column": column,
            "detail": detail,
        }
        records.append(rec)
        return rec

    # In place: optional fields blanked on clean rows (the row stays valid).
    in_place: list[tuple[int, dict[str, Any]]] = []
    sources = np.arange(n)  # rows that added defects copy: never one blanked in place
    if spec.applicable("optional_null") and n:
        count = min(rng.binomial(n, rates.optional_null), n)
        positions = rng.choice(n, size=count, replace=False)
        columns = [spec.optional[i] for i in rng.integers(len(spec.optional), size=count)]
        for pos, col, row in zip(positions, columns, clean.iloc[positions].to_dict("records"), strict=True):
            before = row[col]
            frame.iat[pos, frame.columns.get_loc(col)] = None
            row[col] = None
            in_place.append((int(pos), record(row, "optional_null", f"missing:{col}", IMPUTE, col, f"was {before!r}")))
        sources = np.setdiff1d(sources, positions)

    # Added rows: copies of clean rows, changed per kind.
    added: list[dict[str, Any]] = []
    added_recs: list[dict[str, Any]] = []
    malformed_flags: list[bool] = []
    dirty_seq = 0
    kinds = [f.name for f in dataclasses.fields(rates) if f.name != "optional_null"]
    for kind in kinds:
        if not spec.applicable(kind) or len(sources) == 0:
            continue
        count = rng.binomial(n, getattr(rates, kind))
        for row in clean.iloc[sources[rng.integers(0, len(sources), size=count)]].to_dict("records"):
            dirty_seq += 1
            column, reason, action, detail = _corrupt(kind, row, spec, ctx, rng, dirty_seq)
            added.append(row)
            added_recs.append(record(row, kind, reason, action, column, detail))
            malformed_flags.append(kind == "malformed")

    # Final order: clean rows keep their order, added rows land at random positions.
    sort_key = np.concatenate([np.arange(n, dtype=float), rng.uniform(-0.5, n - 0.5, size=len(added))])
    order = np.argsort(sort_key, kind="stable")
    if added:
        frame = pd.concat([frame, pd.DataFrame(added, columns=clean.columns)], ignore_index=True)
    frame = frame.iloc[order].reset_index(drop=True)
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    first_row = {"csv": 2, "jsonl": 1, "parquet": 1}[spec.fmt]  # CSV line 1 is the header
    for pos, rec in in_place:
        rec["row_number"] = int(position[pos]) + first_row
    for j, rec in enumerate(added_recs):
        rec["row_number"] = int(position[n + j]) + first_row
    malformed_rows = np.array([position[n + j] for j, flag in enumerate(malformed_flags) if flag], dtype=np.int64)
    return Dirtied(frame=frame, malformed_rows=malformed_rows, records=records)


def _corrupt(
    kind: str,
    row: dict[str, Any],
    spec: TableSpec,
    ctx: FileContext,
    rng: np.random.Generator,
    seq: int,
) -> tuple[str, str, str, str]:
    """Change ``row`` in place for one dirt kind; return (column, reason, action, detail)."""
    if kind == "exact_duplicate":
        return "", "duplicate_key", DEDUPE, "identical copy"
    if kind == "near_duplicate":
        assert spec.near_dup is not None
        col = spec.near_dup(row, rng)
        return col, "duplicate_key", DEDUPE, f"same key and meaning, {col} formatted differently"

    assert spec.fresh_key is not None
    if kind == "required_null":
        candidates = spec.key + spec.required
        col = candidates[rng.integers(len(candidates))]
        if col not in spec.key:
            spec.fresh_key(row, seq, ctx.ds.replace("-", ""))
        row[col] = None
        return col, f"null_required:{col}", QUARANTINE, "required value missing"
    spec.fresh_key(row, seq, ctx.ds.replace("-", ""))
    if kind == "malformed":
        return "", "malformed_record", QUARANTINE, "line cut short or garbled"
    if kind == "wrong_type":
        col = list(spec.wrong_type)[rng.integers(len(spec.wrong_type))]
        values = spec.wrong_type[col]
        row[col] = values[rng.integers(len(values))]
        return col, f"wrong_type:{col}", QUARANTINE, f"value {row[col]!r}"
    if kind == "bad_value":
        assert spec.bad_value is not None
        col, value, reason = spec.bad_value(row, rng)
        _set_path(row, col, value)
        return col, f"{reason}:{col}", QUARANTINE, f"value {value!r}"
    if kind == "unknown_fk":
        col = list(spec.fk)[rng.integers(len(spec.fk))]
        value = ctx.unknown_id(spec.fk[col], rng)
        _set_path(row, col, value)
        return col, f"unknown_fk:{col}", QUARANTINE, f"{value} is not in {spec.fk[col]}"
    if kind == "future_ts":
        assert spec.ts_col is not None
        days = int(rng.integers(2, 3650))
        ms = ctx.day_ms + days * 86_400_000 + int(rng.integers(0, 86_400_000))
        row[spec.ts_col] = ctx.format_ts(ms)
        return (
            spec.ts_col,
            f"future_timestamp:{spec.ts_col}",
            QUARANTINE,
            f"{days} days after the partition date",
        )
    raise ValueError(f"unknown dirt kind {kind!r}")


def _set_path(row: dict[str, Any], col: str, value: Any) -> None:
    """Set ``col`` or, for ``items.product_id`` style paths, that field of one nested item."""
    if "." not in col:
        row[col] = value
        return
    outer, inner = col.split(".", 1)
    items = [dict(item) for item in row[outer]]
    items[0][inner] = value
    row[outer] = items

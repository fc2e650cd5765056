"""Rendering a dirtied table to file bytes (CSV, JSON lines, Parquet), deterministically."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from jobs.simulator.dirt import Dirtied, TableSpec

GARBLED = "#### export interrupted ####"


def render(dirtied: Dirtied, spec: TableSpec, rng: np.random.Generator, schema: pa.Schema | None) -> bytes:
    frame = dirtied.frame[list(spec.columns)]
    if spec.fmt == "csv":
        return _csv(frame, dirtied.malformed_rows, rng)
    if spec.fmt == "jsonl":
        return _jsonl(frame, dirtied.malformed_rows, rng)
    if spec.fmt == "parquet":
        assert schema is not None
        return _parquet(frame, schema)
    raise ValueError(f"unknown format {spec.fmt!r}")


def _csv(frame: pd.DataFrame, malformed: np.ndarray, rng: np.random.Generator) -> bytes:
    """CSV with a header, empty fields for nulls, no quoting (a value with a comma or quote raises)."""
    table = pa.Table.from_pandas(
        frame.astype(object),
        schema=pa.schema([(c, pa.string()) for c in frame.columns]),
        preserve_index=False,
    )
    buf = io.BytesIO()
    buf.write((",".join(frame.columns) + "\n").encode())
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    data = buf.getvalue()
    if not len(malformed):
        return data
    lines = data.decode().split("\n")
    for pos in malformed:
        line = lines[pos + 1]  # line 0 is the header
        if rng.random() < 0.7:
            cut = [i for i, ch in enumerate(line) if ch == ","]
            lines[pos + 1] = line[: cut[len(cut) // 2]]  # fewer fields than the header
        else:
            lines[pos + 1] = GARBLED
    return "\n".join(lines).encode()


def _jsonl(frame: pd.DataFrame, malformed: np.ndarray, rng: np.random.Generator) -> bytes:
    broken = set(malformed.tolist())
    out = []
    for i, row in enumerate(frame.to_dict("records")):
        line = json.dumps({k: _plain(v) for k, v in row.items()}, separators=(",", ":"), ensure_ascii=False)
        if i in broken:
            line = line[: int(len(line) * rng.uniform(0.3, 0.8))]  # an unterminated object
        out.append(line)
    return ("\n".join(out) + "\n").encode() if out else b""


def _plain(value: Any) -> Any:
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _parquet(frame: pd.DataFrame, schema: pa.Schema) -> bytes:
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False).replace_schema_metadata(None)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", write_statistics=True)
    return buf.getvalue()
